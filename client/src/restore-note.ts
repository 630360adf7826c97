/**
 * The restore note: the server writes `Y.Map("history")` key `"lastRestore"` in the same update
 * as a restored version's content; every page that sees it change live shows who restored what.
 */
import type * as Y from "yjs";
import type { VersionKind } from "./api";
import { formatWhen, versionTitle } from "./version-format";

export const HISTORY_KEY = "history";
export const LAST_RESTORE_KEY = "lastRestore";

/** The `lastRestore` value (a plain JSON object written by the server). */
export interface RestoreNote {
  version_id: number;
  version_name: string | null;
  version_kind: VersionKind;
  version_created_at: string;
  by_id: string;
  by_name: string | null;
  /** Epoch ms. */
  at: number;
  /** The version holding the state the restore replaced. */
  backup_version_id: number;
}

export function historyMap(doc: Y.Doc): Y.Map<unknown> {
  return doc.getMap<unknown>(HISTORY_KEY);
}

/** The last restore, or null when there was none or the value is not a note. */
export function readRestoreNote(doc: Y.Doc): RestoreNote | null {
  const raw = historyMap(doc).get(LAST_RESTORE_KEY) as Partial<RestoreNote> | null | undefined;
  if (!raw || typeof raw !== "object" || typeof raw.version_id !== "number" || typeof raw.by_id !== "string") return null;
  return {
    version_id: raw.version_id,
    version_name: typeof raw.version_name === "string" ? raw.version_name : null,
    version_kind: raw.version_kind === "named" || raw.version_kind === "restore" ? raw.version_kind : "auto",
    version_created_at: String(raw.version_created_at ?? ""),
    by_id: raw.by_id,
    by_name: typeof raw.by_name === "string" ? raw.by_name : null,
    at: typeof raw.at === "number" ? raw.at : Date.now(),
    backup_version_id: typeof raw.backup_version_id === "number" ? raw.backup_version_id : 0,
  };
}

/** `Ada restored “Before refactor” (version 12, saved 14:03)`; "You" for `selfId`. */
export function describeRestoreNote(note: RestoreNote, selfId: string): string {
  const who = note.by_id === selfId ? "You" : note.by_name || "Someone";
  const what = note.version_name ? `“${note.version_name}”` : `the ${versionTitle(note.version_kind, null).toLowerCase()}`;
  return `${who} restored ${what} (version ${note.version_id}, saved ${formatWhen(note.version_created_at)})`;
}

/**
 * Calls `onNote` when `lastRestore` changes while `live()` (after the page's first sync: the
 * note a room already had when the page opened is not news). Returns an unsubscribe.
 */
export function watchRestoreNotes(doc: Y.Doc, live: () => boolean, onNote: (note: RestoreNote) => void): () => void {
  const history = historyMap(doc);
  const observer = (event: Y.YMapEvent<unknown>): void => {
    if (!live() || !event.keysChanged.has(LAST_RESTORE_KEY)) return;
    const note = readRestoreNote(doc);
    if (note) onNote(note);
  };
  history.observe(observer);
  return () => history.unobserve(observer);
}
