/** The start page (`/`): pick a display name, create a room or open one, recent rooms. */
import { append, h } from "./dom";
import { randomGuestName, randomRoomId, ROOM_ID_PATTERN } from "./names";
import { loadName, loadRecentRooms, saveName } from "./storage";

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

  const createButton = h("button", { type: "button", class: "primary", "data-testid": "create-room" }, "Create a room");
  createButton.addEventListener("click", () => {
    if (keepName()) navigate(roomPath(randomRoomId()));
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
  for (const room of loadRecentRooms()) {
    const link = h("a", { href: roomPath(room.id), "data-room-id": room.id }, room.id);
    link.addEventListener("click", (event) => {
      event.preventDefault();
      if (keepName()) navigate(roomPath(room.id));
    });
    recent.append(h("li", {}, link, h("span", { class: "muted" }, ` · ${new Date(room.visitedAt).toLocaleString()}`)));
  }
  if (!recent.children.length) recent.append(h("li", { class: "muted" }, "No rooms yet."));

  append(root, h("main", { class: "home" },
    h("h1", {}, "PairPilot"),
    h("p", { class: "muted" }, "Edit code together in real time, and run it in your browser."),
    h("section", { class: "card" },
      h("label", { for: "name" }, "Your display name"), nameInput,
      createButton,
      openForm,
      message),
    h("section", { class: "card" }, h("h2", {}, "Recent rooms"), recent)));
}
