/**
 * The "Saved" signal (issue #13): which of this page's own document edits the server has
 * stored, from the "saved" auth message (a state vector of the durable state), shown next to
 * the connection status; and a warning on closing the tab while some are not.
 */
import type * as Y from "yjs";
import type { ConnectionState } from "./connection";

export type SaveState = "saving" | "saved" | "offline";

/** This page's local transactions and how many of them the server has stored. */
export interface SaveTracker {
  /** Local transactions not acknowledged as stored yet. */
  unsaved: () => number;
  /** Whether any "saved" message arrived since the page opened. */
  acknowledged: () => boolean;
  /** Feed a "saved" message's state vector. */
  saved: (stateVector: Map<number, number>) => void;
  /**
   * Edits restored from this device's copy that the server had not stored: the clock each
   * client must reach (and `deletes`: the copy held unsent deletions, which move no clock and
   * count as stored at the next "saved" message, as this page's own do).
   */
  restored: (clocks: Map<number, number>, deletes: boolean) => void;
  /** Called after every change of `unsaved()` or `acknowledged()`. */
  onChange: (listener: () => void) => void;
  destroy: () => void;
}

/**
 * Tracks the doc's local transactions: every update whose origin `isRemote` does not claim
 * (the provider's own, the REST snapshot) is ours. Each is kept with the clock our client id
 * reached with it, until a "saved" state vector covers that clock.
 *
 * A transaction that only deletes does not move the clock (a state vector counts insertions
 * only), so no state vector can prove it stored: it counts as stored at the first "saved"
 * message after it was made, since edits are only dropped when one arrives. The server sends
 * one after each flush that held this connection's edits, so the gap is a flush already under
 * way when the delete reached it.
 */
export function trackLocalEdits(doc: Y.Doc, isRemote: (origin: unknown) => boolean): SaveTracker {
  let clocks: number[] = [];
  let savedClock = 0;
  let acknowledged = false;
  let restoredClocks = new Map<number, number>();
  let restoredDeletes = false;
  const listeners = new Set<() => void>();
  const changed = (): void => listeners.forEach((listener) => listener());

  const onUpdate = (_update: Uint8Array, origin: unknown, _doc: Y.Doc, tr: Y.Transaction): void => {
    if (isRemote(origin)) return;
    clocks.push(tr.afterState.get(doc.clientID) ?? 0);
    changed();
  };
  doc.on("update", onUpdate);

  return {
    unsaved: () => clocks.length + restoredClocks.size + (restoredDeletes ? 1 : 0),
    acknowledged: () => acknowledged,
    saved(stateVector) {
      acknowledged = true;
      // A store does not forget what it acknowledged: a lower clock is an older message.
      savedClock = Math.max(savedClock, stateVector.get(doc.clientID) ?? 0);
      clocks = clocks.filter((clock) => clock > savedClock);
      restoredClocks = new Map([...restoredClocks].filter(([client, clock]) => clock > (stateVector.get(client) ?? 0)));
      restoredDeletes = false;
      changed();
    },
    restored(pending, deletes) {
      restoredClocks = new Map(pending);
      restoredDeletes = deletes && pending.size === 0;
      changed();
    },
    onChange: (listener) => void listeners.add(listener),
    destroy: () => doc.off("update", onUpdate),
  };
}

/** What the signal shows. */
export function saveStatus(
  unsaved: number, connection: ConnectionState, acknowledged: boolean, canWrite: boolean, kept = false,
): { state: SaveState; text: string; detail?: string } {
  if (unsaved > 0 && connection !== "connected") {
    // Kept: the local store (local-copy.ts) has them, so closing the tab loses nothing.
    const edits = `${unsaved} ${unsaved === 1 ? "edit" : "edits"}`;
    return kept
      ? { state: "offline", text: "Offline — your edits are kept on this device", detail: `${edits} not sent yet: this device keeps them and sends them when the connection is back, even after the tab was closed.` }
      : { state: "offline", text: `Offline — ${edits} not saved yet`, detail: "These edits are kept in this tab and sent when the connection is back." };
  }
  if (unsaved > 0) return { state: "saving", text: "Saving…" };
  // Nothing of ours is waiting. Until the server's first "saved" message, a page that may write
  // says so only when live (the first one arrives right after the first sync); a viewer, or a
  // page that lost its connection, has nothing of its own to lose.
  const settled = acknowledged || !canWrite || connection === "reconnecting" || connection === "offline";
  return settled ? { state: "saved", text: "Saved" } : { state: "saving", text: "Saving…" };
}

/** Shows the status in `element` (`data-state` + text). */
export function renderSaveStatus(element: HTMLElement, status: { state: SaveState; text: string; detail?: string }): void {
  element.dataset.state = status.state;
  element.textContent = status.text;
  element.title = status.detail ?? "";
}

/** Asks before closing or leaving the tab while `unsaved()` is not zero. Returns an unsubscribe. */
export function warnBeforeUnload(unsaved: () => number): () => void {
  const handler = (event: BeforeUnloadEvent): void => {
    if (unsaved() === 0) return;
    event.preventDefault();
    // Older Chromium shows the prompt only when returnValue is set.
    event.returnValue = "";
  };
  window.addEventListener("beforeunload", handler);
  return () => window.removeEventListener("beforeunload", handler);
}
