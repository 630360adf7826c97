/**
 * One room's copy on this device (issue #26): restored into the document before the page
 * touches the network, written back (compacted, debounced) after every change, shared with the
 * room's other tabs on this device, and checked against the room's generation before the socket
 * may send any of it. See local-store.ts for the bounds and the sign-out sentinel.
 */
import * as Y from "yjs";
import { ApiError, type Role, type RoomInfo } from "./api";
import type { RoomFiles } from "./files";
import { backoffDelay, DEFAULT_BACKOFF } from "./connection";
import { localCopy as filesAsText } from "./refusal";
import {
  deviceEpoch, dropLocalRoom, EPOCH_STORAGE_KEY, forgotten, keepCopy, moveLocalRoom, readLocalRoom,
  writeLocalRoom, type KeptCopy, type LocalRoom, type WriteRefusal,
} from "./local-store";

/** Origin of the state restored from this device. */
export const LOCAL_ORIGIN = "pairpilot:local";
/** Origin of updates from another tab of the same room on this device. */
export const TAB_ORIGIN = "pairpilot:tab";

/** Writes wait this long for more changes (one write per burst of typing). */
const WRITE_DEBOUNCE_MS = 150;

/** The room's generation as the join answers it: its creation time (kept by a move). */
export function roomGeneration(room: Pick<RoomInfo, "created_at">): number {
  return Date.parse(room.created_at);
}

/**
 * What the restored copy holds that the server has not said it stored: for each client id of
 * this device's earlier pages (`authored`), the clock the server must reach.
 */
export function unsentClocks(room: Pick<LocalRoom, "state" | "saved" | "authored">): Map<number, number> {
  const local = Y.decodeStateVector(Y.encodeStateVectorFromUpdate(room.state));
  const stored = Y.decodeStateVector(room.saved);
  return new Map(room.authored.map((client): [number, number] => [client, local.get(client) ?? 0])
    .filter(([client, clock]) => clock > (stored.get(client) ?? 0)));
}

/** Origins of transactions that are not this page's edits: the restored copy, another tab's. */
export function isDeviceOrigin(origin: unknown): boolean {
  return origin === LOCAL_ORIGIN || origin === TAB_ORIGIN;
}

/**
 * Runs `action` until the server answers it: while it is unreachable (ApiError status 0) the
 * page works from this device's copy; it tries again on the browser's "online" event or after
 * a capped, jittered backoff. Any answer of the server, a refusal too, ends the wait.
 */
export async function whenReachable<T>(action: () => Promise<T>, onUnreachable: () => void): Promise<T> {
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await action();
    } catch (err) {
      if (!(err instanceof ApiError) || err.status !== 0) throw err;
      onUnreachable();
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          clearTimeout(timer);
          window.removeEventListener("online", wake);
          resolve();
        };
        const timer = setTimeout(wake, backoffDelay(attempt, DEFAULT_BACKOFF));
        window.addEventListener("online", wake);
      });
    }
  }
}

type TabMessage = { kind: "update"; update: Uint8Array } | { kind: "hello"; stateVector: Uint8Array };

export interface LocalCopyOptions {
  roomId: string;
  doc: Y.Doc;
  files: RoomFiles;
  /** Whether the page has edits the server has not acknowledged (the saved signal's count). */
  unsent: () => boolean;
  /** `kept()` or `status()` changed. */
  onChange: () => void;
  /** Another tab signed out or forgot this device: this page keeps nothing any more. */
  onForgotten: () => void;
}

export interface LocalCopy {
  /** Applies this device's copy to the document; the copy (null: none). Call before the join. */
  restore: () => Promise<LocalRoom | null>;
  /**
   * The join's answer: false when the room is not the one the restored copy was made of (its
   * generation differs). Only after true does the page connect; writing starts here.
   */
  adopt: (room: RoomInfo, role: Role) => boolean;
  /** The server's "saved" state vector (kept, so a later load knows what was not sent). */
  saved: (stateVector: Map<number, number>) => void;
  /** The document as shown is on this device (nothing waiting to be written). */
  kept: () => boolean;
  /**
   * For the page's `data-local`: "kept", "writing", "none" (no copy: not joined yet, or
   * stopped after a discard or "forget this device"), or why the last write was refused.
   */
  status: () => "kept" | "writing" | "none" | WriteRefusal;
  /**
   * The room refused this copy (deleted, no access, another generation): stops keeping it,
   * keeps its files' text for download when it held edits not sent (unless `reason` is null:
   * the person deleted the room themself), and drops the rest.
   */
  discard: (reason: string | null) => Promise<KeptCopy | null>;
  /** The room moved: the copy goes with it (same document, same generation). */
  moveTo: (newRoomId: string) => Promise<void>;
}

