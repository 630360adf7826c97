/**
 * The room's files (README "The file tree"): `files` maps a file id to its Y.Text, `paths` maps
 * a file id to its path (last writer wins), `folders` holds explicit folders. A file with no
 * `paths` entry is shown under its id, which is how rooms made before folders, and stock
 * clients writing `files.set("main.py", text)`, keep working. Which path each file is shown
 * under is `resolve` (tree-model.ts), the same function as the server's. Every local change
 * runs in a transaction tagged with FILES_ORIGIN.
 */
import * as Y from "yjs";
import { normalise, parents, resolve, type Tree } from "./tree-model";

export const FILES_KEY = "files";
export const PATHS_KEY = "paths";
export const FOLDERS_KEY = "folders";
/** Origin of file-tree changes made by this client (create, rename, move, delete, starter). */
export const FILES_ORIGIN = "pairpilot:files";

/** One name in a path: no slashes or control characters, 1–128 characters. */
const NAME_PATTERN = /^[^/\\\u0000-\u001f\u007f]{1,128}$/;
const MAX_PATH = 1024;

const STARTER_FILES: Record<string, string> = {
  "main.py": 'print("Hello from PairPilot!")\n\nfor i in range(3):\n    print("line", i)\n',
  "main.js": 'console.log("Hello from PairPilot!");\n',
};

/** The room's three maps and the tree they resolve to (recomputed when one of them changes). */
export class RoomFiles {
  readonly texts: Y.Map<Y.Text>;
  readonly paths: Y.Map<unknown>;
  readonly folders: Y.Map<unknown>;
  private cached: Tree | null = null;
  private byPath: Map<string, string> | null = null;

  constructor(readonly doc: Y.Doc) {
    this.texts = doc.getMap<Y.Text>(FILES_KEY);
    this.paths = doc.getMap(PATHS_KEY);
    this.folders = doc.getMap(FOLDERS_KEY);
    const forget = (): void => { this.cached = null; this.byPath = null; };
    // Registered first, so every other observer reads the new tree.
    for (const map of [this.texts, this.paths, this.folders]) map.observe(forget);
  }

  /** The tree every replica shows for this document. */
  tree(): Tree {
    this.cached ??= treeOf(this.doc);
    return this.cached;
  }

  /** File ids by the path they are shown under. */
  private ids(): Map<string, string> {
    this.byPath ??= new Map([...this.tree().files].map(([id, path]) => [path, id]));
    return this.byPath;
  }

  /** How many files the room has. */
  get size(): number {
    return this.tree().files.size;
  }

  /** The id of the file shown at `path`. */
  idOf(path: string): string | undefined {
    return this.ids().get(path);
  }

  /** The path the file `id` is shown under, or undefined when it is gone. */
  pathOf(id: string): string | undefined {
    return this.tree().files.get(id);
  }

  has(path: string): boolean {
    return this.ids().has(path);
  }

  /** The text of the file shown at `path`. */
  get(path: string): Y.Text | undefined {
    const id = this.idOf(path);
    return id === undefined ? undefined : this.textOf(id);
  }

  textOf(id: string): Y.Text | undefined {
    const text = this.texts.get(id);
    return text instanceof Y.Text ? text : undefined;
  }

  /** Calls `listener` after any change to which files there are or where they are. */
  observe(listener: () => void): void {
    for (const map of [this.texts, this.paths, this.folders]) map.observe(listener);
  }

  /** Calls `listener` after any change to the tree or to a file's text. */
  observeDeep(listener: () => void): void {
    this.texts.observeDeep(listener);
    this.paths.observe(listener);
    this.folders.observe(listener);
  }
}

/** The tree of `doc`'s files, computed afresh. */
export function treeOf(doc: Y.Doc): Tree {
  const paths = doc.getMap(PATHS_KEY);
  const wanted = new Map<string, string | null>();
  doc.getMap(FILES_KEY).forEach((value, id) => {
    if (!(value instanceof Y.Text)) return;
    const path = paths.get(id);
    wanted.set(id, typeof path === "string" ? path : null);
  });
  return resolve(wanted, doc.getMap(FOLDERS_KEY).keys());
}

/** Every file's text by the path it is shown under (what a run is given). */
export function textsByPath(doc: Y.Doc): Record<string, string> {
  const texts = doc.getMap(FILES_KEY);
  return Object.fromEntries([...treeOf(doc).files].map(([id, path]) => [path, String(texts.get(id))]));
}

export function roomFiles(doc: Y.Doc): RoomFiles {
  return new RoomFiles(doc);
}

/** File paths in display order (folders first at each level, then by name). */
export function listFiles(files: RoomFiles): string[] {
  return [...files.tree().files.values()].sort(byTreeOrder);
}

