/**
 * A read-only diff of one file: `@codemirror/merge`'s unified view showing a version's text,
 * with the file's current text as the original (deleted chunks: what a restore would take out;
 * inserted lines: what it would bring back).
 */
import { defaultHighlightStyle, syntaxHighlighting } from "@codemirror/language";
import { getChunks, unifiedMergeView } from "@codemirror/merge";
import { EditorState } from "@codemirror/state";
import { EditorView, lineNumbers } from "@codemirror/view";
import { languageFor } from "./editor";

export interface VersionDiff {
  /** Number of changed chunks (0: the version's text equals the current one). */
  changes: number;
  destroy: () => void;
}

/** Renders the diff of `fileName` into `parent` (replacing what was there). */
export function renderVersionDiff(parent: HTMLElement, fileName: string, versionText: string, currentText: string): VersionDiff {
  parent.replaceChildren();
  const view = new EditorView({
    parent,
    state: EditorState.create({
      doc: versionText,
      extensions: [
        lineNumbers(),
        syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
        languageFor(fileName),
        EditorState.readOnly.of(true),
        EditorView.editable.of(false),
        unifiedMergeView({ original: currentText, mergeControls: false, collapseUnchanged: { margin: 3, minSize: 6 } }),
        EditorView.theme({ ".cm-scroller": { fontFamily: "var(--mono)" } }),
      ],
    }),
  });
  return {
    changes: getChunks(view.state)?.chunks.length ?? 0,
    destroy: () => view.destroy(),
  };
}
