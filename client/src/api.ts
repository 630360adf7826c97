/**
 * REST calls to the PairPilot server (DESIGN.md §3, §4, §6). Every failure becomes an ApiError
 * carrying the HTTP status and the server's `{"error","message"}` body, for the UI to show.
 */
import { loadSession, saveSession, type Session } from "./storage";

export type Role = "owner" | "editor" | "viewer";
export const ROLES: readonly Role[] = ["owner", "editor", "viewer"];

export interface RoomInfo { id: string; owner_id: string; default_role: Role; created_at: string }
export interface MemberInfo { user_id: string; role: Role; name?: string | null }
export interface JoinResult { room: RoomInfo; member: MemberInfo }
export interface SnapshotInfo { room_id: string; snapshot_b64: string | null; updated_at: string | null }
export interface ClientConfig { browser_sentry_dsn: string | null }
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
export type RunPermit =
  | { allowed: true; limit?: number; remaining?: number; reset_s?: number; degraded?: boolean }
  | { allowed: false; retryAfterS: number };

/** An API call that failed: HTTP status (0 when the server was not reached) and the server's code. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Headers | null = null,
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

/** Seconds of validity a token must still have to be reused. */
const TOKEN_MARGIN_S = 60;

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
    throw new ApiError(response.status, code, message, response.headers);
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

/** Signs in anonymously (a new user id) and stores the token. */
export async function signInAnonymously(name: string): Promise<Session> {
  const result = await request<{ access_token: string; expires_in: number; user: { id: string; name: string } }>(
    "POST", "/api/auth/anonymous", { name },
  );
  if (!result || typeof result.access_token !== "string" || !result.user) {
    throw new ApiError(200, "bad_response", "sign-in answered without a token");
  }
  const session: Session = {
    token: result.access_token,
    expiresAt: Date.now() + result.expires_in * 1000,
    user: { id: result.user.id, name: result.user.name },
  };
  saveSession(session);
  return session;
}

/** The stored session when still valid for a while, else a fresh anonymous one. */
export async function ensureSession(name: string): Promise<Session> {
  const stored = loadSession();
  if (stored && stored.expiresAt - TOKEN_MARGIN_S * 1000 > Date.now()) return stored;
  return signInAnonymously(name);
}

/**
 * An authenticated caller bound to a display name: sends the bearer token, and on a 401 signs in
 * again once and retries.
 */
export class Api {
  private session: Session | null = null;
  private readonly sessionListeners = new Set<(session: Session) => void>();

  constructor(private readonly name: () => string) {}

  /** Calls `listener` whenever a new sign-in replaces the session (a new anonymous user id). */
  onSessionChange(listener: (session: Session) => void): () => void {
    this.sessionListeners.add(listener);
    return () => this.sessionListeners.delete(listener);
  }

  private replaceSession(session: Session): Session {
    const changed = this.session !== null && this.session.user.id !== session.user.id;
    this.session = session;
    if (changed) for (const listener of this.sessionListeners) listener(session);
    return session;
  }

  /** The current session, signing in when needed. */
  async currentSession(): Promise<Session> {
    this.session ??= await ensureSession(this.name());
    if (this.session.expiresAt - TOKEN_MARGIN_S * 1000 <= Date.now()) {
      return this.replaceSession(await signInAnonymously(this.name()));
    }
    return this.session;
  }

  /** Drops the token (after the server rejected it) and signs in again. */
  async renewSession(): Promise<Session> {
    return this.replaceSession(await signInAnonymously(this.name()));
  }

  /** Runs `attempt` with the token; on a 401 signs in again once and retries. */
  private async authorised<R>(attempt: (token: string) => Promise<R>): Promise<R> {
    const session = await this.currentSession();
    try {
      return await attempt(session.token);
    } catch (err) {
      if (!(err instanceof ApiError) || err.status !== 401) throw err;
      const renewed = await this.renewSession();
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

  /** Joins (and on first use creates) a room. */
  joinRoom(roomId: string): Promise<JoinResult> {
    return this.call("POST", `${roomPath(roomId)}/join`);
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

  setDefaultRole(roomId: string, defaultRole: Role): Promise<unknown> {
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
