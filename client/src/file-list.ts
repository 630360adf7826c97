/**
 * The file list: shows the shared files map, opens a file on click, and creates, renames and
 * deletes files with an inline name field and an inline delete confirmation (no browser dialogs).
 */
import type * as Y from "yjs";
import { h, replaceChildren } from "./dom";
import { createFile, deleteFile, invalidFileName, listFiles, renameFile } from "./files";

export interface FileListOptions {
  onOpen: (fileName: string) => void;
  onRenamed: (from: string, to: string) => void;
  onError: (message: string | null) => void;
}

export interface FileList {
  setCurrent: (fileName: string | null) => void;
  setEditable: (editable: boolean) => void;
}

type Mode = { kind: "idle" } | { kind: "new" } | { kind: "rename"; from: string } | { kind: "delete"; name: string };

export function mountFileList(container: HTMLElement, files: Y.Map<Y.Text>, options: FileListOptions): FileList {
  let current: string | null = null;
  let editable = false;
  let mode: Mode = { kind: "idle" };

  const newButton = h("button", { type: "button", "data-testid": "new-file", title: "New file" }, "New");
  const renameButton = h("button", { type: "button", "data-testid": "rename-file", title: "Rename the open file" }, "Rename");
  const deleteButton = h("button", { type: "button", "data-testid": "delete-file", title: "Delete the open file" }, "Delete");
  const list = h("ul", { class: "file-list", "data-testid": "file-list" });
  const form = h("div", { class: "file-form" });

  const setMode = (next: Mode): void => {
    mode = next;
    renderForm();
  };

  const submitName = (value: string): void => {
    const name = value.trim();
    if (mode.kind === "rename" && name === mode.from) return setMode({ kind: "idle" });
    const problem = invalidFileName(files, name);
    if (problem) {
      options.onError(problem);
      return;
    }
    options.onError(null);
    if (mode.kind === "new") {
      createFile(files, name);
      setMode({ kind: "idle" });
      options.onOpen(name);
    } else if (mode.kind === "rename") {
      const from = mode.from;
      renameFile(files, from, name);
      setMode({ kind: "idle" });
      options.onRenamed(from, name);
    }
  };

  function renderForm(): void {
    if (mode.kind === "new" || mode.kind === "rename") {
      const input = h("input", {
        "data-testid": "file-name-input", "aria-label": "File name", maxlength: 128,
        value: mode.kind === "rename" ? mode.from : "", placeholder: "name.py",
      });
      const save = h("button", { type: "submit", "data-testid": "file-name-save" }, mode.kind === "new" ? "Create" : "Rename");
      const cancel = h("button", { type: "button", "data-testid": "file-name-cancel" }, "Cancel");
      const f = h("form", {}, input, save, cancel);
      f.addEventListener("submit", (e) => { e.preventDefault(); submitName(input.value); });
      input.addEventListener("keydown", (e) => { if (e.key === "Escape") setMode({ kind: "idle" }); });
      cancel.addEventListener("click", () => setMode({ kind: "idle" }));
      replaceChildren(form, f);
      input.focus();
      if (mode.kind === "rename") input.setSelectionRange(0, mode.from.lastIndexOf(".") > 0 ? mode.from.lastIndexOf(".") : mode.from.length);
    } else if (mode.kind === "delete") {
      const name = mode.name;
      const confirm = h("button", { type: "button", class: "danger", "data-testid": "confirm-delete" }, "Delete");
      const cancel = h("button", { type: "button", "data-testid": "cancel-delete" }, "Cancel");
      confirm.addEventListener("click", () => { deleteFile(files, name); setMode({ kind: "idle" }); });
      cancel.addEventListener("click", () => setMode({ kind: "idle" }));
      replaceChildren(form, h("span", {}, `Delete ${name}?`), confirm, cancel);
    } else {
      replaceChildren(form);
    }
  }

  const renderList = (): void => {
    const names = listFiles(files);
    list.replaceChildren(...names.map((name) => {
      const item = h("li", {
        class: `file-item${name === current ? " current" : ""}`, "data-testid": "file-item", "data-file": name,
        "aria-selected": String(name === current), role: "option", tabindex: 0,
      }, name);
      item.addEventListener("click", () => options.onOpen(name));
      item.addEventListener("keydown", (e) => { if (e.key === "Enter") options.onOpen(name); });
      return item;
    }));
    if (names.length === 0) list.append(h("li", { class: "muted" }, "No files"));
    renameButton.disabled = deleteButton.disabled = !editable || current === null;
    newButton.disabled = !editable;
  };

  newButton.addEventListener("click", () => setMode({ kind: "new" }));
  renameButton.addEventListener("click", () => { if (current) setMode({ kind: "rename", from: current }); });
  deleteButton.addEventListener("click", () => { if (current) setMode({ kind: "delete", name: current }); });

  files.observe(() => {
    renderList();
    if ((mode.kind === "rename" && !files.has(mode.from)) || (mode.kind === "delete" && !files.has(mode.name))) setMode({ kind: "idle" });
  });
  replaceChildren(container, h("h2", {}, "Files"), h("div", { class: "file-actions" }, newButton, renameButton, deleteButton), form, list);
  renderList();

  return {
    setCurrent(fileName) {
      current = fileName;
      renderList();
    },
    setEditable(value) {
      editable = value;
      if (!value && mode.kind !== "idle") setMode({ kind: "idle" });
      renderList();
    },
  };
}
