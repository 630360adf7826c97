/**
 * Comment threads in the editor: a marker in the gutter on the first line of each open
 * thread's range, and the range itself underlined. The ranges come from the threads' anchors
 * (comment-anchors.ts), set by the comments panel; between two settings they follow the edits.
 */
import { RangeSet, StateEffect, StateField, type Extension, type Text } from "@codemirror/state";
import { Decoration, EditorView, gutter, GutterMarker, type DecorationSet } from "@codemirror/view";

export interface CommentMark { threadId: string; from: number; to: number }
export interface CommentGutterOptions {
  /** A gutter marker was clicked: the first thread on that line. */
  onMarker: (threadId: string) => void;
  /** The selection changed (the "Comment" button follows it). */
  onSelection: (from: number, to: number) => void;
}

class ThreadMarker extends GutterMarker {
  constructor(readonly threadId: string) {
    super();
  }

  override eq(other: GutterMarker): boolean {
    return other instanceof ThreadMarker && other.threadId === this.threadId;
  }

  override toDOM(): Node {
    const marker = document.createElement("span");
    marker.className = "comment-marker";
    marker.textContent = "💬";
    marker.dataset.testid = "comment-marker";
    marker.dataset.threadId = this.threadId;
    marker.title = "Comment thread";
    return marker;
  }
}

const setMarks = StateEffect.define<CommentMark[]>();

interface Marks { ranges: DecorationSet; markers: RangeSet<ThreadMarker> }

function build(marks: CommentMark[], doc: Text): Marks {
  const valid = marks.filter((m) => m.from < m.to && m.to <= doc.length).sort((a, b) => a.from - b.from);
  // A gutter shows the markers that sit at a line's start: one per line, the first thread's.
  const lineStarts = new Map<number, string>();
  for (const m of valid) {
    const start = doc.lineAt(m.from).from;
    if (!lineStarts.has(start)) lineStarts.set(start, m.threadId);
  }
  return {
    ranges: Decoration.set(valid.map((m) => Decoration.mark({
      class: "cm-comment-range", attributes: { "data-thread-id": m.threadId },
    }).range(m.from, m.to))),
    markers: RangeSet.of([...lineStarts].map(([start, threadId]) => new ThreadMarker(threadId).range(start))),
  };
}

const marksField = StateField.define<Marks>({
  create: () => ({ ranges: Decoration.none, markers: RangeSet.empty }),
  update(value, tr) {
    for (const effect of tr.effects) if (effect.is(setMarks)) return build(effect.value, tr.newDoc);
    if (!tr.docChanged) return value;
    return { ranges: value.ranges.map(tr.changes), markers: value.markers.map(tr.changes) };
  },
  provide: (field) => EditorView.decorations.from(field, (value) => value.ranges),
});

/** Shows `marks` in `view` (the current file's open threads). */
export function showCommentMarks(view: EditorView, marks: CommentMark[]): void {
  if (view.state.field(marksField, false) === undefined) return; // no file open
  view.dispatch({ effects: setMarks.of(marks) });
}

/** The editor extension: the marks' field, their gutter, and the selection's reports. */
export function commentGutter(options: CommentGutterOptions): Extension {
  return [
    marksField,
    gutter({
      class: "cm-comment-gutter",
      markers: (view) => view.state.field(marksField).markers,
      // A new set of marks changes no line or viewport: the gutter is told to redraw.
      lineMarkerChange: (update) => update.startState.field(marksField) !== update.state.field(marksField),
      domEventHandlers: {
        mousedown(view, line) {
          let found: string | null = null;
          view.state.field(marksField).markers.between(line.from, line.from, (from, _to, marker) => {
            if (found === null && from === line.from) found = marker.threadId;
          });
          if (found === null) return false;
          options.onMarker(found);
          return true;
        },
      },
    }),
    EditorView.updateListener.of((update) => {
      if (update.selectionSet || update.docChanged) {
        const main = update.state.selection.main;
        options.onSelection(main.from, main.to);
      }
    }),
  ];
}
