/**
 * This device's copy of the rooms a person opened (issue #26), in IndexedDB: one compacted
 * document per room (`Y.encodeStateAsUpdate`, overwritten on every write, never a growing log),
 * its metadata (room generation, last role, what the server said it stored, whether it holds
 * edits not sent yet), and the copies kept for download when a room can no longer take them.
 *
 * Bounds: a room's copy at most LOCAL_ROOM_MAX_BYTES, all of them at most LOCAL_TOTAL_MAX_BYTES
 * and LOCAL_MAX_ROOMS; the least recently opened rooms are dropped first, never one with edits
 * not sent yet (the start page's "Forget this device" asks before it drops those).
 *
 * Clearing is safe with other tabs open: every record carries the device epoch it was written
 * under (localStorage `pairpilot.localEpoch`); "forget this device" sets a new epoch first, so
 * a load reads only records of the current epoch, and a tab that still runs with the old one
 * stops writing at its next write (it reads the epoch before each one).
 */
import * as Y from "yjs";
import type { Role } from "./api";

/** A room's copy may be as large as the server lets a room grow (PAIRPILOT_ROOM_MAX_BYTES). */
export const LOCAL_ROOM_MAX_BYTES = 32 * 1024 * 1024;
/** All copies together. */
export const LOCAL_TOTAL_MAX_BYTES = 128 * 1024 * 1024;
/** Rooms kept on one device. */
export const LOCAL_MAX_ROOMS = 30;

const DB_NAME = "pairpilot-local";
const DB_VERSION = 1;
/** Small records: what the start page and the bounds read without loading documents. */
const META = "meta";
/** The compacted documents, by room id. */
const DOCS = "docs";
/** Text kept for download after a room refused this device's copy (deleted, no access). */
const KEPT = "kept";
const EPOCH_KEY = "pairpilot.localEpoch";

export interface LocalRoomMeta {
  roomId: string;
  /** The device epoch the record was written under; other epochs are forgotten copies. */
  epoch: string;
  /** The room's generation when this copy was made (`Date.parse(room.created_at)` of the join). */
  generation: number;
  /** The role the person had when last joined: an offline page is editable only for writers. */
  role: Role | null;
  /** The copy holds edits the server has not said it stored. */
  unsent: boolean;
  bytes: number;
  openedAt: number;
  writtenAt: number;
}

export interface LocalRoom extends LocalRoomMeta {
  /** `Y.encodeStateAsUpdate` of the room's document as this device has it. */
  state: Uint8Array;
  /** `Y.encodeStateVector` format: what the server last said it stored of `authored`. */
  saved: Uint8Array;
  /** Client ids of this device's pages whose edits the server has not said it stored. */
  authored: number[];
}

interface DocRecord { roomId: string; epoch: string; generation: number; state: Uint8Array; saved: Uint8Array; authored: number[] }

/** A copy that a room could no longer take, kept as text until the person downloads it. */
export interface KeptCopy { roomId: string; text: string; reason: string; at: number }

/** Why a copy was not written. */
export type WriteRefusal = "too-large" | "full" | "forgotten" | "unavailable";

const MIB = 1024 * 1024;
/** What the room page says when this device does not keep the room (kept-copy.ts). */
export const WRITE_REFUSALS: Record<Exclude<WriteRefusal, "forgotten">, string> = {
  "too-large": `This room is larger than this device keeps (${LOCAL_ROOM_MAX_BYTES / MIB} MiB), so edits made offline stay in this tab only.`,
  full: `This device already keeps ${LOCAL_MAX_ROOMS} rooms or ${LOCAL_TOTAL_MAX_BYTES / MIB} MiB with edits not sent yet, so this room's offline edits stay in this tab only. Open those rooms online to send them, or forget this device on the start page.`,
  unavailable: "This browser does not let the page keep rooms (IndexedDB is unavailable), so edits made offline stay in this tab only.",
};

/** The device epoch (created on first use). */
export function deviceEpoch(): string {
  let epoch = localStorage.getItem(EPOCH_KEY);
  if (epoch === null) {
    epoch = crypto.randomUUID();
    localStorage.setItem(EPOCH_KEY, epoch);
  }
  return epoch;
}

/** Whether "forget this device" happened (here or in another tab) since `epoch` was read. */
export function forgotten(epoch: string): boolean {
  return localStorage.getItem(EPOCH_KEY) !== epoch;
}

