/**
 * Sessions from a Supabase project (README "Signing in with Supabase"): the tokens Supabase's
 * sign-in redirect hands over in the URL fragment (its implicit flow), kept like PairPilot's own
 * session, and refreshed at the project's token endpoint (GoTrue) instead of PairPilot's.
 */
import { ApiError, type ClientConfig } from "./api";
import { saveName, saveSession, type Session, type SupabaseProject } from "./storage";

/** The project, when the server names one with its anon key (`GET /api/config`). */
export function supabaseProject(config: ClientConfig): SupabaseProject | null {
  const { supabase_url: url, supabase_anon_key: anonKey } = config;
  return url && anonKey ? { url, anonKey } : null;
}

/** What a redirect's fragment held: a session, a refusal to explain, or nothing of Supabase's. */
export type Redirect = { kind: "session"; session: Session } | { kind: "problem"; message: string } | { kind: "none" };

const WHAT = "The Supabase sign-in link";

/** Whether the fragment is one Supabase's redirect wrote (tokens or an error). */
export function isSupabaseFragment(hash: string): boolean {
  const fields = new URLSearchParams(hash.replace(/^#/, ""));
  return fields.has("access_token") || fields.has("refresh_token") || (fields.has("error") && fields.has("error_description"));
}

/**
 * Reads `#access_token=…&refresh_token=…&expires_in=…&token_type=bearer` (Supabase's implicit
 * flow; `expires_at` when `expires_in` is absent) into a session of `project`.
 */
export function readRedirect(hash: string, project: SupabaseProject, now = Date.now()): Redirect {
  if (!isSupabaseFragment(hash)) return { kind: "none" };
  const fields = new URLSearchParams(hash.replace(/^#/, ""));
  const refused = fields.get("error_description") ?? fields.get("error");
  if (refused !== null && !fields.has("access_token")) {
    return { kind: "problem", message: `Supabase did not sign you in: ${refused}` };
  }
  const token = fields.get("access_token") ?? "";
  const refreshToken = fields.get("refresh_token") ?? "";
  if (fields.get("token_type")?.toLowerCase() !== "bearer") return problem("has no token_type=bearer");
  if (!token || !refreshToken) return problem("lacks its access or refresh token");
  const expiresAt = expiryOf(fields, now);
  if (expiresAt === null) return problem("has no valid expires_in or expires_at");
  const user = userOf(token);
  if (user === null) return problem("holds an access token that is not a Supabase user's JWT");
  return { kind: "session", session: { token, refreshToken, expiresAt, user, supabase: project } };
}

function problem(what: string): Redirect {
  return { kind: "problem", message: `${WHAT} ${what}; signed in as a guest instead.` };
}

/** Epoch ms: our clock plus `expires_in` (a skewed clock must not make it look stale), else `expires_at`. */
function expiryOf(fields: URLSearchParams, now: number): number | null {
  const inS = Number(fields.get("expires_in") ?? NaN);
  if (Number.isFinite(inS) && inS > 0) return now + inS * 1000;
  const atS = Number(fields.get("expires_at") ?? NaN);
  return Number.isFinite(atS) && atS > 0 ? atS * 1000 : null;
}

/** The user a Supabase access token names (`sub`, `user_metadata`'s name); not verified: the server does. */
function userOf(token: string): Session["user"] | null {
  const payload = token.split(".")[1];
  if (payload === undefined) return null;
  try {
    const bytes = Uint8Array.from(atob(payload.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes)) as {
      sub?: unknown;
      user_metadata?: Record<string, unknown> | null;
    };
    if (typeof claims.sub !== "string" || !claims.sub) return null;
    // The server's order (README "Tokens from Supabase or another issuer"): OAuth providers fill
    // `full_name` or `user_name` where a sign-up with metadata sets `name`.
    const metadata = claims.user_metadata ?? {};
    const name = [metadata.name, metadata.full_name, metadata.user_name].find((value) => typeof value === "string" && value.trim());
    return { id: claims.sub, name: typeof name === "string" ? name.trim() : "" };
  } catch {
    return null;
  }
}

/**
 * Takes a Supabase redirect out of the address bar (it holds tokens) and, when it carried a
 * session, stores it for every tab; the page's display name becomes the Supabase user's name.
 * Returns a message for the page when the redirect cannot be used.
 */
export function takeRedirect(project: SupabaseProject | null): string | null {
  const { hash, pathname, search } = window.location;
  if (!isSupabaseFragment(hash)) return null;
  history.replaceState(history.state, "", pathname + search);
  if (project === null) {
    return "This PairPilot server is not set up for Supabase sign-in (SUPABASE_URL, SUPABASE_ANON_KEY); signed in as a guest instead.";
  }
  const redirect = readRedirect(hash, project);
  if (redirect.kind === "problem") return redirect.message;
  if (redirect.kind === "session") {
    saveSession(redirect.session);
    if (redirect.session.user.name) saveName(redirect.session.user.name);
  }
  return null;
}

/** GoTrue's answer to a refresh: a new pair and the user. */
interface GoTrueAnswer {
  access_token?: unknown;
  refresh_token?: unknown;
  expires_in?: unknown;
  user?: { id?: unknown; user_metadata?: { name?: unknown } | null } | null;
  error?: unknown;
  error_code?: unknown;
  error_description?: unknown;
  msg?: unknown;
}

/**
 * Exchanges a Supabase refresh token (used up by this) at `POST <url>/auth/v1/token` for the
 * same user's next session, and stores it. A refusal is an ApiError with GoTrue's status.
 */
export async function refreshSupabaseSession(project: SupabaseProject, refreshToken: string, previous: Session["user"]): Promise<Session> {
  const path = `${project.url}/auth/v1/token?grant_type=refresh_token`;
  let response: Response;
  try {
    response = await fetch(path, {
      method: "POST",
      headers: { apikey: project.anonKey, "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ refresh_token: refreshToken }),
    });
  } catch (err) {
    throw new ApiError(0, "network", `Supabase (${project.url}) unreachable: ${String(err)}`);
  }
  let answer: GoTrueAnswer | null = null;
  try {
    answer = (await response.json()) as GoTrueAnswer | null;
  } catch {
    // Not JSON: the status below says what happened.
  }
  if (!response.ok) {
    // GoTrue answers `{error, error_description}` (older) or `{code, error_code, msg}`.
    const code = typeof answer?.error_code === "string" ? answer.error_code : typeof answer?.error === "string" ? answer.error : "supabase_refused";
    const said = typeof answer?.msg === "string" ? answer.msg : typeof answer?.error_description === "string" ? answer.error_description : response.statusText;
    throw new ApiError(response.status, code, `Supabase refused to refresh the session: ${said}`);
  }
  const user = answer?.user;
  if (typeof answer?.access_token !== "string" || typeof answer.refresh_token !== "string" || typeof answer.expires_in !== "number" || typeof user?.id !== "string") {
    throw new ApiError(response.status, "bad_response", "Supabase answered the refresh without a session");
  }
  const name = user.user_metadata?.name;
  const session: Session = {
    token: answer.access_token,
    refreshToken: answer.refresh_token,
    expiresAt: Date.now() + answer.expires_in * 1000,
    user: { id: user.id, name: typeof name === "string" ? name : previous.name },
    supabase: project,
  };
  saveSession(session);
  return session;
}

/**
 * Ends the session at Supabase (`POST <url>/auth/v1/logout?scope=local`: its refresh tokens are
 * revoked, other devices stay signed in). Resolves to a sentence when Supabase could not be told.
 */
export async function signOutOfSupabase(session: Session & { supabase: SupabaseProject }): Promise<string | null> {
  const { url, anonKey } = session.supabase;
  try {
    const response = await fetch(`${url}/auth/v1/logout?scope=local`, {
      method: "POST",
      headers: { apikey: anonKey, Authorization: `Bearer ${session.token}` },
    });
    // 401/403/404: the session had already ended there.
    if (response.ok || response.status === 401 || response.status === 403 || response.status === 404) return null;
    return `Supabase answered the sign-out with ${response.status}; its session may still be open until it expires.`;
  } catch (err) {
    return `Supabase could not be reached to end its session (${String(err)}); it ends when it expires.`;
  }
}
