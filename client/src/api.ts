/**
 * REST calls to the PairPilot server (DESIGN.md §3, §4, §6). Every failure becomes an ApiError
 * carrying the HTTP status and the server's `{"error","message"}` body, for the UI to show.
 */
import { forgetStoredSession, loadSession, saveSession, type Session } from "./storage";
import { refreshSupabaseSession, signOutOfSupabase } from "./supabase-session";

export type Role = "owner" | "editor" | "viewer";
export const ROLES: readonly Role[] = ["owner", "editor", "viewer"];

/** What joining by the room's id does: joiners become editors, viewers, or nothing (invite only). */
export type LinkAccess = "edit" | "view" | "none";
export interface RoomInfo { id: string; owner_id: string; default_role: Role; created_at: string; link_access: LinkAccess }
/** A new invite link (`token` is shown once); `url` is the server's idea of the page's address. */
export interface CreatedInvite { id: string; token: string; url: string; role: Role; expires_at: string }
/** A live invite as owners list it (never its token). */
export interface InviteInfo { id: string; role: Role; created_by: string; created_at: string; expires_at: string; revoked: boolean }
export interface MemberInfo { user_id: string; role: Role; name?: string | null }
export interface JoinResult { room: RoomInfo; member: MemberInfo }
export interface SnapshotInfo { room_id: string; snapshot_b64: string | null; updated_at: string | null }
export interface ClientConfig {
  browser_sentry_dsn: string | null;
  /** Both set when the page may take sessions from this Supabase project (the key is public). */
  supabase_url?: string | null;
  supabase_anon_key?: string | null;
}
export type VersionKind = "auto" | "named" | "restore";
/** A saved version of a room: an automatic checkpoint, a named one, or the state before a restore. */
export interface VersionInfo {
  id: number;
  room_id: string;
  kind: VersionKind;
  name: string | null;
  author_id: string | null;
  author_name: string | null;
  created_at: string;
  size_bytes: number;
}
export interface VersionPage { versions: VersionInfo[]; next_before: number | null }
export interface VersionDetail extends VersionInfo { files: Record<string, string>; snapshot_b64: string }
export interface RestoreResult { restored: VersionInfo; backup: VersionInfo }
/** Where an uploaded file went: `name` in the room, `source` as uploaded. */
export interface UploadedFile { name: string; source: string }
/** What `DELETE /api/me` removed: the rooms the caller alone owned, and the rooms they left. */
export interface DeletedData { deleted_rooms: string[]; left_rooms: string[] }
export type RunPermit =
  | { allowed: true; limit?: number; remaining?: number; reset_s?: number; degraded?: boolean }
  | { allowed: false; retryAfterS: number };

/** A comment thread: its file, anchor (encoded Yjs relative positions), quote and replies. */
export interface CommentReply { id: string; thread_id: string; author_id: string; author_name: string | null; body: string; created_at: string }
export interface ThreadState { thread_id: string; resolved: boolean; resolved_by: string | null; resolved_at: string | null }
export interface NewCommentThread { file: string; anchor: { start: string; end: string }; quote: string; body: string }
export interface CommentThread extends NewCommentThread {
  id: string;
  author_id: string;
  author_name: string | null;
  created_at: string;
  resolved: boolean;
  resolved_by: string | null;
  resolved_at: string | null;
  replies: CommentReply[];
}
export interface DeletedComment { thread_id: string; comment_id: string }

/** An API call that failed: HTTP status (0 when the server was not reached) and the server's code. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Headers | null = null,
    /** The error's JSON body (e.g. `new_room_id` of a 410 `room_moved`). */
    readonly body: unknown = null,
  ) {
    super(message);
    this.name = "ApiError";
  }

  /** One line for the UI: "404 not_found: room not found". */
  describe(): string {
    return this.status === 0 ? this.message : `${this.status} ${this.code}: ${this.message}`;
  }
}

