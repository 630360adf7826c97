/**
 * The room page's banner for text this device kept when the room refused its copy (deleted,
 * no access any more, replaced by another room of the same id): what happened, a download of
 * the files as this device had them, and "Forget them".
 */
import { h } from "./dom";
import type { LocalCopy } from "./local-copy";
import { dropKeptCopy, readKeptCopy, WRITE_REFUSALS, type KeptCopy } from "./local-store";
import { saveBlob } from "./transfer";

export interface KeptCopyBanner {
  element: HTMLElement;
  /** Shows the copy (just kept, or found when the page opened). */
  show: (copy: KeptCopy) => void;
  /** Shows the copy kept for this room earlier, if any. */
  load: () => Promise<void>;
  /** Says so when this device does not keep the room (too large, store full, unavailable). */
  storeStatus: (status: ReturnType<LocalCopy["status"]>) => void;
}

export function mountKeptCopy(roomId: string): KeptCopyBanner {
  const reason = h("span", { "data-testid": "kept-copy-reason" });
  const download = h("button", { type: "button", "data-testid": "download-kept-copy" }, "Download my edits");
  const forget = h("button", { type: "button", "data-testid": "forget-kept-copy" }, "Forget them");
  const note = h("div", { class: "banner info", "data-testid": "local-store-note", role: "status", hidden: true });
  const banner = h("div", { class: "banner error refusal", "data-testid": "kept-copy", role: "alert", hidden: true },
    h("p", {}, reason, " This device kept your edits that were not sent: they were not sent to the room. Download them to keep them."),
    h("div", { class: "refusal-actions" }, download, forget));
  const element = h("div", { class: "kept-copy" }, banner, note);
  let shown: KeptCopy | null = null;

  download.addEventListener("click", () => {
    if (shown === null) return;
    saveBlob(new Blob([shown.text], { type: "text/plain;charset=utf-8" }), `${roomId}-my-copy.txt`);
  });
  forget.addEventListener("click", () => {
    banner.hidden = true;
    shown = null;
    dropKeptCopy(roomId).catch((err: unknown) => console.warn("PairPilot: could not forget the kept copy", err));
  });

  const show = (copy: KeptCopy): void => {
    shown = copy;
    reason.textContent = copy.reason;
    banner.hidden = false;
  };
  return {
    element,
    show,
    storeStatus(status) {
      const said = status === "too-large" || status === "full" || status === "unavailable" ? WRITE_REFUSALS[status] : null;
      note.hidden = said === null;
      note.textContent = said ?? "";
    },
    load: async () => {
      try {
        const copy = await readKeptCopy(roomId);
        if (copy !== null) show(copy);
      } catch (err) {
        console.warn("PairPilot: could not read the kept copy", err);
      }
    },
  };
}
