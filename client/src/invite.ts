/**
 * "Copy invite link": a menu offering the plain room link (`/r/{roomId}`, saying what the
 * room's link access lets its holder do) and, for owners, a new invite link (editor or viewer:
 * `/r/{roomId}?invite=<token>`, made by the server, signed and expiring), the link access
 * select and the room's live invites, each with who made it, its role, when it expires and a
 * Revoke button (`invite-item`, `revoke-invite`). The link goes to the clipboard; where the clipboard API is missing or refused (plain
 * http on another host, no permission), a selected read-only field to copy it from by hand.
 * Owners of a room whose id could be guessed also get a note saying so (`guessable-note`).
 */
import { ApiError, type Api, type InviteInfo, type LinkAccess, type Role, type RoomInfo } from "./api";
import { h } from "./dom";
import { isGuessableRoomId } from "./names";

/** How long "Link copied" stays. */
const COPIED_NOTICE_MS = 2_500;

const ACCESS_TEXT: Record<LinkAccess, string> = {
  edit: "Anyone with the room link can edit",
  view: "Anyone with the room link can view",
  none: "Invite only: the room link opens it for its members only",
};

export function inviteUrl(roomId: string, origin: string = window.location.origin, token: string | null = null): string {
  const path = `${origin}/r/${encodeURIComponent(roomId)}`;
  return token === null ? path : `${path}?invite=${encodeURIComponent(token)}`;
}

/** The invite token a page was opened with (`/r/{id}?invite=…`), or null. */
export function inviteFromLocation(): string | null {
  return new URLSearchParams(window.location.search).get("invite") || null;
}

/** Drops the token from the address bar once it was used: members need it no more. */
export function forgetInviteInLocation(): void {
  if (!new URLSearchParams(window.location.search).has("invite")) return;
  window.history.replaceState(window.history.state, "", window.location.pathname);
}

export interface InviteOptions {
  roomId: string;
  api: Api;
  /** The owner changed link access; the room as the server now has it. */
  onLinkAccessChanged: (room: RoomInfo) => void;
  onError: (message: string) => void;
}

export interface InviteControls {
  /** The header's button and its menu. */
  element: HTMLElement;
  /** The owners' note that the room's id could be guessed, for the notices row. */
  note: HTMLElement;
  /** The caller's role and the room's link access, as last known. */
  update(role: Role | null, linkAccess?: LinkAccess): void;
}