/** Versions asked for per page of the history. */
export const VERSIONS_PAGE_SIZE = 20;

function roomPath(roomId: string): string {
  return `/api/rooms/${encodeURIComponent(roomId)}`;
}

function uploaded(body: { files?: unknown } | null): UploadedFile[] {
  if (!Array.isArray(body?.files)) throw new ApiError(200, "bad_response", "upload: expected a list of files");
  return body.files as UploadedFile[];
}

/** Room ids from a list of ids or of `{"id"}` / `{"room_id"}` objects. */
function roomIds(list: unknown): string[] {
  if (!Array.isArray(list)) return [];
  return list.flatMap((item: unknown) => {
    if (typeof item === "string") return [item];
    const record = item as { id?: unknown; room_id?: unknown } | null;
    const id = record?.id ?? record?.room_id;
    return typeof id === "string" ? [id] : [];
  });
}

/**
 * Seconds of validity a token must still have to be used. The server asks an open socket for a
 * new token 60 s before its expiry, so a token with less would be asked to renew at once.
 */
const TOKEN_MARGIN_S = 60;
/** The proactive refresh comes this long before expiry (when the token lives that long). */
const REFRESH_AHEAD_S = 90;
/** The proactive refresh never comes sooner than this after a new token (very short TTLs). */
const MIN_REFRESH_DELAY_MS = 5_000;
/** A proactive refresh that failed (server unreachable) is tried again after this. */
const REFRESH_RETRY_MS = 30_000;

/** A request body: JSON (serialised here) or raw bytes with their content type. */
type Body = { json: unknown } | { raw: Blob | ArrayBuffer; contentType: string };

/** Sends one request; a non-2xx answer becomes an ApiError from its `{"error","message"}` body. */
async function send(method: string, path: string, body: Body | undefined, token: string | undefined, accept: string): Promise<Response> {
  const headers: Record<string, string> = { Accept: accept };
  let payload: BodyInit | undefined;
  if (body !== undefined && "json" in body) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body.json);
  } else if (body !== undefined) {
    headers["Content-Type"] = body.contentType;
    payload = body.raw;
  }
  if (token) headers.Authorization = `Bearer ${token}`;
  let response: Response;
  try {
    response = await fetch(path, { method, headers, body: payload });
  } catch (err) {
    throw new ApiError(0, "network", `${method} ${path}: server unreachable (${String(err)})`);
  }
  if (!response.ok) {
    const err = parseJson(await response.text()) as { error?: unknown; message?: unknown; detail?: unknown } | null;
    const code = typeof err?.error === "string" ? err.error : response.statusText || "http_error";
    const message =
      typeof err?.message === "string" ? err.message
      : typeof err?.detail === "string" ? err.detail
      : `${method} ${path} failed`;
    throw new ApiError(response.status, code, message, response.headers, err);
  }
  return response;
}