/** The key other tabs watch (`storage` event) to learn that the device was forgotten. */
export const EPOCH_STORAGE_KEY = EPOCH_KEY;

let opening: Promise<IDBDatabase> | null = null;

/** An IndexedDB request as a promise (lib0/indexeddb's helpers are typed for keys, not records). */
function done<T>(request: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error ?? new Error("IndexedDB request failed"));
  });
}

function database(): Promise<IDBDatabase> {
  if (opening !== null) return opening;
  const request = indexedDB.open(DB_NAME, DB_VERSION);
  request.onupgradeneeded = () => {
    for (const name of [META, DOCS, KEPT]) request.result.createObjectStore(name, { keyPath: "roomId" });
  };
  opening = done(request).then((db) => {
    // Another tab upgrading the schema (a newer build) must not wait for this one.
    db.onversionchange = () => {
      db.close();
      opening = null;
    };
    return db;
  }, (err: unknown) => {
    opening = null;
    throw err;
  });
  return opening;
}

/** The named stores of one transaction. */
async function stores(names: string[], mode: IDBTransactionMode = "readwrite"): Promise<IDBObjectStore[]> {
  const transaction = (await database()).transaction(names, mode);
  return names.map((name) => transaction.objectStore(name));
}

function isMeta(value: unknown): value is LocalRoomMeta {
  const meta = value as LocalRoomMeta | null;
  return typeof meta?.roomId === "string" && typeof meta.epoch === "string" && typeof meta.generation === "number";
}

/** Every room copy of the current epoch (metadata only); records of other epochs are deleted. */
export async function listLocalRooms(): Promise<LocalRoomMeta[]> {
  const epoch = deviceEpoch();
  const [meta, docs] = await stores([META, DOCS]);
  const all = (await done<unknown[]>(meta!.getAll())).filter(isMeta);
  const stale = all.filter((room) => room.epoch !== epoch);
  await Promise.all(stale.flatMap((room) => [done(meta!.delete(room.roomId)), done(docs!.delete(room.roomId))]));
  return all.filter((room) => room.epoch === epoch);
}

/** The room's copy, or null (none, another epoch's, or unreadable). */
export async function readLocalRoom(roomId: string): Promise<LocalRoom | null> {
  const epoch = deviceEpoch();
  const [meta, docs] = await stores([META, DOCS], "readonly");
  const [found, doc] = await Promise.all([done<unknown>(meta!.get(roomId)), done<unknown>(docs!.get(roomId))]);
  if (!isMeta(found) || found.epoch !== epoch) return null;
  const record = doc as DocRecord | undefined;
  if (record?.epoch !== epoch || !(record.state instanceof Uint8Array)) return null;
  return {
    ...found,
    state: record.state,
    saved: record.saved instanceof Uint8Array ? record.saved : new Uint8Array([0]),
    authored: Array.isArray(record.authored) ? record.authored : [],
  };
}

/**
 * The copy written over `existing` (another tab's write of the same room and generation): the
 * union of both documents, of what the server stored and of the unsent authors, so tabs never
 * drop each other's edits. Authors whose edits are all stored are left out.
 */
export function mergeCopies(room: LocalRoom, existing: DocRecord | undefined): LocalRoom {
  const same = existing !== undefined && existing.epoch === room.epoch && existing.generation === room.generation
    && existing.state instanceof Uint8Array;
  const state = same ? Y.mergeUpdates([existing.state, room.state]) : room.state;
  const saved = Y.decodeStateVector(room.saved);
  if (same && existing.saved instanceof Uint8Array) {
    for (const [client, clock] of Y.decodeStateVector(existing.saved)) saved.set(client, Math.max(clock, saved.get(client) ?? 0));
  }
  const clocks = Y.decodeStateVector(Y.encodeStateVectorFromUpdate(state));
  const authors = new Set([...room.authored, ...(same && Array.isArray(existing.authored) ? existing.authored : [])]);
  const authored = [...authors].filter((client) => (clocks.get(client) ?? 0) > (saved.get(client) ?? 0));
  return { ...room, state, saved: Y.encodeStateVector(saved), authored, unsent: room.unsent || authored.length > 0 };
}

/**
 * Writes the room's copy (merged with what another tab wrote, see `mergeCopies`), first making
 * room for it within the bounds. Resolves to null when written, else why not.
 */