/** The file a page opens first: the first top-level one, else the first of the tree. */
export function firstFile(files: RoomFiles): string | undefined {
  const paths = listFiles(files);
  return paths.find((path) => !path.includes("/")) ?? paths[0];
}

/** Folders before files at each level, each by name: the order of the file tree. */
export function byTreeOrder(a: string, b: string): number {
  const left = a.split("/");
  const right = b.split("/");
  for (let i = 0; i < Math.min(left.length, right.length); i++) {
    if (left[i] === right[i]) continue;
    const leftIsFolder = i < left.length - 1;
    const rightIsFolder = i < right.length - 1;
    if (leftIsFolder !== rightIsFolder) return leftIsFolder ? -1 : 1;
    return left[i]!.localeCompare(right[i]!);
  }
  return left.length - right.length;
}

/** Why `path` cannot name a new file or folder (or `id`'s new path), or null when it can. */
export function invalidPath(files: RoomFiles, path: string, id?: string): string | null {
  const names = path.split("/");
  if (path.length > MAX_PATH || names.some((name) => !NAME_PATTERN.test(name) || name.trim() !== name || name === "." || name === "..")) {
    return "Names are 1–128 characters without backslashes or leading/trailing spaces; folders are separated by /.";
  }
  const tree = files.tree();
  if (tree.folders.includes(path)) return `A folder named "${path}" already exists.`;
  const holder = files.idOf(path);
  if (holder !== undefined && holder !== id) return `A file named "${path}" already exists.`;
  const blocking = parents(path).find((folder) => files.has(folder));
  if (blocking) return `"${blocking}" is a file, not a folder.`;
  return null;
}

/** A new file (a fresh random id) at `path`; its id. */
export function createFile(files: RoomFiles, path: string, content = ""): string {
  const id = newFileId();
  files.doc.transact(() => {
    files.texts.set(id, new Y.Text(content));
    files.paths.set(id, path);
  }, FILES_ORIGIN);
  return id;
}

export function createFolder(files: RoomFiles, path: string): void {
  files.doc.transact(() => files.folders.set(path, true), FILES_ORIGIN);
}

/** Renames or moves one file: only its path changes, its text (and anyone's edit) stays. */
export function renameFile(files: RoomFiles, id: string, path: string): void {
  files.doc.transact(() => files.paths.set(id, path), FILES_ORIGIN);
}

export function deleteFile(files: RoomFiles, id: string): void {
  files.doc.transact(() => {
    files.texts.delete(id);
    files.paths.delete(id);
  }, FILES_ORIGIN);
}

const isUnder = (path: string, folder: string): boolean => path.startsWith(`${folder}/`);

/** The ids of the files shown under `folder`. */
export function filesUnder(files: RoomFiles, folder: string): string[] {
  return [...files.tree().files].filter(([, path]) => isUnder(path, folder)).map(([id]) => id);
}

/** Renames or moves a folder: sets the path of every file under it, moves its explicit folders. */
export function moveFolder(files: RoomFiles, from: string, to: string): void {
  files.doc.transact(() => {
    for (const id of filesUnder(files, from)) files.paths.set(id, to + files.pathOf(id)!.slice(from.length));
    for (const folder of [...files.folders.keys()]) {
      if (folder !== from && !isUnder(folder, from)) continue;
      files.folders.delete(folder);
      files.folders.set(to + folder.slice(from.length), true);
    }
  }, FILES_ORIGIN);
}

/** Deletes a folder and everything in it; how many files went. */
export function deleteFolder(files: RoomFiles, folder: string): number {
  const gone = filesUnder(files, folder);
  files.doc.transact(() => {
    for (const id of gone) {
      files.texts.delete(id);
      files.paths.delete(id);
    }
    for (const explicit of [...files.folders.keys()]) {
      if (explicit === folder || isUnder(explicit, folder)) files.folders.delete(explicit);
    }
  }, FILES_ORIGIN);
  return gone.length;
}

/** `path` cleaned the way every replica reads it (for paths typed by a person). */
export function cleanTypedPath(path: string): string {
  return normalise(path.trim());
}

/** A random file id (not crypto.randomUUID: that needs a secure context, a LAN address is not). */
export function newFileId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return `id-${[...bytes].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/**
 * Gives a new room its first file. Call only after the provider synced, so that an existing
 * room's files are known. The starter is keyed by its name (no path entry), so two pages
 * opening a new room at once write the same key and one starter wins everywhere.
 */
export function ensureStarterFile(files: RoomFiles, name: keyof typeof STARTER_FILES = "main.py"): void {
  if (files.size > 0) return;
  files.doc.transact(() => files.texts.set(name, new Y.Text(STARTER_FILES[name])), FILES_ORIGIN);
}
