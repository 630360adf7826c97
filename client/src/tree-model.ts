/**
 * Which path each file of the room is shown under: the same pure function as the server's
 * `pairpilot.sync.tree.resolve` (tests/interop/test_tree_resolvers.py runs both on the same
 * cases). No imports, so Node runs it in the tests as it is.
 *
 * Paths are normalised; folders are the explicit ones plus every file's parent folders; where
 * two files (or a file and a folder) want one path, the folder and then the smallest id keep it
 * and the others get `name (2).ext`, `name (3).ext`… Folders are only prefixes of paths, so no
 * cycle can form and every file is reachable.
 */

/** Shown for a file whose asked-for path has nothing usable left. */
export const UNTITLED = "untitled";
const CONTROL = /[\u0000-\u001f\u007f]/g;

export interface Tree {
  /** Every file's shown path, by id, in path order. */
  files: Map<string, string>;
  /** Every folder, sorted. */
  folders: string[];
}

/** Orders strings by code point, as Python does (JavaScript's `<` compares UTF-16 units). */
export function compareCodePoints(a: string, b: string): number {
  const left = [...a];
  const right = [...b];
  for (let i = 0; i < Math.min(left.length, right.length); i++) {
    const diff = left[i]!.codePointAt(0)! - right[i]!.codePointAt(0)!;
    if (diff !== 0) return diff;
  }
  return left.length - right.length;
}

/** `path` without control characters, empty, `.` or `..` segments ("" if none are left). */
export function normalise(path: string): string {
  const segments = path.replace(CONTROL, "").replaceAll("\\", "/").split("/");
  return segments.filter((segment) => segment !== "" && segment !== "." && segment !== "..").join("/");
}

/** The folders `path` is in, outermost first: `a/b/c` → `a`, `a/b`. */
export function parents(path: string): string[] {
  const segments = path.split("/");
  return segments.slice(1).map((_, end) => segments.slice(0, end + 1).join("/"));
}

/** `dir/stem (counter).ext`; a dot file or a name without a dot gets the suffix last. */
export function suffixed(path: string, counter: number): string {
  const slash = path.lastIndexOf("/");
  const folder = path.slice(0, slash + 1);
  const name = path.slice(slash + 1);
  const dot = name.lastIndexOf(".");
  if (dot <= 0) return `${folder}${name} (${counter})`;
  return `${folder}${name.slice(0, dot)} (${counter})${name.slice(dot)}`;
}

/** The tree of files `wanted` (id → path asked for, null: the id) and explicit folders. */
export function resolve(wanted: Map<string, string | null>, explicitFolders: Iterable<string>): Tree {
  const asked = new Map<string, string>();
  for (const [id, path] of wanted) asked.set(id, normalise(path ?? id) || UNTITLED);
  const folders = new Set<string>();
  for (const folder of explicitFolders) {
    const clean = normalise(folder);
    if (!clean) continue;
    folders.add(clean);
    for (const parent of parents(clean)) folders.add(parent);
  }
  for (const path of asked.values()) for (const parent of parents(path)) folders.add(parent);

  const taken = new Set(folders);
  const shown = new Map<string, string>();
  const waiting: string[] = [];
  const byPathThenId = (a: string, b: string): number => compareCodePoints(asked.get(a)!, asked.get(b)!) || compareCodePoints(a, b);
  for (const id of [...asked.keys()].sort(byPathThenId)) {
    const path = asked.get(id)!;
    if (taken.has(path)) {
      waiting.push(id);
    } else {
      taken.add(path);
      shown.set(id, path);
    }
  }
  for (const id of waiting) {
    let counter = 2;
    while (taken.has(suffixed(asked.get(id)!, counter))) counter++;
    const path = suffixed(asked.get(id)!, counter);
    shown.set(id, path);
    taken.add(path);
  }
  const ordered = [...shown].sort(([idA, a], [idB, b]) => compareCodePoints(a, b) || compareCodePoints(idA, idB));
  return { files: new Map(ordered), folders: [...folders].sort(compareCodePoints) };
}
