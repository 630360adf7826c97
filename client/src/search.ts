/** Search across files (Ctrl+Shift+F): every line holding the text, by file and line. */
import type { EditorView } from "@codemirror/view";
import { listFiles, type RoomFiles } from "./files";
import { openPalette, type PaletteItem } from "./palette";

/** At most this many matching lines are listed. */
const MAX_RESULTS = 200;

export interface SearchMatch { path: string; line: number; text: string }

/** Lines of `files` containing `query` (case-insensitive), in file-tree order, at most `limit`. */
export function searchFiles(files: RoomFiles, query: string, limit = MAX_RESULTS): SearchMatch[] {
  const needle = query.toLowerCase();
  const matches: SearchMatch[] = [];
  if (!needle) return matches;
  for (const path of listFiles(files)) {
    const lines = files.get(path)?.toString().split("\n") ?? [];
    for (let i = 0; i < lines.length && matches.length < limit; i++) {
      if (lines[i]!.toLowerCase().includes(needle)) matches.push({ path, line: i + 1, text: lines[i]!.trim() });
    }
  }
  return matches;
}

/** Puts the cursor at the start of 1-based `line` of the open file and scrolls to it. */
export function goToLine(view: EditorView, line: number): void {
  const target = view.state.doc.line(Math.min(Math.max(line, 1), view.state.doc.lines));
  view.dispatch({ selection: { anchor: target.from }, scrollIntoView: true });
  view.focus();
}

/** Opens the search; a pick calls `onOpen` with the file's path and the line. */
export function openSearch(files: RoomFiles, onOpen: (path: string, line: number) => void): void {
  openPalette({
    testId: "search",
    placeholder: "Search in every file",
    items: (query): PaletteItem[] => {
      const items: PaletteItem[] = [];
      let file: string | null = null;
      for (const match of searchFiles(files, query)) {
        if (match.path !== file) {
          file = match.path;
          items.push({ label: match.path, testId: "search-file", data: { file: match.path }, heading: true });
        }
        items.push({
          label: `${match.line}: ${match.text}`, testId: "search-result", data: { file: match.path, line: String(match.line) },
          pick: () => onOpen(match.path, match.line),
        });
      }
      return items;
    },
  });
}
