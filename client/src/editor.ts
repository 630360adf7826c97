/**
 * The code editor: CodeMirror 6 bound to one file's Y.Text through y-codemirror.next (sync,
 * remote cursors, and a Y.UndoManager so undo/redo touch only one's own edits), with the
 * language chosen by file extension and a read-only switch for viewers.
 */
import {
  acceptCompletion, autocompletion, closeBrackets, closeBracketsKeymap, completionKeymap,
} from "@codemirror/autocomplete";
import { defaultKeymap, indentWithTab } from "@codemirror/commands";
import { css } from "@codemirror/lang-css";
import { html } from "@codemirror/lang-html";
import { javascript } from "@codemirror/lang-javascript";
import { json } from "@codemirror/lang-json";
import { markdown } from "@codemirror/lang-markdown";
import { python } from "@codemirror/lang-python";
import {
  bracketMatching, defaultHighlightStyle, foldGutter, foldKeymap, indentOnInput, syntaxHighlighting,
} from "@codemirror/language";
import { highlightSelectionMatches, searchKeymap } from "@codemirror/search";
import { Compartment, EditorState, Prec, type Extension } from "@codemirror/state";
import {
  crosshairCursor, drawSelection, dropCursor, EditorView, highlightActiveLine, highlightActiveLineGutter,
  highlightSpecialChars, keymap, lineNumbers, rectangularSelection, type KeyBinding,
} from "@codemirror/view";
import { yCollab, yUndoManagerKeymap } from "y-codemirror.next";
import * as Y from "yjs";
import type { Awareness } from "y-protocols/awareness";

/** Language support per file extension. */
const LANGUAGES: Record<string, () => Extension> = {
  py: () => python(),
  js: () => javascript(),
  mjs: () => javascript(),
  cjs: () => javascript(),
  jsx: () => javascript({ jsx: true }),
  ts: () => javascript({ typescript: true }),
  tsx: () => javascript({ typescript: true, jsx: true }),
  html: () => html(),
  htm: () => html(),
  css: () => css(),
  json: () => json(),
  md: () => markdown(),
};

export function extensionOf(fileName: string): string {
  const dot = fileName.lastIndexOf(".");
  return dot < 0 ? "" : fileName.slice(dot + 1).toLowerCase();
}

export function languageFor(fileName: string): Extension {
  return LANGUAGES[extensionOf(fileName)]?.() ?? [];
}

/**
 * Undo/redo act on the Y.Text directly, past CodeMirror's read-only state: a viewer who typed
 * while still an editor could otherwise undo into a document the server will not accept.
 */
const undoKeys: KeyBinding[] = yUndoManagerKeymap.map((binding) => ({
  ...binding,
  run: (view: EditorView) => view.state.readOnly || (binding.run?.(view) ?? false),
}));

/** The browser's own undo (`beforeinput` historyUndo/historyRedo) reaches yCollab the same way. */
const readOnlyHistoryGuard = Prec.highest(EditorView.domEventHandlers({
  beforeinput(event, view) {
    if (!view.state.readOnly || (event.inputType !== "historyUndo" && event.inputType !== "historyRedo")) return false;
    event.preventDefault();
    return true;
  },
}));

/** Completion keys without Enter: Enter always inserts a newline, Tab accepts a completion. */
const completionKeys = [{ key: "Tab", run: acceptCompletion }, ...completionKeymap.filter((b) => b.key !== "Enter")];

/** basicSetup without its own history: undo/redo belong to the Y.UndoManager. */
const baseSetup: Extension = [
  lineNumbers(),
  highlightActiveLineGutter(),
  highlightSpecialChars(),
  foldGutter(),
  drawSelection(),
  dropCursor(),
  EditorState.allowMultipleSelections.of(true),
  indentOnInput(),
  syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
  bracketMatching(),
  closeBrackets(),
  autocompletion({ defaultKeymap: false }),
  rectangularSelection(),
  crosshairCursor(),
  highlightActiveLine(),
  highlightSelectionMatches(),
  readOnlyHistoryGuard,
  keymap.of([
    ...undoKeys,
    ...completionKeys,
    ...closeBracketsKeymap,
    ...defaultKeymap,
    ...searchKeymap,
    ...foldKeymap,
    indentWithTab,
  ]),
  EditorView.theme({
    "&": { height: "100%" },
    ".cm-scroller": { fontFamily: "var(--mono)" },
    // y-codemirror.next fades the remote caret's name in only on hover; show who it is at once.
    ".cm-ySelectionInfo": { opacity: 1 },
  }),
];

export interface Editor {
  view: EditorView;
  /** Shows `fileName` (its Y.Text), keeping that file's undo history. */
  open: (fileName: string, text: Y.Text) => void;
  /** Shows a placeholder when there is no file. */
  close: () => void;
  setReadOnly: (readOnly: boolean) => void;
  /**
   * Empties every file's undo history. A Y.UndoManager keeps the content of the deletions it
   * could undo, so deleted text would still be sent to the server (see `refusal.ts`).
   */
  forgetUndoHistory: () => void;
  destroy: () => void;
}

function readOnlyExtension(readOnly: boolean): Extension {
  return [EditorState.readOnly.of(readOnly), EditorView.editable.of(!readOnly)];
}

/**
 * Mounts the editor in `parent`; remote cursors come from `awareness`. `extensions` join every
 * file's editor state (comments, follow mode).
 */
export function createEditor(parent: HTMLElement, awareness: Awareness, extensions: Extension = []): Editor {
  const view = new EditorView({ parent, state: EditorState.create({ doc: "", extensions: [readOnlyExtension(true)] }) });
  const undoManagers = new Map<Y.Text, Y.UndoManager>();
  const readOnlyCompartment = new Compartment();
  let readOnly = true;
  let hasFile = false;

  const undoManagerFor = (text: Y.Text): Y.UndoManager => {
    let manager = undoManagers.get(text);
    if (!manager) {
      manager = new Y.UndoManager(text);
      undoManagers.set(text, manager);
    }
    return manager;
  };

  return {
    view,
    open(fileName, text) {
      hasFile = true;
      view.setState(EditorState.create({
        doc: text.toString(),
        extensions: [
          baseSetup,
          languageFor(fileName),
          readOnlyCompartment.of(readOnlyExtension(readOnly)),
          yCollab(text, awareness, { undoManager: undoManagerFor(text) }),
          extensions,
        ],
      }));
    },
    close() {
      hasFile = false;
      view.setState(EditorState.create({ doc: "", extensions: [readOnlyExtension(true)] }));
    },
    setReadOnly(value) {
      // Also called from awareness changes that CodeMirror itself triggers mid-update: only
      // dispatch on a real change.
      if (value === readOnly) return;
      readOnly = value;
      if (hasFile) view.dispatch({ effects: readOnlyCompartment.reconfigure(readOnlyExtension(value)) });
    },
    forgetUndoHistory() {
      for (const manager of undoManagers.values()) manager.clear();
    },
    destroy() {
      view.destroy();
    },
  };
}
