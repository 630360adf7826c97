/** How versions are named and dated on the page (history list, preview, restore note). */
import type { VersionKind } from "./api";

/** A version's title: its name, else what kind of version it is. */
export function versionTitle(kind: VersionKind, name: string | null): string {
  if (name) return name;
  return kind === "restore" ? "Before restore" : kind === "named" ? "Named version" : "Automatic checkpoint";
}

/** "14:03" today, "3 Dec 14:03" this year, "3 Dec 2025 14:03" before; the page's time zone. */
export function formatWhen(iso: string | number, now: Date = new Date()): string {
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) return String(iso);
  const time = when.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
  if (when.toDateString() === now.toDateString()) return time;
  const date = when.toLocaleDateString(undefined, {
    day: "numeric", month: "short", ...(when.getFullYear() === now.getFullYear() ? {} : { year: "numeric" }),
  });
  return `${date} ${time}`;
}

/** "812 B", "4.2 KB", "1.3 MB". */
export function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}
