/**
 * How other pages and the server name a file: by its id in the room's `files` map (README,
 * "The room's files"), which renames and moves do not change, so a comment thread or a followed
 * view stays on its file when the file moves. Follow mode (awareness) and comment threads (the
 * API's `file`) go through these two functions only.
 */
import type { RoomFiles } from "./files";

/** The identity of the file open under `name` (its path). */
export function fileIdentity(files: RoomFiles, name: string): string {
  return files.idOf(name) ?? name;
}

/**
 * The path of the file with `identity` in `files`, or null when the room has no such file. An
 * identity that is no id but a shown path (written by a page of the version before ids) is read
 * as that path.
 */
export function fileNamed(files: RoomFiles, identity: string): string | null {
  return files.pathOf(identity) ?? (files.has(identity) ? identity : null);
}
