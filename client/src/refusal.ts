/**
 * What the page shows when the server refuses to go on (DESIGN.md §5, Guardrails): the room's
 * document quota (close 4413, or 1009 for one message over the size limit: "room-full", the
 * edits that passed it were not stored), connection
 * limits (4503: "room-crowded") and a deleted room (4410, or 410 from the API: "room-deleted").
 * The server's reason is shown as text; the connection stays stopped until "Try again".
 */
import * as Y from "yjs";
import { CLOSE_CROWDED, CLOSE_ROOM_DELETED, CLOSE_ROOM_FULL, CLOSE_TOO_BIG, type RefusalCode } from "./connection";
import { h } from "./dom";
import { listFiles, type RoomFiles } from "./files";
import { saveBlob } from "./transfer";

export interface RefusalOptions {
  roomId: string;
  files: RoomFiles;
  /** "Try again": connect once more (the person deleted content, or waited for a free place). */
  onRetry: (code: RefusalCode) => void;
}

export interface RefusalBanners {
  /** The three banners, hidden until one is shown. */
  element: HTMLElement;
  /** Shows the banner of `code` with the server's reason (empty: a default sentence). */
  show: (code: RefusalCode, reason: string) => void;
  /** Hides the room-full and room-crowded banners (the connection is back). */
  clear: () => void;
  /** True once the room was deleted: nothing brings it back. */
  deleted: () => boolean;
}

const UNSAVED_SENTENCE =
  "Your latest edits were not saved: they are only in this page. Download your copy, or delete some content and try again.";

/**
 * Every file of the local document in one text file: each one under a `===== name =====` line,
 * in the file list's order. What this page has, saved or not.
 */
export function localCopy(files: RoomFiles, roomId: string, now = new Date()): string {
  const names = listFiles(files);
  const head = `PairPilot room ${roomId}: ${names.length} file${names.length === 1 ? "" : "s"} as this page had them on ${now.toISOString()}\n`;
  return head + names.map((name) => {
    const text = files.get(name)?.toString() ?? "";
    return `\n===== ${name} =====\n${text}${text.endsWith("\n") || text === "" ? "" : "\n"}`;
  }).join("");
}

/**
 * Garbage-collects the content of every deleted item of `doc` (Yjs keeps only their lengths),
 * as Yjs does after each transaction for items nobody keeps. Called after the undo history is
 * emptied: the undo manager kept that content, and the resync on reconnect would send it all
 * again, over the room's quota once more.
 */
export function dropDeletedContent(doc: Y.Doc): void {
  if (!doc.gc) return;
  Y.tryGc(Y.createDeleteSetFromStructStore(doc.store), doc.store, doc.gcFilter);
}

/** The server's reason as a sentence: a final period when it has no punctuation of its own. */
export function asSentence(reason: string): string {
  const said = reason.trim();
  return said === "" || /[.!?…]$/.test(said) ? said : `${said}.`;
}

export function mountRefusalBanners(options: RefusalOptions): RefusalBanners {
  const { roomId, files } = options;
  let isDeleted = false;

  const retryButton = (testId: string, code: RefusalCode): HTMLButtonElement => {
    const button = h("button", { type: "button", "data-testid": testId }, "Try again");
    button.addEventListener("click", () => {
      button.disabled = true;
      button.textContent = "Trying…";
      options.onRetry(code);
    });
    return button;
  };

  const fullReason = h("span", { "data-testid": "room-full-reason" });
  const download = h("button", { type: "button", "data-testid": "download-copy" }, "Download my copy");
  const fullRetry = retryButton("retry-connection", CLOSE_ROOM_FULL);
  const full = h("div", { class: "banner error refusal", "data-testid": "room-full", role: "alert", hidden: true },
    h("p", {}, fullReason, " ", UNSAVED_SENTENCE),
    h("div", { class: "refusal-actions" }, download, fullRetry));
  download.addEventListener("click", () => {
    saveBlob(new Blob([localCopy(files, roomId)], { type: "text/plain;charset=utf-8" }), `${roomId}-my-copy.txt`);
  });

  const crowdedReason = h("span", { "data-testid": "room-crowded-reason" });
  const crowdedRetry = retryButton("retry-crowded", CLOSE_CROWDED);
  const crowded = h("div", { class: "banner error refusal", "data-testid": "room-crowded", role: "alert", hidden: true },
    h("p", {}, crowdedReason, " Close another tab of this room, or wait a moment, then try again."),
    h("div", { class: "refusal-actions" }, crowdedRetry));

  const deletedReason = h("span", { "data-testid": "room-deleted-reason" });
  const deleted = h("div", { class: "banner error refusal", "data-testid": "room-deleted", role: "alert", hidden: true },
    h("p", {}, deletedReason, " Its files and history are gone; what this page still shows is read-only."),
    h("div", { class: "refusal-actions" }, h("a", { href: "/", "data-testid": "room-deleted-home" }, "Go to the start page")));

  const ready = (button: HTMLButtonElement): void => {
    button.disabled = false;
    button.textContent = "Try again";
  };

  return {
    element: h("div", { class: "refusals" }, full, crowded, deleted),
    show(code, reason) {
      if (isDeleted) return;
      const said = asSentence(reason);
      if (code === CLOSE_ROOM_FULL || code === CLOSE_TOO_BIG) {
        fullReason.textContent = code === CLOSE_TOO_BIG
          ? "Your latest edit is larger than the server accepts in one message."
          : said || "This room is full.";
        ready(fullRetry);
        full.hidden = false;
        crowded.hidden = true;
      } else if (code === CLOSE_CROWDED) {
        crowdedReason.textContent = said || "Room is full: as many people as allowed are connected.";
        ready(crowdedRetry);
        crowded.hidden = false;
        full.hidden = true;
      } else if (code === CLOSE_ROOM_DELETED) {
        isDeleted = true;
        deletedReason.textContent = said || "This room was deleted.";
        deleted.hidden = false;
        full.hidden = true;
        crowded.hidden = true;
      }
    },
    clear() {
      full.hidden = true;
      crowded.hidden = true;
    },
    deleted: () => isDeleted,
  };
}
