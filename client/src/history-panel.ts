/**
 * The history panel (issue #13): the room's versions newest first, a preview of one version's
 * file with a diff against the file's current text, "Restore this version", and "Name this
 * version" (keeps the room's current state under a name). Only the server writes versions.
 */
import type { Api, VersionDetail, VersionInfo } from "./api";
import { h, replaceChildren } from "./dom";
import { listFiles, type RoomFiles } from "./files";
import { renderVersionDiff, type VersionDiff } from "./version-diff";
import { formatSize, formatWhen, versionTitle } from "./version-format";

export interface HistoryPanelOptions {
  api: Api;
  roomId: string;
  files: RoomFiles;
  /** The file open in the editor: the preview shows it first when the version has it. */
  currentFile: () => string | null;
  onError: (what: string, err: unknown) => void;
}

export interface HistoryPanel {
  /** The header button that opens and closes the panel. */
  toggle: HTMLButtonElement;
  element: HTMLElement;
  /** Re-reads the list (when open). */
  refresh: () => void;
  /** Editors and owners may restore and name versions. */
  setEditable: (editable: boolean) => void;
}

/** The current text is re-compared this long after the last change to the files. */
const DIFF_DEBOUNCE_MS = 250;

interface Selection { version: VersionInfo; detail: VersionDetail | null; file: string | null }

