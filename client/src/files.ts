/**
 * The room's files: a shared `Y.Map<Y.Text>` named "files", keyed by file name. Every local
 * change runs in a transaction tagged with FILES_ORIGIN.
 */
import * as Y from "yjs";

export const FILES_KEY = "files";
/** Origin of file-list changes made by this client (create, rename, delete, initial file). */
export const FILES_ORIGIN = "pairpilot:files";

/** File names: no slashes or control characters, 1–128 characters. */
const FILE_NAME_PATTERN = /^[^/\\\u0000-\u001f]{1,128}$/;

const STARTER_FILES: Record<string, string> = {
  "main.py": 'print("Hello from PairPilot!")\n\nfor i in range(3):\n    print("line", i)\n',
  "main.js": 'console.log("Hello from PairPilot!");\n',
};

export function filesMap(doc: Y.Doc): Y.Map<Y.Text> {
  return doc.getMap<Y.Text>(FILES_KEY);
}

/** File names in display order. */
export function listFiles(files: Y.Map<Y.Text>): string[] {
  return [...files.keys()].sort((a, b) => a.localeCompare(b));
}

/** Why a name cannot be used, or null when it can. */
export function invalidFileName(files: Y.Map<Y.Text>, name: string): string | null {
  if (!FILE_NAME_PATTERN.test(name) || name.trim() !== name || name === "." || name === "..") {
    return "File names are 1–128 characters, without slashes or leading/trailing spaces.";
  }
  if (files.has(name)) return `A file named "${name}" already exists.`;
  return null;
}

export function createFile(files: Y.Map<Y.Text>, name: string, content = ""): void {
  files.doc!.transact(() => {
    files.set(name, new Y.Text(content));
  }, FILES_ORIGIN);
}

/** Renames by moving the content to a new Y.Text under the new key, in one transaction. */
export function renameFile(files: Y.Map<Y.Text>, from: string, to: string): void {
  const text = files.get(from);
  if (!text) return;
  files.doc!.transact(() => {
    files.set(to, new Y.Text(text.toString()));
    files.delete(from);
  }, FILES_ORIGIN);
}

export function deleteFile(files: Y.Map<Y.Text>, name: string): void {
  files.doc!.transact(() => files.delete(name), FILES_ORIGIN);
}

/**
 * Gives a new room its first file. Call only after the provider synced, so that an existing
 * room's files are known and no duplicate starter is made.
 */
export function ensureStarterFile(files: Y.Map<Y.Text>, name: keyof typeof STARTER_FILES = "main.py"): void {
  if (files.size > 0) return;
  createFile(files, name, STARTER_FILES[name]);
}