/** The button, its menu, its "Link copied" note and the fallback field, for the header. */
export function mountInvite(options: InviteOptions): InviteControls {
  const { roomId, api } = options;
  const roomUrl = inviteUrl(roomId);
  const button = h("button", { type: "button", "data-testid": "copy-invite", "aria-expanded": "false", title: roomUrl }, "Copy invite link");
  const copied = h("span", { class: "invite-copied", "data-testid": "invite-copied", role: "status", hidden: true }, "Link copied");
  const field = h("input", { class: "invite-link", "data-testid": "invite-link", readonly: true, value: roomUrl, "aria-label": "Invite link", hidden: true });
  const accessText = h("span", { class: "muted", "data-testid": "room-link-access" });
  const copyRoom = h("button", { type: "button", "data-testid": "copy-room-link" }, "Copy room link");
  const accessSelect = h("select", { "data-testid": "link-access", "aria-label": "Link access" },
    h("option", { value: "edit" }, "Anyone with the link can edit"),
    h("option", { value: "view" }, "Anyone with the link can view"),
    h("option", { value: "none" }, "Invite only"));
  const copyEditor = h("button", { type: "button", "data-testid": "copy-invite-editor" }, "Copy invite link: editor");
  const copyViewer = h("button", { type: "button", "data-testid": "copy-invite-viewer" }, "Copy invite link: viewer");
  const describe = (err: unknown): string => (err instanceof ApiError ? err.describe() : String(err));
  const inviteList = mountInviteList(roomId, api, (message) => options.onError(message));
  const ownerPart = h("div", { class: "invite-owner", hidden: true },
    h("label", {}, "Link access ", accessSelect),
    h("div", { class: "invite-new" }, copyEditor, copyViewer),
    h("p", { class: "muted" }, "An invite link lets one or more people join with its role, even when the room is invite only; it expires in 7 days."),
    inviteList.element);
  const menu = h("div", { class: "invite-menu", "data-testid": "invite-menu", hidden: true },
    h("div", { class: "invite-room" }, copyRoom, accessText),
    ownerPart);
  const note = h("div", { class: "banner info", "data-testid": "guessable-note", role: "note", hidden: true },
    "This room's id is short enough to be guessed, and anyone who guesses it can join. " +
    "Set its link access to “Invite only” (Copy invite link) and share invite links instead.");

  let role: Role | null = null;
  let access: LinkAccess = "edit";
  let timer: ReturnType<typeof setTimeout> | null = null;
  const render = (): void => {
    const owner = role === "owner";
    accessText.textContent = ACCESS_TEXT[access];
    accessSelect.value = access;
    ownerPart.hidden = !owner;
    note.hidden = !(owner && isGuessableRoomId(roomId) && access !== "none");
  };

  const showCopied = (): void => {
    field.hidden = true;
    copied.hidden = false;
    if (timer !== null) clearTimeout(timer);
    timer = setTimeout(() => { copied.hidden = true; timer = null; }, COPIED_NOTICE_MS);
  };
  const showField = (url: string): void => {
    copied.hidden = true;
    field.value = url;
    field.hidden = false;
    field.focus();
    field.select();
  };
  const copy = (url: string): void => {
    if (!navigator.clipboard?.writeText) return showField(url);
    navigator.clipboard.writeText(url).then(showCopied, () => showField(url));
  };
  const setOpen = (open: boolean): void => {
    menu.hidden = !open;
    button.setAttribute("aria-expanded", String(open));
    if (open && role === "owner") inviteList.refresh();
  };

  button.addEventListener("click", () => setOpen(menu.hidden !== false));
  copyRoom.addEventListener("click", () => { copy(roomUrl); setOpen(false); });
  for (const [control, invited] of [[copyEditor, "editor"], [copyViewer, "viewer"]] as const) {
    control.addEventListener("click", () => {
      control.disabled = true;
      api.createInvite(roomId, invited).then(
        (made) => { copy(inviteUrl(roomId, window.location.origin, made.token)); setOpen(false); },
        (err: unknown) => options.onError(`Could not make an invite link: ${describe(err)}`),
      ).finally(() => { control.disabled = false; });
    });
  }
  accessSelect.addEventListener("change", () => {
    const chosen = accessSelect.value as LinkAccess;
    accessSelect.disabled = true;
    api.setLinkAccess(roomId, chosen).then(
      (room) => { access = room.link_access; render(); options.onLinkAccessChanged(room); },
      (err: unknown) => {
        options.onError(`Could not change link access: ${describe(err)}`);
        render();
      },
    ).finally(() => { accessSelect.disabled = false; });
  });
  field.addEventListener("keydown", (e) => { if (e.key === "Escape") field.hidden = true; });
  render();

  return {
    element: h("span", { class: "invite" }, button, copied, field, menu),
    note,
    update(newRole, linkAccess) {
      role = newRole;
      if (linkAccess !== undefined) access = linkAccess;
      render();
    },
  };
}

/** When an invite expires, as a person reads it ("expires 13 Dec, 10:42"). */
function expiry(invite: InviteInfo): string {
  const at = new Date(invite.expires_at);
  return `expires ${at.toLocaleString(undefined, { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" })}`;
}

/** The owners' list of live invites, refreshed each time the menu opens and after a revoke. */
function mountInviteList(roomId: string, api: Api, onError: (message: string) => void): { element: HTMLElement; refresh(): void } {
  const items = h("ul", { class: "invite-items", "data-testid": "invite-list" });
  const empty = h("p", { class: "muted", "data-testid": "invite-list-empty" }, "No invite links are live.");
  const element = h("div", { class: "invite-list" }, h("strong", {}, "Live invite links"), items, empty);
  const describe = (err: unknown): string => (err instanceof ApiError ? err.describe() : String(err));

  const render = (invites: InviteInfo[]): void => {
    empty.hidden = invites.length > 0;
    items.replaceChildren(...invites.map((invite) => {
      const revoke = h("button", { type: "button", "data-testid": "revoke-invite" }, "Revoke");
      revoke.addEventListener("click", () => {
        revoke.disabled = true;
        api.revokeInvite(roomId, invite.id).then(
          () => refresh(),
          (err: unknown) => { revoke.disabled = false; onError(`Could not revoke the invite link: ${describe(err)}`); },
        );
      });
      return h("li", { "data-testid": "invite-item", "data-role": invite.role },
        h("span", {}, `${invite.role === "viewer" ? "Viewer" : "Editor"} link, ${expiry(invite)}`), revoke);
    }));
  };
  const refresh = (): void => {
    api.listInvites(roomId).then(
      (invites) => render(invites.filter((invite) => !invite.revoked)),
      (err: unknown) => onError(`Could not list the invite links: ${describe(err)}`),
    );
  };
  return { element, refresh };
}
