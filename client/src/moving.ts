/**
 * Moving a room to a new link (issue #22): owners of a room whose id could be guessed get a
 * "Move to a new link" button in the `guessable-note`. The server re-keys the room (content,
 * members with their roles, history; invite links are dropped) to a new random id and retires
 * the old one. Every open page of the room then goes to `/r/{new id}`: the owner's after the
 * answer, the others' when their socket closes with 4301 (the reason is the new id), and a
 * page opened on the old id later when the join answers 410 `room_moved` with `new_room_id`.
 */
import { ApiError, type Api } from "./api";
import { confirmDialog } from "./deletion";
import { h } from "./dom";
import { ROOM_ID_PATTERN } from "./names";
import { forgetRoom } from "./storage";

export interface MoveRoomOptions {
  api: Api;
  roomId: string;
  /** After the server moved the room: go to its new id. */
  onMoved: (newRoomId: string) => void;
}

/** The owners' button, for the guessable note (its dialog is added to the page when opened). */
export function mountMoveRoom(options: MoveRoomOptions): HTMLElement {
  const { api, roomId } = options;
  const dialog = confirmDialog({
    testId: "move-room-dialog",
    title: "Move this room to a new link?",
    body: "The room keeps its files, members and history under a new id that cannot be guessed. " +
      "The old link stops working and invite links made for it are dropped; everyone who has the room open is taken to the new link.",
    confirmLabel: "Move to a new link",
    onConfirm: async () => {
      const moved = await api.moveRoom(roomId);
      options.onMoved(moved.new_room_id);
    },
  });
  const button = h("button", { type: "button", "data-testid": "move-room" }, "Move to a new link");
  button.addEventListener("click", () => dialog.open());
  return button;
}

/** The id a refused call says the room moved to (410 `room_moved`), if it is a room id. */
export function movedTo(err: unknown): string | null {
  if (!(err instanceof ApiError) || err.status !== 410 || err.code !== "room_moved") return null;
  const body = err.body as { new_room_id?: unknown } | null;
  return validRoomId(body?.new_room_id);
}

/** A close reason (4301) or an answer field that is a room id; null for anything else. */
export function validRoomId(value: unknown): string | null {
  return typeof value === "string" && ROOM_ID_PATTERN.test(value) ? value : null;
}

/** Leaves the old id for the new one: the old id is forgotten in the recent rooms. */
export function goToMovedRoom(oldRoomId: string, newRoomId: string): void {
  forgetRoom(oldRoomId);
  window.location.assign(`/r/${encodeURIComponent(newRoomId)}`);
}
