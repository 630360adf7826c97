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

/** Seconds of validity a token must still have to be reused. */
const TOKEN_MARGIN_S = 60;

async function request<T>(method: string, path: string, body?: unknown, token?: string): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  let response: Response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    throw new ApiError(0, "network", `${method} ${path}: server unreachable (${String(err)})`);
  }
  const text = await response.text();
  let parsed: unknown = null;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = null;
    }
  }
  if (!response.ok) {
    const err = parsed as { error?: unknown; message?: unknown; detail?: unknown } | null;
    const code = typeof err?.error === "string" ? err.error : response.statusText || "http_error";
    const message =
      typeof err?.message === "string" ? err.message
      : typeof err?.detail === "string" ? err.detail
      : `${method} ${path} failed`;
    throw new ApiError(response.status, code, message, response.headers);
  }
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

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const session = await this.currentSession();
    try {
      return await request<T>(method, path, body, session.token);
    } catch (err) {
      if (!(err instanceof ApiError) || err.status !== 401) throw err;
      const renewed = await this.renewSession();
      return request<T>(method, path, body, renewed.token);
    }
  }

  /** Joins (and on first use creates) a room. */
  joinRoom(roomId: string): Promise<JoinResult> {
    return this.call("POST", `/api/rooms/${encodeURIComponent(roomId)}/join`);
  }

  /** The room's members; accepts a bare list or `{"members": [...]}`. */
  async listMembers(roomId: string): Promise<MemberInfo[]> {
    const body = await this.call<MemberInfo[] | { members?: MemberInfo[] }>("GET", `/api/rooms/${encodeURIComponent(roomId)}/members`);
    const list = Array.isArray(body) ? body : body?.members;
    if (!Array.isArray(list)) throw new ApiError(200, "bad_response", "members: expected a list");
    return list;
  }

  setMemberRole(roomId: string, userId: string, role: Role): Promise<unknown> {
    return this.call("PUT", `/api/rooms/${encodeURIComponent(roomId)}/members/${encodeURIComponent(userId)}`, { role });
  }

  setDefaultRole(roomId: string, defaultRole: Role): Promise<unknown> {
    return this.call("PATCH", `/api/rooms/${encodeURIComponent(roomId)}`, { default_role: defaultRole });
  }

  getSnapshot(roomId: string): Promise<SnapshotInfo> {
    return this.call("GET", `/api/rooms/${encodeURIComponent(roomId)}/snapshot`);
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
