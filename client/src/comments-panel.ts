/**
 * Comments on the page: "Comment" on a selection, the current file's threads in a side list
 * (reply, resolve, reopen, delete, jump to the code), their markers in the editor's gutter, and
 * the count of open threads in the header. Every text a person wrote is shown as text (DOM text
 * nodes): a body of `<img onerror=…>` is those characters.
 */
import { EditorSelection, type Extension } from "@codemirror/state";
import { EditorView } from "@codemirror/view";
import type { WebsocketProvider } from "y-websocket";
import type { Api, CommentThread, Role } from "./api";
import { anchorOf, resolveAnchor, type Span } from "./comment-anchors";
import { commentGutter, showCommentMarks } from "./comment-gutter";
import { CommentStore, listenForComments } from "./comments";
import { h, replaceChildren } from "./dom";
import { fileIdentity, fileNamed } from "./file-identity";
import type { RoomFiles } from "./files";

/** A quote longer than this is cut (the server keeps at most 2,000 characters). */
const MAX_QUOTE_CHARS = 2000;
/** Edits re-resolve the anchors at most this often. */
const RESOLVE_EVERY_MS = 150;

export interface CommentsOptions {
  api: Api;
  roomId: string;
  files: RoomFiles;
  selfId: () => string;
  role: () => Role | null;
  view: () => EditorView | null;
  onError: (what: string, err: unknown) => void;
}

export interface CommentsPanel {
  /** The header's count of open threads. */
  count: HTMLElement;
  /** The "Comment" button and its form, above the editor. */
  composer: HTMLElement;
  /** The current file's threads. */
  element: HTMLElement;
  /** For the editor: gutter markers, underlined ranges, selection tracking. */
  extension: Extension;
  setFile: (file: string | null) => void;
  setEditable: (editable: boolean) => void;
  /** Live changes from the socket, and a reload at every (re)sync. */
  connect: (provider: WebsocketProvider) => void;
  reload: () => Promise<void>;
}

interface Draft { file: string; anchor: { start: string; end: string }; quote: string }