export function mountHistoryPanel(options: HistoryPanelOptions): HistoryPanel {
  const { api, roomId, files } = options;
  let open = false;
  let editable = false;
  let versions: VersionInfo[] = [];
  let nextBefore: number | null = null;
  let selection: Selection | null = null;
  let diff: VersionDiff | null = null;
  let restoring = false;
  // Answers that arrive after a newer request are dropped.
  let listRequest = 0;
  let detailRequest = 0;

  const toggle = h("button", { type: "button", "data-testid": "history-toggle", "aria-expanded": "false", "aria-controls": "history-panel" }, "History");
  const closeButton = h("button", { type: "button", class: "link", "data-testid": "history-close", "aria-label": "Close the history" }, "×");
  const nameButton = h("button", { type: "button", "data-testid": "name-version" }, "Name this version");
  const nameInput = h("input", { "data-testid": "version-name-input", "aria-label": "Version name", maxlength: 80, placeholder: "e.g. Before refactor", required: true });
  const nameSave = h("button", { type: "submit", class: "primary", "data-testid": "version-name-save" }, "Save");
  const nameCancel = h("button", { type: "button", "data-testid": "version-name-cancel" }, "Cancel");
  const nameForm = h("form", { class: "version-name-form", hidden: true }, nameInput, nameSave, nameCancel);
  const list = h("ul", { class: "version-list", "data-testid": "version-list", role: "listbox", "aria-label": "Versions", "aria-busy": "false" });
  const moreButton = h("button", { type: "button", "data-testid": "versions-more", hidden: true }, "Load more");
  const previewTitle = h("div", { class: "preview-title" });
  const filePicker = h("div", { class: "preview-files" });
  const summary = h("p", { class: "preview-summary", "data-testid": "version-summary" });
  const diffHost = h("div", { class: "version-diff", "data-testid": "version-diff" });
  const restoreButton = h("button", { type: "button", class: "primary", "data-testid": "restore-version" }, "Restore this version");
  const restoreStatus = h("span", { class: "muted", "data-testid": "restore-status", role: "status" });
  const preview = h("div", { class: "version-preview", "data-testid": "version-preview", hidden: true },
    previewTitle, filePicker, summary,
    h("p", { class: "preview-legend muted" }, h("span", { class: "legend-now" }, "red: the file now"), " · ", h("span", { class: "legend-version" }, "green: this version")),
    diffHost, h("div", { class: "preview-actions" }, restoreButton, restoreStatus));
  const element = h("section", { class: "history-panel", id: "history-panel", "data-testid": "history-panel", "aria-label": "History", hidden: true },
    h("div", { class: "history-head" }, h("h2", {}, "History"), closeButton),
    h("div", { class: "history-actions" }, nameButton, nameForm),
    h("div", { class: "version-scroll" }, list, moreButton),
    preview);

  const renderControls = (): void => {
    nameButton.disabled = !editable;
    nameButton.title = editable ? "Keep the room's current state under a name" : "Viewers cannot name versions";
    restoreButton.disabled = !editable || restoring || !selection?.detail;
    restoreButton.title = editable ? "" : "Viewers cannot restore versions";
    if (!editable) nameForm.hidden = true;
  };

  const renderList = (): void => {
    list.replaceChildren(...versions.map((version) => {
      const selected = version.id === selection?.version.id;
      // Automatic checkpoints have no author.
      const meta = [formatWhen(version.created_at), version.author_name, formatSize(version.size_bytes)].filter(Boolean).join(" · ");
      const item = h("li", {
        class: `version-item${selected ? " selected" : ""}`, "data-testid": "version-item", "data-version-id": version.id,
        "data-kind": version.kind, role: "option", "aria-selected": String(selected), tabindex: 0,
      }, h("span", { class: "version-title" }, versionTitle(version.kind, version.name)), h("span", { class: "version-meta" }, meta));
      item.addEventListener("click", () => select(version));
      item.addEventListener("keydown", (e) => { if (e.key === "Enter") select(version); });
      return item;
    }));
    if (versions.length === 0) list.append(h("li", { class: "muted" }, "No versions yet: they are kept as the room is edited."));
    moreButton.hidden = nextBefore === null;
  };

  const loadPage = async (before: number | null): Promise<void> => {
    const request = ++listRequest;
    list.setAttribute("aria-busy", "true");
    try {
      const page = await api.listVersions(roomId, { before });
      if (request !== listRequest) return;
      list.setAttribute("aria-busy", "false");
      versions = before === null ? page.versions : [...versions, ...page.versions];
      nextBefore = page.next_before;
      if (selection && before === null) {
        const kept = versions.find((v) => v.id === selection!.version.id);
        if (kept) selection.version = kept;
        else clearSelection();
      }
      renderList();
    } catch (err) {
      if (request !== listRequest) return;
      list.setAttribute("aria-busy", "false");
      options.onError("Could not load the history", err);
    }
  };

  const refresh = (): void => {
    if (open) void loadPage(null);
  };

  const clearSelection = (): void => {
    selection = null;
    detailRequest += 1;
    diff?.destroy();
    diff = null;
    preview.hidden = true;
    renderControls();
  };

  const select = (version: VersionInfo): void => {
    selection = { version, detail: null, file: null };
    restoreStatus.textContent = "";
    renderList();
    renderPreview();
    const request = ++detailRequest;
    api.getVersion(roomId, version.id).then(
      (detail) => {
        if (request !== detailRequest || !selection) return;
        const names = Object.keys(detail.files);
        const current = options.currentFile();
        selection.detail = detail;
        selection.file = current !== null && names.includes(current) ? current : names.sort()[0] ?? null;
        renderPreview();
      },
      (err: unknown) => { if (request === detailRequest) options.onError("Could not load the version", err); },
    );
  };

  function renderPreview(): void {
    renderControls();
    if (!selection) return;
    preview.hidden = false;
    const { version, detail, file } = selection;
    replaceChildren(previewTitle, h("strong", {}, versionTitle(version.kind, version.name)),
      h("span", { class: "muted" }, ` · version ${version.id} · ${formatWhen(version.created_at)}`));
    diff?.destroy();
    diff = null;
    diffHost.replaceChildren();
    delete diffHost.dataset.file;
    delete diffHost.dataset.changes;
    if (!detail) {
      replaceChildren(filePicker);
      summary.textContent = "Loading…";
      return;
    }
    const names = Object.keys(detail.files).sort((a, b) => a.localeCompare(b));
    if (names.length > 1) {
      const picker = h("select", { "data-testid": "version-file-select", "aria-label": "File" },
        ...names.map((name) => h("option", { value: name, selected: name === file }, name)));
      picker.addEventListener("change", () => { selection!.file = picker.value; renderPreview(); });
      replaceChildren(filePicker, h("label", {}, "File ", picker));
    } else {
      replaceChildren(filePicker, h("span", { class: "mono" }, names[0] ?? "This version has no files."));
    }
    const now = listFiles(files);
    const back = names.filter((name) => !files.has(name));
    const gone = now.filter((name) => !Object.hasOwn(detail.files, name));
    const changes = [back.length ? `brings back ${back.join(", ")}` : "", gone.length ? `removes ${gone.join(", ")}` : ""].filter(Boolean);
    summary.textContent = changes.length ? `Restoring ${changes.join(" and ")}.` : "Same files as now.";
    if (file !== null) {
      diff = renderVersionDiff(diffHost, file, detail.files[file] ?? "", files.get(file)?.toString() ?? "");
      diffHost.dataset.file = file;
      diffHost.dataset.changes = String(diff.changes);
    }
  }

  // The preview compares with the live text: follow everyone's edits (and a restore).
  let diffTimer: ReturnType<typeof setTimeout> | null = null;
  files.observeDeep(() => {
    if (!open || !selection?.detail || diffTimer !== null) return;
    diffTimer = setTimeout(() => { diffTimer = null; renderPreview(); }, DIFF_DEBOUNCE_MS);
  });

  const setOpen = (value: boolean): void => {
    open = value;
    element.hidden = !open;
    toggle.setAttribute("aria-expanded", String(open));
    toggle.classList.toggle("active", open);
    if (open) refresh();
    else clearSelection();
  };

  const restore = async (): Promise<void> => {
    const target = selection?.version;
    if (!target || restoring) return;
    restoring = true;
    restoreStatus.textContent = "Restoring…";
    renderControls();
    try {
      const result = await api.restoreVersion(roomId, target.id);
      restoreStatus.textContent = `Restored. The state before is kept as “${versionTitle(result.backup.kind, result.backup.name)}”.`;
      refresh();
    } catch (err) {
      restoreStatus.textContent = "";
      options.onError("Could not restore the version", err);
    } finally {
      restoring = false;
      renderControls();
    }
  };

  const saveName = async (): Promise<void> => {
    const name = nameInput.value.trim();
    if (name.length < 1 || name.length > 80) return;
    nameSave.disabled = true;
    try {
      await api.nameVersion(roomId, name);
      nameInput.value = "";
      nameForm.hidden = true;
      refresh();
    } catch (err) {
      options.onError("Could not name the version", err);
    } finally {
      nameSave.disabled = false;
    }
  };

  toggle.addEventListener("click", () => setOpen(!open));
  closeButton.addEventListener("click", () => setOpen(false));
  moreButton.addEventListener("click", () => void loadPage(nextBefore));
  restoreButton.addEventListener("click", () => void restore());
  nameButton.addEventListener("click", () => { nameForm.hidden = !nameForm.hidden; if (!nameForm.hidden) nameInput.focus(); });
  nameCancel.addEventListener("click", () => { nameForm.hidden = true; });
  nameInput.addEventListener("keydown", (e) => { if (e.key === "Escape") nameForm.hidden = true; });
  nameForm.addEventListener("submit", (e) => { e.preventDefault(); void saveName(); });
  renderControls();

  return {
    toggle,
    element,
    refresh,
    setEditable(value) {
      editable = value;
      renderControls();
    },
  };
}