function parseJson(text: string): unknown {
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

async function request<T>(method: string, path: string, body?: unknown, token?: string): Promise<T> {
  return readJson<T>(await send(method, path, body === undefined ? undefined : { json: body }, token, "application/json"), method, path);
}

async function readJson<T>(response: Response, method: string, path: string): Promise<T> {
  const text = await response.text();
  const parsed = parseJson(text);
  if (parsed === null && text) {
    throw new ApiError(response.status, "bad_response", `${method} ${path}: response is not JSON`);
  }
  return parsed as T;
}

/** The answer of `/api/auth/anonymous` and `/api/auth/token` (Supabase's shape). */
interface TokenAnswer {
  access_token?: unknown;
  expires_in?: unknown;
  refresh_token?: unknown;
  user?: { id?: unknown; name?: unknown } | null;
}

/** The session in a sign-in or refresh answer, stored for every tab of this browser. */
function storeAnswer(answer: TokenAnswer | null, what: string): Session {
  const user = answer?.user;
  if (typeof answer?.access_token !== "string" || typeof answer.expires_in !== "number" || typeof user?.id !== "string") {
    throw new ApiError(200, "bad_response", `${what} answered without a token`);
  }
  const session: Session = {
    token: answer.access_token,
    // Our clock, not the server's `expires_at`: a skewed clock must not make a token look stale.
    expiresAt: Date.now() + answer.expires_in * 1000,
    user: { id: user.id, name: typeof user.name === "string" ? user.name : "" },
  };
  if (typeof answer.refresh_token === "string") session.refreshToken = answer.refresh_token;
  saveSession(session);
  return session;
}

/** Signs in anonymously (a new user id) and stores the session. */
export async function signInAnonymously(name: string): Promise<Session> {
  return storeAnswer(await request<TokenAnswer>("POST", "/api/auth/anonymous", { name }), "sign-in");
}

/** Exchanges a refresh token (used up by this) for the same user's next session, and stores it. */
export async function refreshSession(refreshToken: string): Promise<Session> {
  const answer = await request<TokenAnswer>(
    "POST", "/api/auth/token?grant_type=refresh_token", { refresh_token: refreshToken },
  );
  return storeAnswer(answer, "refresh");
}

function isFresh(session: Session, now = Date.now()): boolean {
  return session.expiresAt - TOKEN_MARGIN_S * 1000 > now;
}

/** Milliseconds until a session's proactive refresh. */
function refreshDelayMs(session: Session, now = Date.now()): number {
  const ahead = session.expiresAt - REFRESH_AHEAD_S * 1000 - now;
  // A token shorter-lived than REFRESH_AHEAD_S is refreshed when it stops being fresh.
  const stale = session.expiresAt - TOKEN_MARGIN_S * 1000 - now;
  return Math.max(MIN_REFRESH_DELAY_MS, ahead > 0 ? ahead : stale);
}

/**
 * An authenticated caller bound to a display name: sends the bearer token, refreshes it ahead of
 * its expiry (the same user), and on a 401 refreshes once and retries. A new anonymous user is
 * made only when there is no session or its refresh token is refused.
 */
export class Api {
  private session: Session | null = null;
  /** The one refresh under way: a refresh token is used once, so concurrent callers share it. */
  private refreshing: Promise<Session> | null = null;
  private refreshTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly sessionListeners = new Set<(session: Session) => void>();
  private readonly lostListeners = new Set<(message: string) => void>();

  constructor(private readonly name: () => string) {}

  /**
   * Calls `listener` whenever another session replaces this page's: a refresh (same user id) or
   * a new sign-in (a new anonymous user id); compare `session.user.id` to tell them apart.
   */
  onSessionChange(listener: (session: Session) => void): () => void {
    this.sessionListeners.add(listener);
    return () => this.sessionListeners.delete(listener);
  }

  /**
   * Calls `listener` with a sentence for the person when a Supabase session could not be
   * refreshed and the page went on as a new guest (PairPilot's anonymous sign-in).
   */
  onSupabaseSessionLost(listener: (message: string) => void): () => void {
    this.lostListeners.add(listener);
    return () => this.lostListeners.delete(listener);
  }

  /** A session with more than TOKEN_MARGIN_S left: the stored one, else a refreshed one. */
  async currentSession(): Promise<Session> {
    const session = this.latest();
    if (session !== null && isFresh(session)) return this.adopt(session);
    return this.refresh(session?.token ?? null);
  }

  /**
   * A session whose token is not `stale` (refused with 401 / 4401, or expiring on a socket): the
   * newer one another call or tab already got, else a refresh.
   */
  async renewSession(stale: string): Promise<Session> {
    const session = this.latest();
    if (session !== null && session.token !== stale && isFresh(session)) return this.adopt(session);
    return this.refresh(stale);
  }

  /** This page's session, or a newer one of the same user that another tab stored. */
  private latest(): Session | null {
    const stored = loadSession();
    const mine = this.session;
    if (mine === null) return stored;
    return stored !== null && stored.user.id === mine.user.id && stored.expiresAt > mine.expiresAt ? stored : mine;
  }

  private refresh(stale: string | null): Promise<Session> {
    this.refreshing ??= this.exchange(stale).finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  private async exchange(stale: string | null): Promise<Session> {
    // Tabs of this browser share localStorage: another one may have refreshed already, and its
    // answer holds the only refresh token that is not used up.
    const stored = loadSession();
    const mine = this.session;
    const ours = stored !== null && (mine === null || stored.user.id === mine.user.id) ? stored : null;
    if (ours !== null && ours.token !== stale && isFresh(ours)) return this.adopt(ours);
    const current = ours?.refreshToken !== undefined ? ours : mine;
    const refreshToken = current?.refreshToken;
    if (current !== null && refreshToken !== undefined) {
      try {
        return this.adopt(await (current.supabase
          ? refreshSupabaseSession(current.supabase, refreshToken, current.user)
          : refreshSession(refreshToken)));
      } catch (err) {
        // Unknown, expired or revoked: only then is a new anonymous user the way back in.
        if (!(err instanceof ApiError) || (err.status !== 401 && err.status !== 400)) throw err;
        if (current.supabase) {
          const message = `${err.message}. You are now a guest here; sign in with Supabase again to be yourself.`;
          for (const listener of this.lostListeners) listener(message);
        }
      }
    }
    return this.adopt(await signInAnonymously(this.name()));
  }

  private adopt(session: Session): Session {
    const previous = this.session;
    this.session = session;
    if (previous?.token !== session.token) {
      this.scheduleRefresh(refreshDelayMs(session));
      if (previous !== null) for (const listener of this.sessionListeners) listener(session);
    }
    return session;
  }

  /** Refreshes ahead of expiry, so no call and no socket waits on an expired token. */
  private scheduleRefresh(delayMs: number): void {
    if (this.refreshTimer !== null) clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => {
      this.refreshTimer = null;
      const current = this.session;
      if (current === null) return;
      this.renewSession(current.token).catch((err: unknown) => {
        console.warn("PairPilot: could not refresh the token; trying again", err);
        if (this.refreshTimer === null) this.scheduleRefresh(REFRESH_RETRY_MS);
      });
    }, delayMs);
  }

  /**
   * Forgets this page's session (after `DELETE /api/me`): no timed refresh, and the next call
   * signs in as a new user.
   */
  forgetSession(): void {
    if (this.refreshTimer !== null) clearTimeout(this.refreshTimer);
    this.refreshTimer = null;
    this.session = null;
  }

  /** Whether this page is signed in with a Supabase session. */
  usesSupabase(): boolean {
    return this.latest()?.supabase !== undefined;
  }

  /**
   * Signs out: a Supabase session is ended at Supabase, and this browser forgets the session (the
   * next call signs in as a guest). Resolves to a sentence when Supabase could not be told.
   */
  async signOut(): Promise<string | null> {
    const session = this.latest();
    await this.refreshing?.catch(() => undefined); // a refresh under way would store a session again
    this.forgetSession();
    forgetStoredSession();
    const supabase = session?.supabase;
    return session !== null && supabase !== undefined ? signOutOfSupabase({ ...session, supabase }) : null;
  }

  /** Runs `attempt` with the token; on a 401 refreshes once (the same user) and retries. */
  private async authorised<R>(attempt: (token: string) => Promise<R>): Promise<R> {
    const session = await this.currentSession();
    try {
      return await attempt(session.token);
    } catch (err) {
      if (!(err instanceof ApiError) || err.status !== 401) throw err;
      const renewed = await this.renewSession(session.token);
      return attempt(renewed.token);
    }
  }

  private call<T>(method: string, path: string, body?: unknown): Promise<T> {
    return this.authorised((token) => request<T>(method, path, body, token));
  }

  /** A call whose body is raw bytes (a zip), answered with JSON. */
  private callRaw<T>(method: string, path: string, raw: Blob | ArrayBuffer, contentType: string): Promise<T> {
    return this.authorised(async (token) => readJson<T>(await send(method, path, { raw, contentType }, token, "application/json"), method, path));
  }

  /** Joins (and on first use creates) a room; with an invite token, with the invite's role. */
  joinRoom(roomId: string, invite: string | null = null): Promise<JoinResult> {
    return this.call("POST", `${roomPath(roomId)}/join`, invite === null ? undefined : { invite });
  }

  /** Owners: what joining by the room's id does. */
  setLinkAccess(roomId: string, linkAccess: LinkAccess): Promise<RoomInfo> {
    return this.call("PATCH", roomPath(roomId), { link_access: linkAccess });
  }

  /** Owners: a new invite link granting `role` (editor or viewer). */
  createInvite(roomId: string, role: Role): Promise<CreatedInvite> {
    return this.call("POST", `${roomPath(roomId)}/invites`, { role });
  }

  /** Owners: the room's live invites, newest first (without their tokens). */
  listInvites(roomId: string): Promise<InviteInfo[]> {
    return this.call("GET", `${roomPath(roomId)}/invites`);
  }

  /** Owners: revokes an invite; members it already brought in stay. */
  revokeInvite(roomId: string, inviteId: string): Promise<InviteInfo> {
    return this.call("DELETE", `${roomPath(roomId)}/invites/${encodeURIComponent(inviteId)}`);
  }

  /** Deletes the room for everyone (owners); its id is never used again. */
  deleteRoom(roomId: string): Promise<unknown> {
    return this.call("DELETE", roomPath(roomId));
  }

  /** Owners: moves the room to a new random id (content, members, history; not invites). */
  moveRoom(roomId: string): Promise<{ room_id: string; new_room_id: string }> {
    return this.call("POST", `${roomPath(roomId)}/move`);
  }

  /** Deletes the caller's data: memberships, refresh tokens, the rooms they alone own. */
  async deleteMyData(): Promise<DeletedData> {
    const body = await this.call<{ deleted_rooms?: unknown; left_rooms?: unknown } | null>("DELETE", "/api/me");
    return { deleted_rooms: roomIds(body?.deleted_rooms), left_rooms: roomIds(body?.left_rooms) };
  }

  /** The room's members; accepts a bare list or `{"members": [...]}`. */
  async listMembers(roomId: string): Promise<MemberInfo[]> {
    const body = await this.call<MemberInfo[] | { members?: MemberInfo[] }>("GET", `${roomPath(roomId)}/members`);
    const list = Array.isArray(body) ? body : body?.members;
    if (!Array.isArray(list)) throw new ApiError(200, "bad_response", "members: expected a list");
    return list;
  }

  setMemberRole(roomId: string, userId: string, role: Role): Promise<unknown> {
    return this.call("PUT", `${roomPath(roomId)}/members/${encodeURIComponent(userId)}`, { role });
  }

  setDefaultRole(roomId: string, defaultRole: Role): Promise<RoomInfo> {
    return this.call("PATCH", roomPath(roomId), { default_role: defaultRole });
  }

  getSnapshot(roomId: string): Promise<SnapshotInfo> {
    return this.call("GET", `${roomPath(roomId)}/snapshot`);
  }

  /** A page of the room's versions, newest first; pass `next_before` as `before` for the next. */
  listVersions(roomId: string, page: { limit?: number; before?: number | null } = {}): Promise<VersionPage> {
    const query = new URLSearchParams({ limit: String(page.limit ?? VERSIONS_PAGE_SIZE) });
    if (page.before != null) query.set("before", String(page.before));
    return this.call("GET", `${roomPath(roomId)}/versions?${query}`);
  }

  /** One version with its files' texts. */
  getVersion(roomId: string, versionId: number): Promise<VersionDetail> {
    return this.call("GET", `${roomPath(roomId)}/versions/${versionId}`);
  }

  /** Keeps the room's current state as a named version (editors and owners). */
  nameVersion(roomId: string, name: string): Promise<VersionInfo> {
    return this.call("POST", `${roomPath(roomId)}/versions`, { name });
  }

  /** Makes the room's files equal to the version's; the live room converges on it. */
  restoreVersion(roomId: string, versionId: number): Promise<RestoreResult> {
    return this.call("POST", `${roomPath(roomId)}/versions/${versionId}/restore`);
  }

  // ---- comment threads (README, "Comment threads") ----

  /** The room's threads with their replies, oldest first. */
  async listComments(roomId: string): Promise<CommentThread[]> {
    return (await this.call<{ threads: CommentThread[] }>("GET", `${roomPath(roomId)}/comments`)).threads;
  }

  /** Opens a thread on a range of a file (editors and owners). */
  openThread(roomId: string, thread: NewCommentThread): Promise<CommentThread> {
    return this.call("POST", `${roomPath(roomId)}/comments`, thread);
  }

  replyToThread(roomId: string, threadId: string, body: string): Promise<CommentReply> {
    return this.call("POST", `${roomPath(roomId)}/comments/${encodeURIComponent(threadId)}/replies`, { body });
  }

  resolveThread(roomId: string, threadId: string, resolved: boolean): Promise<ThreadState> {
    return this.call("PATCH", `${roomPath(roomId)}/comments/${encodeURIComponent(threadId)}`, { resolved });
  }

  /** Deletes a thread (with its replies) or one reply, by its id. */
  deleteComment(roomId: string, commentId: string): Promise<DeletedComment> {
    return this.call("DELETE", `${roomPath(roomId)}/comments/${encodeURIComponent(commentId)}`);
  }

  /** Every file of the room as a zip. */
  exportZip(roomId: string): Promise<Blob> {
    const path = `${roomPath(roomId)}/export.zip`;
    return this.authorised(async (token) => (await send("GET", path, undefined, token, "application/zip")).blob());
  }

  /** Adds text files to the room; taken names get a number. */
  async uploadFiles(roomId: string, files: { name: string; text: string }[]): Promise<UploadedFile[]> {
    return uploaded(await this.call<{ files?: unknown }>("POST", `${roomPath(roomId)}/files`, { files }));
  }

  /** Adds every text file of a zip archive to the room. */
  async importZip(roomId: string, zip: Blob): Promise<UploadedFile[]> {
    return uploaded(await this.callRaw<{ files?: unknown }>("POST", `${roomPath(roomId)}/import.zip`, zip, "application/zip"));
  }

  /** Asks the server for a Run; a 429 becomes `{allowed: false, retryAfterS}`. */
  async requestRun(roomId: string): Promise<RunPermit> {
    try {
      const permit = await this.call<RunPermit & { allowed: boolean }>("POST", "/api/ratelimit/run", { roomId });
      if (permit.allowed !== true) throw new ApiError(200, "bad_response", "rate limiter did not allow the run");
      return permit;
    } catch (err) {
      if (err instanceof ApiError && err.status === 429) {
        return { allowed: false, retryAfterS: parseRetryAfter(err.headers?.get("Retry-After") ?? null) };
      }
      throw err;
    }
  }
}

/** Retry-After in whole seconds (delta-seconds or an HTTP date); 60 when absent or unreadable. */
export function parseRetryAfter(value: string | null): number {
  if (value === null) return 60;
  const seconds = Number(value.trim());
  if (Number.isFinite(seconds)) return Math.max(0, Math.ceil(seconds));
  const date = Date.parse(value);
  return Number.isNaN(date) ? 60 : Math.max(0, Math.ceil((date - Date.now()) / 1000));
}

/** The client configuration (Sentry DSN); sends the stored token when there is one. */
export function fetchClientConfig(): Promise<ClientConfig> {
  return request<ClientConfig>("GET", "/api/config", undefined, loadSession()?.token);
}
