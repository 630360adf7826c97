/**
 * A comment thread's anchor: its range of a file as two Yjs relative positions, encoded and in
 * base64 (what the server stores), so the range moves with edits made before it and grows or
 * shrinks with edits inside it. The start sticks to the first character of the range and the
 * end to the last one: typing just outside the range does not enter it.
 */
import { fromBase64, toBase64 } from "lib0/buffer";
import * as Y from "yjs";

export interface Anchor { start: string; end: string }
export interface Span { from: number; to: number }

/** The anchor of `[from, to)` in `text` (a non-empty range). */
export function anchorOf(text: Y.Text, from: number, to: number): Anchor {
  const start = Y.createRelativePositionFromTypeIndex(text, from, 0);
  const end = Y.createRelativePositionFromTypeIndex(text, to, -1);
  return { start: toBase64(Y.encodeRelativePosition(start)), end: toBase64(Y.encodeRelativePosition(end)) };
}

function decode(encoded: string): Y.RelativePosition | null {
  try {
    return Y.decodeRelativePosition(fromBase64(encoded));
  } catch {
    return null;
  }
}

/**
 * Where the anchor's range is in `text` now, or null when it is outdated: its text was deleted
 * (the range is empty), or it belongs to another text (the file was deleted, renamed or
 * replaced: a rename makes a new Y.Text), or it cannot be read.
 */
export function resolveAnchor(text: Y.Text, anchor: Anchor): Span | null {
  const doc = text.doc;
  const start = decode(anchor.start);
  const end = decode(anchor.end);
  if (doc === null || start === null || end === null) return null;
  const from = Y.createAbsolutePositionFromRelativePosition(start, doc);
  const to = Y.createAbsolutePositionFromRelativePosition(end, doc);
  if (from === null || to === null || from.type !== text || to.type !== text) return null;
  return from.index < to.index ? { from: from.index, to: to.index } : null;
}