/** Opens the room's copy on this device. */
export function openLocalCopy(options: LocalCopyOptions): LocalCopy {
  const { roomId, doc } = options;
  const epoch = deviceEpoch();
  let generation: number | null = null;
  let role: Role | null = null;
  let saved = new Map<number, number>();
  /** This device's client ids with edits not known stored (earlier pages', then this one's). */
  let authored = new Set<number>();
  let openedAt = Date.now();
  let stopped = false;
  let dirty = false;
  let writing: Promise<void> | null = null;
  let timer: ReturnType<typeof setTimeout> | null = null;
  let refused: WriteRefusal | null = null;
  let tabs: BroadcastChannel | null = null;

  const stop = (): void => {
    stopped = true;
    if (timer !== null) clearTimeout(timer);
    timer = null;
    tabs?.close();
    tabs = null;
    options.onChange();
  };

  const write = async (): Promise<void> => {
    while (dirty && !stopped && generation !== null) {
      dirty = false;
      if (forgotten(epoch)) {
        stop();
        options.onForgotten();
        return;
      }
      const record: LocalRoom = {
        roomId, epoch, generation, role, unsent: options.unsent(), openedAt, writtenAt: Date.now(), bytes: 0,
        state: Y.encodeStateAsUpdate(doc),
        saved: Y.encodeStateVector(saved),
        // This page's own client id once it wrote anything (its clock is in the state vector).
        authored: [...authored, ...(doc.store.clients.has(doc.clientID) ? [doc.clientID] : [])],
      };
      try {
        refused = await writeLocalRoom(record);
      } catch (err) {
        refused = "unavailable";
        console.warn("PairPilot: could not keep the room on this device", err);
      }
      if (refused === "forgotten") {
        stop();
        options.onForgotten();
        return;
      }
    }
  };

  const flush = (): void => {
    if (timer !== null) clearTimeout(timer);
    timer = null;
    if (stopped || generation === null || writing !== null) return;
    writing = write().finally(() => {
      writing = null;
      options.onChange();
      if (dirty) schedule();
    });
  };

  function schedule(): void {
    dirty = true;
    options.onChange();
    if (stopped || generation === null || timer !== null) return;
    timer = setTimeout(flush, WRITE_DEBOUNCE_MS);
  }

  doc.on("update", (update: Uint8Array, origin: unknown) => {
    if (stopped) return;
    schedule();
    if (origin !== TAB_ORIGIN && origin !== LOCAL_ORIGIN) tabs?.postMessage({ kind: "update", update } satisfies TabMessage);
  });
  // Closing the tab: write now rather than after the debounce (IndexedDB finishes it).
  window.addEventListener("pagehide", flush);
  window.addEventListener("storage", (event) => {
    if (event.key === EPOCH_STORAGE_KEY && !stopped && forgotten(epoch)) {
      stop();
      options.onForgotten();
    }
  });

  const listenToTabs = (): void => {
    if (typeof BroadcastChannel === "undefined" || tabs !== null || stopped) return;
    tabs = new BroadcastChannel(`pairpilot-room:${roomId}`);
    tabs.onmessage = (event: MessageEvent<TabMessage>) => {
      const message = event.data;
      if (message.kind === "update") Y.applyUpdate(doc, message.update, TAB_ORIGIN);
      else if (message.kind === "hello") {
        tabs?.postMessage({ kind: "update", update: Y.encodeStateAsUpdate(doc, message.stateVector) } satisfies TabMessage);
      }
    };
    // A tab opened later asks the others for what they have not written yet.
    tabs.postMessage({ kind: "hello", stateVector: Y.encodeStateVector(doc) } satisfies TabMessage);
  };

  return {
    async restore() {
      let room: LocalRoom | null = null;
      try {
        room = await readLocalRoom(roomId);
      } catch (err) {
        refused = "unavailable";
        console.warn("PairPilot: could not read this device's copy of the room", err);
      }
      if (room !== null) {
        generation = room.generation;
        role = room.role;
        saved = Y.decodeStateVector(room.saved);
        authored = new Set(room.authored);
        openedAt = Date.now();
        Y.applyUpdate(doc, room.state, LOCAL_ORIGIN);
        listenToTabs();
        schedule(); // openedAt, for the eviction order
      }
      return room;
    },
    adopt(room, newRole) {
      const joined = roomGeneration(room);
      if (generation !== null && generation !== joined) return false;
      generation = joined;
      role = newRole;
      listenToTabs();
      schedule();
      return true;
    },
    saved(stateVector) {
      for (const [client, clock] of stateVector) saved.set(client, Math.max(clock, saved.get(client) ?? 0));
      schedule();
    },
    kept: () => !stopped && generation !== null && !dirty && writing === null && refused === null,
    status: () => (stopped || generation === null ? "none" : refused ?? (dirty || writing !== null ? "writing" : "kept")),
    async discard(reason) {
      const unsent = options.unsent();
      stop();
      const copy = unsent && reason !== null ? { roomId, text: filesAsText(options.files, roomId), reason, at: Date.now() } : null;
      try {
        if (copy !== null) await keepCopy(copy);
        await dropLocalRoom(roomId);
      } catch (err) {
        console.warn("PairPilot: could not drop this device's copy of the room", err);
      }
      return copy;
    },
    async moveTo(newRoomId) {
      flush();
      await writing;
      stop();
      await moveLocalRoom(roomId, newRoomId);
    },
  };
}
