/**
 * The start page (`/`): pick a display name, create a room or open one, recent rooms, and
 * "Delete my data". Creating signs in and creates the room here, so a refusal (rate limited,
 * too many rooms) is said on this page.
 */
import { Api, ApiError } from "./api";
import { confirmDialog, mountDeleteMyData } from "./deletion";
import { forgetLocalRooms, listLocalRooms, type LocalRoomMeta } from "./local-store";
import { append, h } from "./dom";
import { randomGuestName, randomRoomId, ROOM_ID_PATTERN } from "./names";
import { forgetEverything, loadName, loadRecentRooms, loadSession, saveName, takeHomeNote } from "./storage";

/** "Could not sign in: 429 rate_limited: Too many sign-ins…" for the start page. */
function describeRefusal(what: string, err: unknown): string {
  const detail = err instanceof ApiError ? err.describe() : err instanceof Error ? err.message : String(err);
  return `${what}: ${detail}`;
}

export function roomPath(roomId: string): string {
  return `/r/${encodeURIComponent(roomId)}`;
}

/** Renders the start page into `root`; `navigate` changes the page without a reload. */
export function mountHome(root: HTMLElement, navigate: (path: string) => void): void {
  const name = loadName() ?? randomGuestName();
  saveName(name);
  const nameInput = h("input", {
    id: "name", "data-testid": "name-input", value: name, maxlength: 64, autocomplete: "nickname", required: true,
  });
  const openInput = h("input", {
    id: "room-id", "data-testid": "open-room-input", placeholder: "brave-otter-42", maxlength: 64,
    pattern: ROOM_ID_PATTERN.source, autocomplete: "off",
  });
  const message = h("p", { class: "form-error", role: "alert", "data-testid": "home-error" });
  const note = takeHomeNote();
  const noteBanner = h("p", { class: "home-note", role: "status", "data-testid": "home-note", hidden: note === null }, note ?? "");
  const api = new Api(() => nameInput.value.trim() || name);
  api.onSupabaseSessionLost((message) => {
    noteBanner.textContent = message;
    noteBanner.hidden = false;
  });

  const keepName = (): boolean => {
    const value = nameInput.value.trim();
    if (!value) {
      message.textContent = "Please enter a display name.";
      nameInput.focus();
      return false;
    }
    saveName(value);
    return true;
  };
  nameInput.addEventListener("change", keepName);

  /** Signs in (when needed) and creates the room; the error names the refused step. */
  const createRoom = async (roomId: string): Promise<void> => {
    try {
      await api.currentSession();
    } catch (err) {
      throw new Error(describeRefusal("Could not sign in", err));
    }
    try {
      await api.joinRoom(roomId);
    } catch (err) {
      throw new Error(describeRefusal("Could not create the room", err));
    }
  };

  const createButton = h("button", { type: "button", class: "primary", "data-testid": "create-room" }, "Create a room");
  createButton.addEventListener("click", () => {
    if (!keepName()) return;
    const roomId = randomRoomId();
    createButton.disabled = true;
    message.textContent = "";
    createRoom(roomId).then(
      () => navigate(roomPath(roomId)),
      (err: unknown) => {
        message.textContent = err instanceof Error ? err.message : String(err);
        createButton.disabled = false;
      },
    );
  });

  // novalidate: the pattern marks the field :invalid, and this page says why in its own words.
  const openForm = h("form", { class: "open-room", novalidate: true },
    h("label", { for: "room-id" }, "Room id"), openInput,
    h("button", { type: "submit", "data-testid": "open-room" }, "Open"));
  openForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const roomId = openInput.value.trim();
    if (!ROOM_ID_PATTERN.test(roomId)) {
      message.textContent = "Room ids are 1–64 letters, digits, '-' or '_'.";
      openInput.focus();
      return;
    }
    if (keepName()) navigate(roomPath(roomId));
  });

  const recent = h("ul", { class: "recent-rooms", "data-testid": "recent-rooms" });
  /** This device's copies of rooms (local-store.ts): which hold edits not sent yet. */
  let localRooms: LocalRoomMeta[] = [];
  const renderRecent = (): void => {
    recent.replaceChildren();
    const unsent = new Set(localRooms.filter((room) => room.unsent).map((room) => room.roomId));
    const listed = loadRecentRooms();
    // A room with edits not sent yet stays listed even when it left the ten most recent.
    const extra = [...unsent].filter((id) => !listed.some((room) => room.id === id))
      .map((id) => ({ id, visitedAt: localRooms.find((room) => room.roomId === id)?.openedAt ?? 0 }));
    for (const room of [...listed, ...extra]) {
      const link = h("a", { href: roomPath(room.id), "data-room-id": room.id }, room.id);
      link.addEventListener("click", (event) => {
        event.preventDefault();
        if (keepName()) navigate(roomPath(room.id));
      });
      recent.append(h("li", {}, link, h("span", { class: "muted" }, ` · ${new Date(room.visitedAt).toLocaleString()}`),
        unsent.has(room.id) ? h("span", { class: "unsent", "data-testid": "unsent-edits" }, " · edits not sent yet") : null));
    }
    if (!recent.children.length) recent.append(h("li", { class: "muted" }, "No rooms yet."));
  };
  renderRecent();
  const readLocalRooms = async (): Promise<void> => {
    try {
      localRooms = await listLocalRooms();
    } catch (err) {
      console.warn("PairPilot: could not read this device's rooms", err);
      localRooms = [];
    }
    renderRecent();
  };
  void readLocalRooms();

  const deleteMyData = mountDeleteMyData({
    deleteOnServer: async () => (loadSession() === null ? null : api.deleteMyData()),
    forgetLocally: () => {
      api.forgetSession();
      forgetEverything();
      localRooms = [];
      void forgetLocalRooms();
      // A new guest name for whoever uses this browser next; stored only when they go on.
      nameInput.value = randomGuestName();
      renderRecent();
    },
  });

  // Sign-out: the session and every copy this device keeps (safe with other tabs open).
  const forgetResult = h("p", { class: "muted", role: "status", "data-testid": "forget-device-result", hidden: true });
  const forgetBody = h("p", {});
  const forgetDialog = confirmDialog({
    testId: "forget-device-dialog",
    title: "Sign out and forget this device?",
    body: "",
    confirmLabel: "Sign out and forget",
    onConfirm: async () => {
      api.forgetSession();
      forgetEverything();
      await forgetLocalRooms();
      localRooms = [];
      nameInput.value = randomGuestName();
      renderRecent();
      forgetResult.textContent = "Signed out. This device forgot your session, your name, your recent rooms and its copies of them.";
      forgetResult.hidden = false;
    },
  });
  forgetDialog.element.querySelector("h2")?.after(forgetBody);
  const forgetButton = h("button", { type: "button", class: "danger-outline", "data-testid": "forget-device" }, "Sign out and forget this device");
  forgetButton.addEventListener("click", () => {
    void readLocalRooms().then(() => {
      const unsent = localRooms.filter((room) => room.unsent).map((room) => room.roomId);
      forgetBody.textContent = unsent.length === 0
        ? "This browser forgets your session, your name, your recent rooms and its copies of them."
        : `Edits not sent yet in ${unsent.join(", ")} will be lost: open ${unsent.length === 1 ? "that room" : "those rooms"} online first to send them.`;
      forgetDialog.open();
    });
  });

  append(root, h("main", { class: "home" },
    h("h1", {}, "PairPilot"),
    h("p", { class: "muted" }, "Edit code together in real time, and run it in your browser."),
    noteBanner,
    h("section", { class: "card" },
      h("label", { for: "name" }, "Your display name"), nameInput,
      createButton,
      openForm,
      message),
    h("section", { class: "card" }, h("h2", {}, "Recent rooms"), recent),
    h("section", { class: "card" }, h("h2", {}, "This device"),
      h("p", { class: "muted" }, "Rooms you open are kept on this device, so edits made offline are sent when you are back."),
      h("div", {}, forgetButton), forgetResult, forgetDialog.element),
    deleteMyData));
}
