/**
 * Deleting for good (DESIGN.md §5, Guardrails): an owner's "Delete room" (the owner types the
 * room id to confirm) and anyone's "Delete my data" (`DELETE /api/me`, then this browser forgets
 * the session, the name and the recent rooms). Both ask in a dialog of the page first.
 */
import { ApiError, type Api, type DeletedData } from "./api";
import { h } from "./dom";

/** A modal confirmation: `<testId>` (the dialog), `-input` (when typing is asked), `-confirm`, `-cancel`, `-error`. */
export interface ConfirmOptions {
  testId: string;
  title: string;
  body: string;
  confirmLabel: string;
  /** When set, the confirm button stays disabled until exactly this text is typed. */
  typeToConfirm?: string;
  /** The deletion; a rejection is shown in the dialog, which stays open. */
  onConfirm: () => Promise<void>;
}

export interface ConfirmDialog {
  element: HTMLDialogElement;
  open: () => void;
}

function describe(err: unknown): string {
  return err instanceof ApiError ? err.describe() : err instanceof Error ? err.message : String(err);
}

export function confirmDialog(options: ConfirmOptions): ConfirmDialog {
  const { testId } = options;
  const input = options.typeToConfirm === undefined ? null : h("input", {
    "data-testid": `${testId}-input`, autocomplete: "off", spellcheck: "false", "aria-label": `Type ${options.typeToConfirm} to confirm`,
  });
  const confirm = h("button", { type: "button", class: "danger", "data-testid": `${testId}-confirm` }, options.confirmLabel);
  const cancel = h("button", { type: "button", "data-testid": `${testId}-cancel` }, "Cancel");
  const error = h("p", { class: "form-error", role: "alert", "data-testid": `${testId}-error` });
  const element = h("dialog", { class: "confirm-dialog", "data-testid": testId, "aria-labelledby": `${testId}-title` },
    h("h2", { id: `${testId}-title` }, options.title),
    h("p", {}, options.body),
    input === null ? null : h("label", {}, h("span", {}, "Type ", h("code", {}, options.typeToConfirm ?? ""), " to confirm:"), input),
    error,
    h("div", { class: "dialog-actions" }, cancel, confirm));

  const typed = (): boolean => input === null || input.value.trim() === options.typeToConfirm;
  const refresh = (): void => { confirm.disabled = !typed(); };
  input?.addEventListener("input", refresh);
  cancel.addEventListener("click", () => element.close());
  confirm.addEventListener("click", () => {
    if (!typed()) return;
    confirm.disabled = true;
    cancel.disabled = true;
    error.textContent = "";
    options.onConfirm().then(
      () => element.close(),
      (err: unknown) => { error.textContent = describe(err); },
    ).finally(() => {
      cancel.disabled = false;
      refresh();
    });
  });

  return {
    element,
    open() {
      if (input !== null) input.value = "";
      error.textContent = "";
      refresh();
      if (!element.isConnected) document.body.append(element);
      element.showModal();
      (input ?? cancel).focus();
    },
  };
}

export interface DeleteRoomOptions {
  api: Api;
  roomId: string;
  /** After the server deleted the room (the page leaves it). */
  onDeleted: () => void;
}

/** The owners' "Delete room" button (hidden until `setOwner(true)`) and its dialog. */
export function mountDeleteRoom(options: DeleteRoomOptions): { elements: HTMLElement[]; setOwner: (owner: boolean) => void } {
  const { api, roomId } = options;
  const dialog = confirmDialog({
    testId: "delete-room-dialog",
    title: `Delete room “${roomId}”?`,
    body: "Everyone loses access at once, and the room's files and history are deleted for good. The id is never used again.",
    confirmLabel: "Delete this room",
    typeToConfirm: roomId,
    onConfirm: async () => {
      await api.deleteRoom(roomId);
      options.onDeleted();
    },
  });
  const button = h("button", { type: "button", class: "danger-outline", "data-testid": "delete-room", hidden: true, title: "Delete this room for everyone" }, "Delete room");
  button.addEventListener("click", () => dialog.open());
  return {
    elements: [button, dialog.element],
    setOwner(owner) {
      button.hidden = !owner;
    },
  };
}

function roomList(ids: string[]): string {
  return ids.length === 0 ? "" : ` (${ids.join(", ")})`;
}

/** "Deleted 1 room you alone owned (a). Left 2 rooms (b, c). …": what `DELETE /api/me` did. */
export function describeDeletedData(data: DeletedData | null): string {
  const forgot = "This browser forgot your session, your name and your recent rooms.";
  if (data === null) return `Nothing of yours was on the server. ${forgot}`;
  const rooms = (n: number): string => `${n} room${n === 1 ? "" : "s"}`;
  const deleted = data.deleted_rooms.length === 0
    ? "No room was only yours."
    : `Deleted ${rooms(data.deleted_rooms.length)} you alone owned${roomList(data.deleted_rooms)}.`;
  const left = data.left_rooms.length === 0 ? "" : ` Left ${rooms(data.left_rooms.length)}${roomList(data.left_rooms)}.`;
  return `Your data was deleted. ${deleted}${left} ${forgot}`;
}

export interface DeleteMyDataOptions {
  /** Deletes on the server (null when this browser had no session, so nothing to delete there). */
  deleteOnServer: () => Promise<DeletedData | null>;
  /** Forgets the session, the name and the recent rooms in this browser. */
  forgetLocally: () => void;
}

/** The start page's "Delete my data" section: button, dialog, and what was deleted. */
export function mountDeleteMyData(options: DeleteMyDataOptions): HTMLElement {
  const result = h("p", { class: "muted", role: "status", "data-testid": "delete-my-data-result", hidden: true });
  const dialog = confirmDialog({
    testId: "delete-my-data-dialog",
    title: "Delete my data?",
    body: "This deletes your memberships and sign-in on the server, and every room you alone own, with its files and history. Rooms you share with other owners stay theirs.",
    confirmLabel: "Delete my data",
    onConfirm: async () => {
      const deleted = await options.deleteOnServer();
      options.forgetLocally();
      result.textContent = describeDeletedData(deleted);
      result.hidden = false;
    },
  });
  const button = h("button", { type: "button", class: "danger-outline", "data-testid": "delete-my-data" }, "Delete my data");
  button.addEventListener("click", () => dialog.open());
  return h("section", { class: "card" },
    h("h2", {}, "Your data"),
    h("p", { class: "muted" }, "Your session, your memberships and the rooms only you own can be deleted at any time."),
    h("div", {}, button),
    result,
    dialog.element);
}
