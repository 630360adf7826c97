/**
 * The file tree: folders that open and close, the open file highlighted and revealed, who is in
 * which file; new file / new folder, rename or move (a path with slashes, or drag and drop onto
 * a folder or the tree's title), delete (a folder says how many files go) with an inline name
 * field and an inline confirmation (no browser dialogs). Rename and delete act on the selected
 * entry: the last one clicked, the open file otherwise.
 */
import { h, replaceChildren } from "./dom";
import {
  byTreeOrder, cleanTypedPath, createFile, createFolder, deleteFile, deleteFolder, filesUnder, invalidPath, moveFolder,
  renameFile, type RoomFiles,
} from "./files";
import { parents } from "./tree-model";

export interface FileListOptions {
  onOpen: (path: string) => void;
  onRenamed: (from: string, to: string) => void;
  onError: (message: string | null) => void;
  /** Who else has which file open, to show on the files' entries. */
  presence?: () => { name: string; color: string; file: string | null }[];
}

export interface FileList {
  setCurrent: (path: string | null) => void;
  setEditable: (editable: boolean) => void;
  /** Draws the tree again if who is in which file changed. */
  refresh: () => void;
}

type Entry = { kind: "file"; path: string } | { kind: "folder"; path: string };
type Mode =
  | { kind: "idle" }
  | { kind: "new"; entry: "file" | "folder"; folder: string }
  | { kind: "rename"; entry: Entry }
  | { kind: "delete"; entry: Entry; count: number };

const DRAG_TYPE = "application/x-pairpilot-path";
const baseName = (path: string): string => path.slice(path.lastIndexOf("/") + 1);
const folderOf = (path: string): string => path.slice(0, Math.max(0, path.lastIndexOf("/")));

