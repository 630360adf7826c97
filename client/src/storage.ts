/**
 * What the client keeps in localStorage (the session, the display name, recent rooms) and in
 * sessionStorage (a note for this tab's next page).
 */

/** A signed-in user: the access token, when it expires, and the refresh token that renews it. */
export interface Session {
  token: string;
  /** Epoch milliseconds, by this browser's clock (received + `expires_in`). */
  expiresAt: number;
  /** Used once (`POST /api/auth/token`): each refresh answers with the next one. Absent in
   * sessions stored before refresh tokens existed. */
  refreshToken?: string;
  user: { id: string; name: string };
  /** Set for a session from a Supabase sign-in: refreshed at this project, not at PairPilot. */
  supabase?: SupabaseProject;
}

/** A Supabase project: its address and its (public) anon key, as `GET /api/config` names them. */
export interface SupabaseProject { url: string; anonKey: string }

export interface RecentRoom { id: string; visitedAt: number }

const KEYS = {
  session: "pairpilot.session",
  name: "pairpilot.name",
  recent: "pairpilot.recentRooms",
} as const;

const MAX_RECENT = 10;

function readJson<T>(key: string): T | null {
  try {
    const raw = localStorage.getItem(key);
    return raw === null ? null : (JSON.parse(raw) as T);
  } catch {
    return null;
  }
}

/** The stored session (shared by every tab of this browser), or null. */
export function loadSession(): Session | null {
  const s = readJson<Session>(KEYS.session);
  if (!s || typeof s.token !== "string" || typeof s.expiresAt !== "number" || typeof s.user?.id !== "string") return null;
  const session: Session = { token: s.token, expiresAt: s.expiresAt, user: s.user };
  if (typeof s.refreshToken === "string") session.refreshToken = s.refreshToken;
  if (typeof s.supabase?.url === "string" && typeof s.supabase.anonKey === "string") {
    session.supabase = { url: s.supabase.url, anonKey: s.supabase.anonKey };
  }
  return session;
}

export function saveSession(session: Session): void {
  localStorage.setItem(KEYS.session, JSON.stringify(session));
}

/** Forgets the stored session only (a sign-out): the name and recent rooms stay. */
export function forgetStoredSession(): void {
  localStorage.removeItem(KEYS.session);
}

export function loadName(): string | null {
  const name = localStorage.getItem(KEYS.name);
  return name && name.trim() ? name.trim() : null;
}

export function saveName(name: string): void {
  localStorage.setItem(KEYS.name, name.trim());
}

export function loadRecentRooms(): RecentRoom[] {
  const list = readJson<RecentRoom[]>(KEYS.recent);
  return Array.isArray(list) ? list.filter((r) => typeof r?.id === "string") : [];
}

/** Moves a room to the top of the recent list. */
export function rememberRoom(id: string): void {
  const rest = loadRecentRooms().filter((r) => r.id !== id);
  localStorage.setItem(KEYS.recent, JSON.stringify([{ id, visitedAt: Date.now() }, ...rest].slice(0, MAX_RECENT)));
}

/** Removes a room from the recent list (it was deleted). */
export function forgetRoom(id: string): void {
  localStorage.setItem(KEYS.recent, JSON.stringify(loadRecentRooms().filter((r) => r.id !== id)));
}

/** Forgets everything this browser kept for PairPilot: session, display name, recent rooms. */
export function forgetEverything(): void {
  for (const key of Object.values(KEYS)) localStorage.removeItem(key);
}

const HOME_NOTE_KEY = "pairpilot.homeNote";

/** A sentence for the start page's next load in this tab ("Room … was deleted."). */
export function saveHomeNote(note: string): void {
  sessionStorage.setItem(HOME_NOTE_KEY, note);
}

/** Reads and removes the start page's note, if any. */
export function takeHomeNote(): string | null {
  const note = sessionStorage.getItem(HOME_NOTE_KEY);
  sessionStorage.removeItem(HOME_NOTE_KEY);
  return note;
}

const RESYNC_KEY = "pairpilot.resync";

/** A note for the next load of this tab (sessionStorage): why the page reloaded, and when. */
export interface ResyncNote { roomId: string; message: string; at: number }

export function saveResyncNote(note: ResyncNote): void {
  sessionStorage.setItem(RESYNC_KEY, JSON.stringify(note));
}

/** Reads and removes the note left by the previous load, if any. */
export function takeResyncNote(): ResyncNote | null {
  try {
    const raw = sessionStorage.getItem(RESYNC_KEY);
    sessionStorage.removeItem(RESYNC_KEY);
    const note = raw === null ? null : (JSON.parse(raw) as ResyncNote);
    return note && typeof note.roomId === "string" && typeof note.at === "number" ? note : null;
  } catch {
    return null;
  }
}
