/**
 * The awareness fields of follow mode, and how a peer's values are checked before anything
 * reads them (presence.ts runs `sanitisePairing` on every peer state as it arrives):
 *
 * - `view`: `{file, top, bottom, anchor?, head?}`: the open file's identity (file-identity.ts),
 *   the first and last visible line's start and the selection, as base64-encoded Yjs relative
 *   positions in that file's `Y.Text`;
 * - `follow`: the user id this page follows, or null;
 * - `lead`: when an owner asked everyone to follow them (epoch ms), or null. Other pages act on
 *   it only for a peer whose membership (not its claim) makes it an owner.
 */
import { fromBase64, toBase64 } from "lib0/buffer";
import * as Y from "yjs";

export interface ViewState { file: string; top: string; bottom: string; anchor?: string; head?: string }
export interface PairingState { view: ViewState | null; follow: string | null; lead: number | null }

const POSITION = /^[A-Za-z0-9+/]{4,256}={0,2}$/;
const USER_ID = /^[A-Za-z0-9_-]{1,64}$/;
const MAX_FILE_CHARS = 1024;

function position(value: unknown): string | undefined {
  return typeof value === "string" && POSITION.test(value) ? value : undefined;
}

function view(value: unknown): ViewState | null {
  if (typeof value !== "object" || value === null) return null;
  const raw = value as Record<string, unknown>;
  const file = typeof raw.file === "string" && raw.file.length <= MAX_FILE_CHARS ? raw.file : undefined;
  const top = position(raw.top);
  const bottom = position(raw.bottom);
  if (file === undefined || top === undefined || bottom === undefined) return null;
  const clean: ViewState = { file, top, bottom };
  const anchor = position(raw.anchor);
  const head = position(raw.head);
  if (anchor !== undefined && head !== undefined) Object.assign(clean, { anchor, head });
  return clean;
}

/** A peer's follow-mode fields as this page may use them; anything else is dropped. */
export function sanitisePairing(state: Record<string, unknown>): PairingState {
  const lead = state.lead;
  return {
    view: view(state.view),
    follow: typeof state.follow === "string" && USER_ID.test(state.follow) ? state.follow : null,
    lead: typeof lead === "number" && Number.isFinite(lead) && lead > 0 ? lead : null,
  };
}

/** `index` of `text` as a base64 relative position. */
export function encodePosition(text: Y.Text, index: number): string {
  return toBase64(Y.encodeRelativePosition(Y.createRelativePositionFromTypeIndex(text, index)));
}

/** Where a base64 relative position is in `text` now; null for another text or bad bytes. */
export function decodePosition(text: Y.Text, encoded: string): number | null {
  if (text.doc === null) return null;
  try {
    const absolute = Y.createAbsolutePositionFromRelativePosition(Y.decodeRelativePosition(fromBase64(encoded)), text.doc);
    return absolute !== null && absolute.type === text ? absolute.index : null;
  } catch {
    return null;
  }
}