export function mountFileList(container: HTMLElement, files: RoomFiles, options: FileListOptions): FileList {
  let current: string | null = null;
  let selected: Entry | null = null;
  let editable = false;
  let mode: Mode = { kind: "idle" };
  const closed = new Set<string>();
  let people = new Map<string, { name: string; color: string }[]>();
  let peopleShown = "";
  const readPresence = (): string => {
    people = new Map();
    for (const person of options.presence?.() ?? []) {
      if (person.file === null) continue;
      if (!people.has(person.file)) people.set(person.file, []);
      people.get(person.file)!.push(person);
    }
    return JSON.stringify([...people].sort());
  };

  const newButton = h("button", { type: "button", "data-testid": "new-file", title: "New file" }, "New");
  const newFolderButton = h("button", { type: "button", "data-testid": "new-folder", title: "New folder" }, "Folder");
  const renameButton = h("button", { type: "button", "data-testid": "rename-file", title: "Rename or move the selected file or folder" }, "Rename");
  const deleteButton = h("button", { type: "button", "data-testid": "delete-file", title: "Delete the selected file or folder" }, "Delete");
  const list = h("ul", { class: "file-list file-tree", "data-testid": "file-list", role: "tree" });
  const title = h("h2", { "data-testid": "file-tree-root", title: "Drop here to move to the top level" }, "Files");
  const form = h("div", { class: "file-form" });

  const target = (): Entry | null => selected ?? (current === null ? null : { kind: "file", path: current });
  const setMode = (next: Mode): void => {
    mode = next;
    renderForm();
  };

  /** Moves the file or folder at `from` to `to`, after the same checks as a rename. */
  const move = (entry: Entry, to: string): boolean => {
    if (to === entry.path) return true;
    if (entry.kind === "folder" && (to === entry.path || to.startsWith(`${entry.path}/`))) {
      options.onError("A folder cannot move into itself.");
      return false;
    }
    const id = entry.kind === "file" ? files.idOf(entry.path) : undefined;
    const problem = invalidPath(files, to, id);
    if (problem) {
      options.onError(problem);
      return false;
    }
    options.onError(null);
    if (entry.kind === "file" && id !== undefined) {
      renameFile(files, id, to);
      options.onRenamed(entry.path, to);
    } else if (entry.kind === "folder") {
      const openInside = current !== null && current.startsWith(`${entry.path}/`) ? current : null;
      moveFolder(files, entry.path, to);
      if (openInside !== null) options.onRenamed(openInside, to + openInside.slice(entry.path.length));
    }
    selected = null;
    return true;
  };

  const submitName = (value: string): void => {
    const path = cleanTypedPath(value);
    if (mode.kind === "rename") {
      if (move(mode.entry, path)) setMode({ kind: "idle" });
      return;
    }
    if (mode.kind !== "new") return;
    const problem = invalidPath(files, path);
    if (problem) {
      options.onError(problem);
      return;
    }
    options.onError(null);
    if (mode.entry === "folder") {
      createFolder(files, path);
      closed.delete(path);
      setMode({ kind: "idle" });
      renderList();
    } else {
      createFile(files, path);
      setMode({ kind: "idle" });
      options.onOpen(path);
    }
  };

  function renderForm(): void {
    if (mode.kind === "new" || mode.kind === "rename") {
      const initial = mode.kind === "rename" ? mode.entry.path : mode.folder ? `${mode.folder}/` : "";
      const input = h("input", {
        "data-testid": "file-name-input", "aria-label": mode.kind === "new" && mode.entry === "folder" ? "Folder name" : "File name",
        maxlength: 1024, value: initial, placeholder: mode.kind === "new" && mode.entry === "folder" ? "folder" : "name.py",
      });
      const label = mode.kind === "new" ? "Create" : "Rename";
      const save = h("button", { type: "submit", "data-testid": "file-name-save" }, label);
      const cancel = h("button", { type: "button", "data-testid": "file-name-cancel" }, "Cancel");
      const f = h("form", {}, input, save, cancel);
      f.addEventListener("submit", (e) => { e.preventDefault(); submitName(input.value); });
      input.addEventListener("keydown", (e) => { if (e.key === "Escape") setMode({ kind: "idle" }); });
      cancel.addEventListener("click", () => setMode({ kind: "idle" }));
      replaceChildren(form, f);
      input.focus();
      if (mode.kind === "rename") {
        const name = baseName(initial);
        const dot = name.lastIndexOf(".");
        const start = initial.length - name.length;
        input.setSelectionRange(start, mode.entry.kind === "file" && dot > 0 ? start + dot : initial.length);
      }
    } else if (mode.kind === "delete") {
      const { entry, count } = mode;
      const confirm = h("button", { type: "button", class: "danger", "data-testid": "confirm-delete" }, "Delete");
      const cancel = h("button", { type: "button", "data-testid": "cancel-delete" }, "Cancel");
      confirm.addEventListener("click", () => {
        if (entry.kind === "folder") deleteFolder(files, entry.path);
        else {
          const id = files.idOf(entry.path);
          if (id !== undefined) deleteFile(files, id);
        }
        selected = null;
        setMode({ kind: "idle" });
      });
      cancel.addEventListener("click", () => setMode({ kind: "idle" }));
      const question = entry.kind === "folder"
        ? `Delete folder ${entry.path} and the ${count} file${count === 1 ? "" : "s"} in it?`
        : `Delete ${entry.path}?`;
      replaceChildren(form, h("span", { "data-testid": "delete-question" }, question), confirm, cancel);
    } else {
      replaceChildren(form);
    }
  }

  const allowDrop = (element: HTMLElement, folder: string): void => {
    element.addEventListener("dragover", (e) => {
      if (!editable || !e.dataTransfer?.types.includes(DRAG_TYPE)) return;
      e.preventDefault();
      e.dataTransfer.dropEffect = "move";
      element.classList.add("drop-target");
    });
    element.addEventListener("dragleave", () => element.classList.remove("drop-target"));
    element.addEventListener("drop", (e) => {
      element.classList.remove("drop-target");
      const raw = e.dataTransfer?.getData(DRAG_TYPE);
      if (!raw) return;
      e.preventDefault();
      e.stopPropagation();
      const entry = JSON.parse(raw) as Entry;
      move(entry, folder ? `${folder}/${baseName(entry.path)}` : baseName(entry.path));
    });
  };

  const draggable = (element: HTMLElement, entry: Entry): void => {
    element.draggable = editable;
    element.addEventListener("dragstart", (e) => {
      e.stopPropagation();
      e.dataTransfer?.setData(DRAG_TYPE, JSON.stringify(entry));
      if (e.dataTransfer) e.dataTransfer.effectAllowed = "move";
    });
  };

  const fileItem = (path: string, depth: number): HTMLElement => {
    const here = people.get(path) ?? [];
    const isSelected = selected?.kind === "file" && selected.path === path;
    const item = h("li", {
      class: `file-item${path === current ? " current" : ""}${isSelected ? " selected" : ""}`, "data-testid": "file-item", "data-file": path,
      "aria-selected": String(path === current), role: "treeitem", tabindex: 0, title: path, style: `padding-left: ${0.5 + depth}rem`,
    }, h("span", { class: "file-name" }, baseName(path)),
    ...here.map((p) => h("span", { class: "file-presence", "data-testid": "file-presence", title: p.name, style: `background: ${p.color}` })));
    item.addEventListener("click", () => { selected = { kind: "file", path }; options.onOpen(path); });
    item.addEventListener("keydown", (e) => { if (e.key === "Enter") options.onOpen(path); });
    draggable(item, { kind: "file", path });
    return item;
  };

  const folderItem = (path: string, depth: number, children: HTMLElement[]): HTMLElement => {
    const open = !closed.has(path);
    const isSelected = selected?.kind === "folder" && selected.path === path;
    const row = h("div", {
      class: `folder-row${isSelected ? " selected" : ""}`, "data-testid": "folder-item", "data-folder": path,
      "aria-expanded": String(open), role: "treeitem", tabindex: 0, title: path, style: `padding-left: ${0.5 + depth}rem`,
    }, h("span", { class: "folder-toggle" }, open ? "▾" : "▸"), " ", baseName(path));
    const toggle = (): void => {
      if (open) closed.add(path);
      else closed.delete(path);
      selected = { kind: "folder", path };
      renderList();
    };
    row.addEventListener("click", toggle);
    row.addEventListener("keydown", (e) => { if (e.key === "Enter") toggle(); });
    draggable(row, { kind: "folder", path });
    allowDrop(row, path);
    return h("li", { class: "folder", role: "none" }, row, ...(open ? [h("ul", { role: "group" }, ...children)] : []));
  };

  const renderList = (): void => {
    peopleShown = readPresence();
    const tree = files.tree();
    // The open file is revealed: its folders open.
    if (current !== null) for (const folder of parents(current)) closed.delete(folder);
    const entries = [...tree.folders.map((path) => ({ kind: "folder" as const, path })), ...[...tree.files.values()].map((path) => ({ kind: "file" as const, path }))];
    const children = new Map<string, Entry[]>();
    for (const entry of entries) {
      const parent = folderOf(entry.path);
      if (!children.has(parent)) children.set(parent, []);
      children.get(parent)!.push(entry);
    }
    const order = (a: Entry, b: Entry): number => a.kind !== b.kind ? (a.kind === "folder" ? -1 : 1) : byTreeOrder(a.path, b.path);
    const build = (folder: string, depth: number): HTMLElement[] => (children.get(folder) ?? []).sort(order).map((entry) =>
      entry.kind === "file" ? fileItem(entry.path, depth) : folderItem(entry.path, depth, build(entry.path, depth + 1)));
    list.replaceChildren(...build("", 0));
    if (entries.length === 0) list.append(h("li", { class: "muted" }, "No files"));
    const chosen = target();
    renameButton.disabled = deleteButton.disabled = !editable || chosen === null;
    newButton.disabled = newFolderButton.disabled = !editable;
  };

  const newIn = (): string => {
    const chosen = target();
    if (chosen === null) return "";
    return chosen.kind === "folder" ? chosen.path : folderOf(chosen.path);
  };
  newButton.addEventListener("click", () => setMode({ kind: "new", entry: "file", folder: newIn() }));
  newFolderButton.addEventListener("click", () => setMode({ kind: "new", entry: "folder", folder: newIn() }));
  renameButton.addEventListener("click", () => { const chosen = target(); if (chosen) setMode({ kind: "rename", entry: chosen }); });
  deleteButton.addEventListener("click", () => {
    const chosen = target();
    if (chosen) setMode({ kind: "delete", entry: chosen, count: chosen.kind === "folder" ? filesUnder(files, chosen.path).length : 1 });
  });
  allowDrop(title, "");

  const exists = (entry: Entry): boolean => entry.kind === "file" ? files.has(entry.path) : files.tree().folders.includes(entry.path);
  files.observe(() => {
    if (selected !== null && !exists(selected)) selected = null;
    renderList();
    if ((mode.kind === "rename" || mode.kind === "delete") && !exists(mode.entry)) setMode({ kind: "idle" });
  });
  replaceChildren(container, title, h("div", { class: "file-actions" }, newButton, newFolderButton, renameButton, deleteButton), form, list);
  renderList();

  return {
    setCurrent(path) {
      current = path;
      if (selected?.kind === "file") selected = null;
      renderList();
      list.querySelector(".file-item.current")?.scrollIntoView({ block: "nearest" });
    },
    setEditable(value) {
      // Called on every awareness change (each remote caret move): draw only on a real change,
      // or a drag in progress loses the element it started on.
      if (value === editable) return;
      editable = value;
      if (!value && mode.kind !== "idle") setMode({ kind: "idle" });
      renderList();
    },
    refresh() {
      // Awareness changes with every caret move: draw again only when the dots would change.
      if (readPresence() !== peopleShown) renderList();
    },
  };
}
