/**
 * How other pages and the server name a file: by its path today. Follow mode (awareness) and
 * comment threads (the API's `file`) go through these two functions only, so naming files by a
 * stable id instead is a change here.
 */
import type * as Y from "yjs";

/** The identity of the file open under `name`. */
export function fileIdentity(name: string): string {
  return name;
}

/** The name of the file with `identity` in `files`, or null when the room has no such file. */
export function fileNamed(files: Y.Map<Y.Text>, identity: string): string | null {
  return files.has(identity) ? identity : null;
}