export async function writeLocalRoom(written: LocalRoom): Promise<WriteRefusal | null> {
  if (forgotten(written.epoch)) return "forgotten";
  const [meta, docs] = await stores([META, DOCS]);
  const room = mergeCopies(written, await done<unknown>(docs!.get(written.roomId)) as DocRecord | undefined);
  const bytes = room.state.byteLength + room.saved.byteLength;
  if (bytes > LOCAL_ROOM_MAX_BYTES) return "too-large";
  const others = (await done<unknown[]>(meta!.getAll())).filter(isMeta).filter((other) => other.roomId !== room.roomId);
  const evicted = evictions(others.filter((other) => other.epoch === room.epoch), bytes);
  if (evicted === null) return "full";
  const dropped = [...evicted, ...others.filter((other) => other.epoch !== room.epoch).map((other) => other.roomId)];
  const { state, saved, authored, ...rest } = room;
  const record: LocalRoomMeta = { ...rest, bytes };
  await Promise.all([
    ...dropped.flatMap((id) => [done(meta!.delete(id)), done(docs!.delete(id))]),
    done(meta!.put(record)),
    done(docs!.put({ roomId: room.roomId, epoch: room.epoch, generation: room.generation, state, saved, authored } satisfies DocRecord)),
  ]);
  return null;
}

/**
 * Which rooms to drop so that one more copy of `bytes` fits: the least recently opened first,
 * never one with edits not sent yet. Null when those alone leave no place.
 */
export function evictions(others: LocalRoomMeta[], bytes: number): string[] | null {
  const order = [...others].sort((a, b) => a.openedAt - b.openedAt);
  let total = others.reduce((sum, other) => sum + other.bytes, 0) + bytes;
  let count = others.length + 1;
  const dropped: string[] = [];
  for (const other of order) {
    if (total <= LOCAL_TOTAL_MAX_BYTES && count <= LOCAL_MAX_ROOMS) break;
    if (other.unsent) continue;
    dropped.push(other.roomId);
    total -= other.bytes;
    count -= 1;
  }
  return total <= LOCAL_TOTAL_MAX_BYTES && count <= LOCAL_MAX_ROOMS ? dropped : null;
}

/** Removes the room's copy (the room is gone, moved, or refused this device). */
export async function dropLocalRoom(roomId: string): Promise<void> {
  const [meta, docs] = await stores([META, DOCS]);
  await Promise.all([done(meta!.delete(roomId)), done(docs!.delete(roomId))]);
}

/**
 * Gives the room's copy to its new id (the room moved: same document, same generation). The new
 * copy is written (merged with any already there) before the old one goes, so a page that leaves
 * halfway keeps both, and the old id's next open (410 `room_moved`) merges it over again.
 */
export async function moveLocalRoom(oldRoomId: string, newRoomId: string): Promise<void> {
  const room = await readLocalRoom(oldRoomId);
  if (room === null) return;
  await writeLocalRoom({ ...room, roomId: newRoomId });
  await dropLocalRoom(oldRoomId);
}

/** Keeps text for download (one per room: a newer one replaces it). */
export async function keepCopy(copy: KeptCopy): Promise<void> {
  const [kept] = await stores([KEPT]);
  await done(kept!.put({ ...copy, epoch: deviceEpoch() }));
}

/** The text kept for this room, if any (of the current epoch). */
export async function readKeptCopy(roomId: string): Promise<KeptCopy | null> {
  const [kept] = await stores([KEPT], "readonly");
  const found = (await done<unknown>(kept!.get(roomId))) as (KeptCopy & { epoch?: string }) | undefined;
  return found !== undefined && found.epoch === deviceEpoch() && typeof found.text === "string" ? found : null;
}

/** Forgets the kept text (downloaded or dismissed). */
export async function dropKeptCopy(roomId: string): Promise<void> {
  const [kept] = await stores([KEPT]);
  await done(kept!.delete(roomId));
}

/**
 * Sign-out / "forget this device": a new epoch first (every tab's next write and every next
 * load ignore what was kept), then the stores are emptied. Emptying, unlike deleting the
 * database, does not wait for other tabs to close their connections.
 */
export async function forgetLocalRooms(): Promise<void> {
  localStorage.setItem(EPOCH_KEY, crypto.randomUUID());
  try {
    const all = await stores([META, DOCS, KEPT]);
    await Promise.all(all.map((store) => done(store.clear())));
  } catch (err) {
    // The new epoch already hides every record; the next load deletes them.
    console.warn("PairPilot: could not empty the local store now", err);
  }
}
