/**
 * "Copy invite link": the room's address (`/r/{roomId}`) to the clipboard; where the clipboard
 * API is missing or refused (plain http on another host, no permission), a selected read-only
 * field to copy it from by hand.
 */
import { h } from "./dom";

/** How long "Link copied" stays. */
const COPIED_NOTICE_MS = 2_500;

export function inviteUrl(roomId: string, origin: string = window.location.origin): string {
  return `${origin}/r/${encodeURIComponent(roomId)}`;
}

/** The button, its "Link copied" note and the fallback field, for the header. */
export function mountInvite(roomId: string): HTMLElement {
  const url = inviteUrl(roomId);
  const button = h("button", { type: "button", "data-testid": "copy-invite", title: url }, "Copy invite link");
  const copied = h("span", { class: "invite-copied", "data-testid": "invite-copied", role: "status", hidden: true }, "Link copied");
  const field = h("input", { class: "invite-link", "data-testid": "invite-link", readonly: true, value: url, "aria-label": "Invite link", hidden: true });
  let timer: ReturnType<typeof setTimeout> | null = null;

  const showCopied = (): void => {
    field.hidden = true;
    copied.hidden = false;
    if (timer !== null) clearTimeout(timer);
    timer = setTimeout(() => { copied.hidden = true; timer = null; }, COPIED_NOTICE_MS);
  };
  const showField = (): void => {
    copied.hidden = true;
    field.hidden = false;
    field.focus();
    field.select();
  };

  button.addEventListener("click", () => {
    if (!navigator.clipboard?.writeText) return showField();
    navigator.clipboard.writeText(url).then(showCopied, showField);
  });
  field.addEventListener("keydown", (e) => { if (e.key === "Escape") field.hidden = true; });
  return h("span", { class: "invite" }, button, copied, field);
}