function when(iso: string): string {
  const at = new Date(iso);
  return Number.isNaN(at.getTime()) ? "" : at.toLocaleString(undefined, { dateStyle: "short", timeStyle: "short" });
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export function mountComments(options: CommentsOptions): CommentsPanel {
  const { api, roomId, files } = options;
  const store = new CommentStore();
  let file: string | null = null;
  let editable = false;
  let selection: Span = { from: 0, to: 0 };
  let draft: Draft | null = null;
  let focused: string | null = null;

  // ---- header count ----
  const count = h("span", { class: "comment-count", "data-testid": "open-comments", title: "Open comment threads" }, "💬 0 open");

  // ---- composer ----
  const addButton = h("button", { type: "button", "data-testid": "add-comment", disabled: true, title: "Select some code to comment on it" }, "💬 Comment");
  const draftQuote = h("blockquote", { class: "comment-quote", "data-testid": "draft-quote" });
  const input = h("textarea", { "data-testid": "comment-input", rows: 3, placeholder: "Your comment", "aria-label": "Comment" });
  const submit = h("button", { type: "submit", class: "primary", "data-testid": "comment-submit" }, "Comment");
  const cancel = h("button", { type: "button", "data-testid": "comment-cancel" }, "Cancel");
  const formError = h("div", { class: "comment-error", "data-testid": "comment-error", role: "alert", hidden: true });
  const form = h("form", { class: "comment-form", "data-testid": "comment-form", hidden: true }, draftQuote, input, h("div", { class: "comment-actions" }, submit, cancel), formError);
  const composer = h("div", { class: "comment-composer" }, addButton, form);

  // ---- side list ----
  const list = h("ul", { class: "comment-list", "data-testid": "comments-list" });
  const empty = h("p", { class: "muted", "data-testid": "comments-empty" }, "No comments on this file.");
  const element = h("section", { class: "comments", "data-testid": "comments" }, h("h2", {}, "Comments"), empty, list);

  const canAdd = (): boolean => editable && file !== null && selection.from < selection.to;
  const refreshAddButton = (): void => {
    addButton.disabled = !canAdd();
  };

  const closeForm = (): void => {
    draft = null;
    form.hidden = true;
    formError.hidden = true;
    input.value = "";
  };

  addButton.addEventListener("click", () => {
    const text = file === null ? undefined : files.get(file);
    if (!canAdd() || text === undefined || file === null) return;
    const { from, to } = selection;
    const quoted = text.toString().slice(from, to);
    const quote = quoted.length > MAX_QUOTE_CHARS ? `${quoted.slice(0, MAX_QUOTE_CHARS - 1)}…` : quoted;
    draft = { file: fileIdentity(files, file), anchor: anchorOf(text, from, to), quote };
    draftQuote.textContent = quote;
    formError.hidden = true;
    form.hidden = false;
    input.focus();
  });
  cancel.addEventListener("click", closeForm);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (draft === null) return;
    submit.disabled = true;
    api.openThread(roomId, { ...draft, body: input.value }).then(
      (thread) => {
        store.apply({ event: "thread", thread });
        closeForm();
      },
      (err: unknown) => {
        // The text stays in the box: nothing is lost to a refusal.
        formError.textContent = `Could not add the comment: ${errorText(err)}`;
        formError.hidden = false;
      },
    ).finally(() => {
      submit.disabled = false;
    });
  });

  // ---- threads ----
  const spanOf = (thread: CommentThread): Span | null => {
    const name = fileNamed(files, thread.file);
    const text = name === null ? undefined : files.get(name);
    return text === undefined ? null : resolveAnchor(text, thread.anchor);
  };

  const jumpTo = (span: Span): void => {
    const view = options.view();
    if (view === null) return;
    view.dispatch({
      selection: EditorSelection.range(span.from, span.to),
      effects: EditorView.scrollIntoView(span.from, { y: "center" }),
    });
    view.focus();
  };

  const act = (what: string, action: Promise<unknown>): void => {
    action.catch((err: unknown) => options.onError(what, err));
  };

  const threadItem = (thread: CommentThread, span: Span | null): HTMLElement => {
    const mine = thread.author_id === options.selfId();
    const owner = options.role() === "owner";
    const state = span === null ? "outdated" : thread.resolved ? "resolved" : "open";
    const replies = h("ul", { class: "comment-replies" });
    for (const reply of thread.replies) {
      const remove = editable && (owner || reply.author_id === options.selfId())
        ? h("button", { type: "button", class: "link", "data-testid": "reply-delete", title: "Delete this reply" }, "Delete")
        : null;
      remove?.addEventListener("click", () => act("Could not delete the reply", api.deleteComment(roomId, reply.id).then((deleted) => store.apply({ event: "deleted", deleted }))));
      replies.append(h("li", { class: "comment-reply", "data-testid": "comment-reply", "data-reply-id": reply.id },
        h("span", { class: "comment-author" }, reply.author_name ?? "someone"),
        h("span", { class: "comment-when" }, when(reply.created_at)),
        h("div", { class: "comment-text", "data-testid": "reply-text" }, reply.body),
        remove));
    }
    const jump = h("button", { type: "button", "data-testid": "comment-jump", disabled: span === null }, "Show in code");
    jump.addEventListener("click", () => { if (span !== null) jumpTo(span); });
    const actions = h("div", { class: "comment-actions" }, jump);
    if (editable) {
      const toggle = thread.resolved
        ? h("button", { type: "button", "data-testid": "comment-reopen" }, "Reopen")
        : h("button", { type: "button", "data-testid": "comment-resolve" }, "Resolve");
      toggle.addEventListener("click", () => act("Could not change the thread", api.resolveThread(roomId, thread.id, !thread.resolved).then((resolved) => store.apply({ event: "resolved", state: resolved }))));
      actions.append(toggle);
      if (mine || owner) {
        const remove = h("button", { type: "button", "data-testid": "comment-delete" }, "Delete");
        remove.addEventListener("click", () => act("Could not delete the thread", api.deleteComment(roomId, thread.id).then((deleted) => store.apply({ event: "deleted", deleted }))));
        actions.append(remove);
      }
    }
    let replyForm: HTMLElement | null = null;
    if (editable && !thread.resolved) {
      const replyInput = h("textarea", { "data-testid": "reply-input", rows: 1, placeholder: "Reply", "aria-label": "Reply" });
      const replyError = h("div", { class: "comment-error", "data-testid": "reply-error", role: "alert", hidden: true });
      const send = h("button", { type: "submit", "data-testid": "reply-submit" }, "Reply");
      replyForm = h("form", { class: "reply-form" }, replyInput, send, replyError);
      replyForm.addEventListener("submit", (event) => {
        event.preventDefault();
        send.disabled = true;
        api.replyToThread(roomId, thread.id, replyInput.value).then(
          (reply) => store.apply({ event: "reply", reply }),
          (err: unknown) => {
            replyError.textContent = `Could not reply: ${errorText(err)}`;
            replyError.hidden = false;
          },
        ).finally(() => { send.disabled = false; });
      });
    }
    return h("li", {
      class: `comment-thread ${state}${focused === thread.id ? " focused" : ""}`,
      "data-testid": "comment-thread",
      "data-thread-id": thread.id,
      "data-state": state,
    },
    h("div", { class: "comment-head" },
      h("span", { class: "comment-author", "data-testid": "comment-author" }, thread.author_name ?? "someone"),
      h("span", { class: "comment-when" }, when(thread.created_at)),
      span === null ? h("span", { class: "badge", "data-testid": "comment-outdated", title: "The code it was about was changed or deleted" }, "outdated") : null,
      thread.resolved ? h("span", { class: "badge", "data-testid": "comment-resolved" }, "resolved") : null),
    h("blockquote", { class: "comment-quote", "data-testid": "comment-quote" }, thread.quote),
    h("div", { class: "comment-text", "data-testid": "comment-text" }, thread.body),
    replies, actions, replyForm);
  };

  /** Keeps what a person is typing in a reply box across a re-render (a peer's change). */
  const typedReplies = (): Map<string, string> => {
    const typed = new Map<string, string>();
    for (const item of list.querySelectorAll<HTMLElement>("[data-thread-id]")) {
      const box = item.querySelector<HTMLTextAreaElement>("[data-testid=reply-input]");
      if (box?.value) typed.set(item.dataset.threadId!, box.value);
    }
    return typed;
  };

  const render = (): void => {
    count.textContent = `💬 ${store.openCount()} open`;
    const shown = file === null ? null : fileIdentity(files, file);
    const threads = store.all().filter((thread) => thread.file === shown);
    const spans = new Map(threads.map((thread) => [thread.id, spanOf(thread)] as const));
    const typed = typedReplies();
    const active = document.activeElement?.closest<HTMLElement>("[data-thread-id]")?.dataset.threadId;
    replaceChildren(list, ...threads.map((thread) => threadItem(thread, spans.get(thread.id) ?? null)));
    for (const [threadId, value] of typed) {
      const box = list.querySelector<HTMLTextAreaElement>(`[data-thread-id="${CSS.escape(threadId)}"] [data-testid=reply-input]`);
      if (box) {
        box.value = value;
        if (threadId === active) box.focus();
      }
    }
    empty.hidden = threads.length > 0;
    const view = options.view();
    if (view !== null) {
      const marks = threads.flatMap((thread) => {
        const span = spans.get(thread.id);
        return span && !thread.resolved ? [{ threadId: thread.id, ...span }] : [];
      });
      showCommentMarks(view, marks);
    }
  };

  let pending: ReturnType<typeof setTimeout> | null = null;
  const renderSoon = (): void => {
    pending ??= setTimeout(() => {
      pending = null;
      render();
    }, RESOLVE_EVERY_MS);
  };
  store.onChange(render);
  files.observeDeep(renderSoon);

  const reload = async (): Promise<void> => {
    try {
      store.replace(await api.listComments(roomId));
    } catch (err) {
      options.onError("Could not load the comments", err);
    }
  };

  return {
    count, composer, element,
    extension: commentGutter({
      onMarker: (threadId) => {
        focused = threadId;
        render();
        list.querySelector<HTMLElement>(`[data-thread-id="${CSS.escape(threadId)}"]`)?.scrollIntoView({ block: "nearest" });
      },
      onSelection: (from, to) => {
        selection = { from, to };
        refreshAddButton();
      },
    }),
    setFile(next) {
      file = next;
      selection = { from: 0, to: 0 };
      closeForm();
      refreshAddButton();
      render();
    },
    setEditable(value) {
      if (value === editable) return;
      editable = value;
      if (!editable) closeForm();
      refreshAddButton();
      render();
    },
    connect(provider) {
      listenForComments(provider, (change) => store.apply(change), () => void reload());
    },
    reload,
  };
}
