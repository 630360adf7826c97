/** Quick open (Ctrl+P): every file of the room, matched fuzzily by path. */
import { listFiles, type RoomFiles } from "./files";
import { openPalette, type PaletteItem } from "./palette";
import { openSearch } from "./search";

const SHOWN = 50;

/**
 * How well `query` matches `path` (higher is better), or null when its characters are not all
 * in the path in order. Runs of consecutive characters and matches in the file's own name count
 * more, and shorter paths win ties.
 */
export function fuzzyScore(query: string, path: string): number | null {
  const q = query.toLowerCase().replaceAll(" ", "");
  const p = path.toLowerCase();
  const nameStart = p.lastIndexOf("/") + 1;
  let score = 0;
  let at = 0;
  let previous = -2;
  for (const char of q) {
    const found = p.indexOf(char, at);
    if (found < 0) return null;
    score += 1 + (found === previous + 1 ? 5 : 0) + (found >= nameStart ? 2 : 0) + (found === nameStart || p[found - 1] === "/" ? 3 : 0);
    previous = found;
    at = found + 1;
  }
  return score - path.length / 100;
}

/** Opens quick open over `files`; a pick calls `onOpen` with the path. */
export function openQuickOpen(files: RoomFiles, onOpen: (path: string) => void): void {
  openPalette({
    testId: "quick-open",
    placeholder: "Go to file (fuzzy, by path)",
    items: (query): PaletteItem[] => listFiles(files)
      .map((path) => ({ path, score: query ? fuzzyScore(query, path) : 0 }))
      .filter((match): match is { path: string; score: number } => match.score !== null)
      .sort((a, b) => b.score - a.score)
      .slice(0, SHOWN)
      .map(({ path }) => ({ label: path, testId: "quick-open-item", data: { file: path }, pick: () => onOpen(path) })),
  });
}

/**
 * Ctrl+P (⌘P) opens quick open, Ctrl+Shift+F (⌘⇧F) search across files, instead of the
 * browser's print dialog and find.
 */
export function bindFileShortcuts(files: RoomFiles, onOpen: (path: string) => void, onOpenAt: (path: string, line: number) => void): void {
  window.addEventListener("keydown", (e) => {
    const key = e.key.toLowerCase();
    if (!(e.ctrlKey || e.metaKey) || e.altKey) return;
    if (key === "p" && !e.shiftKey) openQuickOpen(files, onOpen);
    else if (key === "f" && e.shiftKey) openSearch(files, onOpenAt);
    else return;
    e.preventDefault();
  }, { capture: true });
}
