/**
 * The room's comment threads as this page knows them: loaded from the API, kept current by the
 * server's "comments" messages (auth sub-type 4, sent after every change on any process), and
 * loaded again whenever the socket (re)connects, since messages sent meanwhile are not replayed.
 */
import * as decoding from "lib0/decoding";
import { messageAuth, type WebsocketProvider } from "y-websocket";
import type { CommentReply, CommentThread, DeletedComment, ThreadState } from "./api";

/** The server's "comments changed" auth sub-type (README, "Comment threads"). */
export const AUTH_COMMENTS = 4;

export type CommentChange =
  | { event: "thread"; thread: CommentThread }
  | { event: "reply"; reply: CommentReply }
  | { event: "resolved"; state: ThreadState }
  | { event: "deleted"; deleted: DeletedComment };

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null;

/** A comments message's JSON as a change, or null when it is not one this page understands. */
export function parseChange(json: string): CommentChange | null {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch {
    return null;
  }
  if (!isObject(raw)) return null;
  const ok = (key: string, ...fields: string[]): boolean => {
    const value = raw[key];
    return isObject(value) && fields.every((field) => typeof value[field] === "string");
  };
  switch (raw.event) {
    case "thread": return ok("thread", "id", "file", "body", "quote") && Array.isArray((raw.thread as { replies?: unknown }).replies) ? raw as CommentChange : null;
    case "reply": return ok("reply", "id", "thread_id", "body") ? raw as CommentChange : null;
    case "resolved": return ok("state", "thread_id") ? raw as CommentChange : null;
    case "deleted": return ok("deleted", "thread_id", "comment_id") ? raw as CommentChange : null;
    default: return null;
  }
}

/** The threads, by id, in the order they were made. */
export class CommentStore {
  private byId = new Map<string, CommentThread>();
  private readonly listeners = new Set<() => void>();

  all(): CommentThread[] {
    return [...this.byId.values()].sort((a, b) => a.created_at.localeCompare(b.created_at) || a.id.localeCompare(b.id));
  }

  get(threadId: string): CommentThread | undefined {
    return this.byId.get(threadId);
  }

  openCount(): number {
    let open = 0;
    for (const thread of this.byId.values()) if (!thread.resolved) open += 1;
    return open;
  }

  onChange(listener: () => void): void {
    this.listeners.add(listener);
  }

  /** Replaces everything with the server's list. */
  replace(threads: CommentThread[]): void {
    this.byId = new Map(threads.map((thread) => [thread.id, thread]));
    this.changed();
  }

  /** Applies one change; the page's own changes arrive twice (its answer and the message). */
  apply(change: CommentChange): void {
    switch (change.event) {
      case "thread": {
        const known = this.byId.get(change.thread.id);
        this.byId.set(change.thread.id, known ? { ...change.thread, replies: known.replies } : change.thread);
        break;
      }
      case "reply": {
        const thread = this.byId.get(change.reply.thread_id);
        if (!thread || thread.replies.some((reply) => reply.id === change.reply.id)) return;
        this.byId.set(thread.id, { ...thread, replies: [...thread.replies, change.reply] });
        break;
      }
      case "resolved": {
        const thread = this.byId.get(change.state.thread_id);
        if (!thread) return;
        const { resolved, resolved_by, resolved_at } = change.state;
        this.byId.set(thread.id, { ...thread, resolved, resolved_by, resolved_at });
        break;
      }
      case "deleted": {
        const { thread_id: threadId, comment_id: commentId } = change.deleted;
        const thread = this.byId.get(threadId);
        if (!thread) return;
        if (commentId === threadId) this.byId.delete(threadId);
        else this.byId.set(threadId, { ...thread, replies: thread.replies.filter((reply) => reply.id !== commentId) });
        break;
      }
    }
    this.changed();
  }

  private changed(): void {
    for (const listener of this.listeners) listener();
  }
}

/**
 * Hands the server's comments messages to `onChange`, and calls `onSynced` at every (re)sync.
 * The provider's auth handler (connection.ts) stays in charge of every other sub-type: this
 * only looks ahead at the sub-type on a copy of the decoder.
 */
export function listenForComments(
  provider: WebsocketProvider, onChange: (change: CommentChange) => void, onSynced: () => void,
): void {
  const previous = provider.messageHandlers[messageAuth]!;
  provider.messageHandlers[messageAuth] = (encoder, decoder, ...rest) => {
    const ahead = decoding.clone(decoder);
    if (decoding.readVarUint(ahead) === AUTH_COMMENTS) {
      const change = parseChange(decoding.readVarString(ahead));
      if (change !== null) onChange(change);
      return;
    }
    previous(encoder, decoder, ...rest);
  };
  provider.on("sync", (synced: boolean) => {
    if (synced) onSynced();
  });
}
