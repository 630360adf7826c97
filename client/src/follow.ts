/**
 * Follow mode and leading, through awareness only (issue #25). Each page publishes its open file,
 * selection and visible lines (follow-state.ts; throttled, and at once on a file switch). A page
 * following someone opens the file they have open and scrolls only when their visible lines
 * leave its own; selecting and clicking keep following, typing, scrolling or opening another
 * file oneself stop it (and say so), as does Esc. Following someone who follows you (directly or
 * along a chain) is refused. An owner can ask everyone to follow them: every page, including
 * pages that join meanwhile, follows once per request, until the person stops or the owner ends
 * it. A followed person who leaves ends the following after a short grace for a reconnect.
 */
import { type Extension } from "@codemirror/state";
import { EditorView, ViewPlugin } from "@codemirror/view";
import type { Awareness } from "y-protocols/awareness";
import type { Role } from "./api";
import { dismissibleBanner, h } from "./dom";
import { fileIdentity, fileNamed } from "./file-identity";
import type { RoomFiles } from "./files";
import { decodePosition, encodePosition, type PairingState, type ViewState } from "./follow-state";

/** A page publishes its view at most this often (and at once on a file switch). */
export const PUBLISH_EVERY_MS = 150;
/** A followed person whose presence vanished gets this long to come back (a reload). */
export const LEFT_GRACE_MS = 3000;

export interface FollowOptions {
  files: RoomFiles;
  selfId: () => string;
  role: () => Role | null;
  /** A person's name as the page shows it (membership first). */
  nameOf: (userId: string) => string;
  currentFile: () => string | null;
  openFile: (name: string) => void;
  view: () => EditorView | null;
}

export interface Follow {
  /** "Following Ada — Esc to stop" (`follow-banner`). */
  banner: HTMLElement;
  /** Why following stopped or was refused (`follow-note`). */
  note: HTMLElement;
  /** "Bob is following you" (`followers`). */
  followers: HTMLElement;
  /** Owners' "Ask everyone to follow me" / "Stop leading" (`lead`). */
  leadButton: HTMLElement;
  /** For the editor: publishing the view, and the break-off rules. */
  extension: Extension;
  /** Start following and publishing through this awareness. */
  attach: (awareness: Awareness) => void;
  /** Adds `follow` / `unfollow` to the participant list's items (after each render). */
  decorate: (list: HTMLElement) => void;
  /** The page opened a file (any cause); one it opened on its own breaks off following. */
  fileOpened: () => void;
  /** The page's role may have changed (only owners lead). */
  refresh: () => void;
}

interface Peer { userId: string; role: Role | null; pairing: PairingState }

function listNames(names: string[]): string {
  if (names.length <= 1) return names.join("");
  return `${names.slice(0, -1).join(", ")} and ${names.at(-1)}`;
}

export function mountFollow(options: FollowOptions): Follow {
  const { files } = options;
  let awareness: Awareness | null = null;
  let following: { userId: string; byLead: boolean } | null = null;
  let leading = false;
  let openingForLeader = false;
  let leftTimer: ReturnType<typeof setTimeout> | null = null;
  let publishTimer: ReturnType<typeof setTimeout> | null = null;
  let published = "";
  let list: HTMLElement | null = null;
  // The leads this page answered (followed, or saw and was already leading): once per request.
  const answeredLeads = new Map<string, number>();

  const bannerText = h("span", { "data-testid": "follow-banner-text" });
  const stopButton = h("button", { type: "button", class: "link", "data-testid": "follow-stop" }, "Stop");
  const banner = h("div", { class: "banner info", "data-testid": "follow-banner", role: "status", hidden: true }, bannerText, " ", stopButton);
  const note = dismissibleBanner("follow-note");
  const followers = h("div", { class: "followers muted", "data-testid": "followers", hidden: true });
  const leadButton = h("button", { type: "button", "data-testid": "lead", "data-state": "idle", hidden: true }, "Ask everyone to follow me");

  const peers = (): Peer[] => {
    const found: Peer[] = [];
    awareness?.getStates().forEach((raw, clientId) => {
      if (clientId === awareness?.clientID) return;
      // Peer states are sanitised as they arrive (presence.ts): user from membership, the
      // follow-mode fields checked (follow-state.ts).
      const state = raw as { user?: { id?: string; role?: Role | null } } & Partial<PairingState>;
      const userId = state.user?.id;
      if (!userId || userId === options.selfId()) return;
      found.push({
        userId,
        role: state.user?.role ?? null,
        pairing: { view: state.view ?? null, follow: state.follow ?? null, lead: state.lead ?? null },
      });
    });
    return found;
  };

  /** The person's state (the tab that shows a view first, when they have several). */
  const stateOf = (userId: string): Peer | undefined => {
    const theirs = peers().filter((peer) => peer.userId === userId);
    return theirs.find((peer) => peer.pairing.view !== null) ?? theirs[0];
  };

  /** Whether following `userId` would close a loop: they follow me, directly or along a chain. */
  const wouldLoop = (userId: string): boolean => {
    const seen = new Set<string>();
    let next: string | null = userId;
    while (next !== null && !seen.has(next)) {
      if (next === options.selfId()) return true;
      seen.add(next);
      next = stateOf(next)?.pairing.follow ?? null;
    }
    return false;
  };

  const setField = (field: string, value: unknown): void => {
    awareness?.setLocalStateField(field, value);
  };

  const render = (): void => {
    banner.hidden = following === null;
    if (following !== null) bannerText.textContent = `Following ${options.nameOf(following.userId)} — Esc to stop`;
    const mine = [...new Set(peers().filter((peer) => peer.pairing.follow === options.selfId()).map((peer) => peer.userId))];
    const names = mine.map((userId) => options.nameOf(userId)).sort((a, b) => a.localeCompare(b));
    followers.hidden = names.length === 0;
    followers.textContent = names.length === 0 ? "" : `${listNames(names)} ${names.length === 1 ? "is" : "are"} following you`;
    const owner = options.role() === "owner";
    if (!owner && leading) stopLeading();
    leadButton.hidden = !owner;
    leadButton.dataset.state = leading ? "leading" : "idle";
    leadButton.textContent = leading ? "Stop leading" : "Ask everyone to follow me";
    if (list !== null) decorate(list);
  };

  const stop = (why: string | null): void => {
    if (following === null) return;
    const name = options.nameOf(following.userId);
    following = null;
    if (leftTimer !== null) clearTimeout(leftTimer);
    leftTimer = null;
    setField("follow", null);
    if (why !== null) note.show(`You stopped following ${name}: ${why}.`);
    render();
  };

  const start = (userId: string, byLead: boolean): void => {
    if (userId === options.selfId()) return;
    if (wouldLoop(userId)) {
      const name = options.nameOf(userId);
      note.show(`${name} is following you, so you cannot follow ${name}: that would be a loop.`);
      return;
    }
    following = { userId, byLead };
    setField("follow", userId);
    note.element.hidden = true;
    render();
    follow();
  };

  function stopLeading(): void {
    leading = false;
    setField("lead", null);
  }

  /** Show what the followed person shows: their file, and their visible lines when they left ours. */
  const follow = (): void => {
    if (following === null) return;
    const leader = stateOf(following.userId);
    if (leader === undefined) {
      leftTimer ??= setTimeout(() => {
        leftTimer = null;
        if (following !== null && stateOf(following.userId) === undefined) stop("they left the room");
      }, LEFT_GRACE_MS);
      return;
    }
    if (leftTimer !== null) clearTimeout(leftTimer);
    leftTimer = null;
    if (following.byLead && leader.pairing.lead === null) {
      stop(`${options.nameOf(following.userId)} stopped leading`);
      return;
    }
    const theirs = leader.pairing.view;
    if (theirs === null) return;
    const name = fileNamed(files, theirs.file);
    if (name === null) return;
    if (name !== options.currentFile()) {
      openingForLeader = true;
      try {
        options.openFile(name);
      } finally {
        openingForLeader = false;
      }
    }
    scrollToTheirs(name, theirs);
  };

  const visibleLines = (view: EditorView): { top: number; bottom: number } => {
    const scroller = view.scrollDOM;
    const top = view.lineBlockAtHeight(scroller.scrollTop);
    const bottom = view.lineBlockAtHeight(scroller.scrollTop + Math.max(scroller.clientHeight - 1, 0));
    return { top: top.from, bottom: bottom.from };
  };

  const scrollToTheirs = (name: string, theirs: ViewState): void => {
    const view = options.view();
    const text = files.get(name);
    if (view === null || text === undefined || options.currentFile() !== name) return;
    const top = decodePosition(text, theirs.top);
    const bottom = decodePosition(text, theirs.bottom);
    if (top === null || bottom === null) return;
    const doc = view.state.doc;
    if (top > doc.length || bottom > doc.length) return; // the editor has not caught up yet
    const mine = visibleLines(view);
    const line = (pos: number): number => doc.lineAt(pos).number;
    if (line(top) >= line(mine.top) && line(bottom) <= line(mine.bottom)) return; // no jitter
    // Their lines from the top; when they do not fit here (a banner makes this editor shorter),
    // their cursor in the middle instead.
    const head = theirs.head === undefined ? null : decodePosition(text, theirs.head);
    const tooTall = line(bottom) - line(top) > line(mine.bottom) - line(mine.top);
    const centred = tooTall && head !== null && head >= top && head <= doc.length;
    view.dispatch({
      effects: centred
        ? EditorView.scrollIntoView(head, { y: "center" })
        : EditorView.scrollIntoView(doc.lineAt(top).from, { y: "start" }),
    });
  };

  /** This page's view in awareness, if it changed. */
  const publish = (): void => {
    publishTimer = null;
    const view = options.view();
    const name = options.currentFile();
    const text = name === null ? undefined : files.get(name);
    let value: ViewState | null = null;
    if (view !== null && name !== null && text !== undefined && view.state.doc.length === text.length) {
      const lines = visibleLines(view);
      const selection = view.state.selection.main;
      value = {
        file: fileIdentity(files, name),
        top: encodePosition(text, lines.top),
        bottom: encodePosition(text, lines.bottom),
        anchor: encodePosition(text, selection.anchor),
        head: encodePosition(text, selection.head),
      };
    }
    const encoded = JSON.stringify(value);
    if (encoded === published) return;
    published = encoded;
    setField("view", value);
  };

  const publishSoon = (): void => {
    publishTimer ??= setTimeout(publish, PUBLISH_EVERY_MS);
  };

  const onAwareness = (): void => {
    for (const peer of peers()) {
      const lead = peer.pairing.lead;
      if (lead === null || peer.role !== "owner" || answeredLeads.get(peer.userId) === lead) continue;
      answeredLeads.set(peer.userId, lead);
      if (!leading && following?.userId !== peer.userId) start(peer.userId, true);
      else if (following?.userId === peer.userId) following.byLead = true;
    }
    follow();
    render();
  };

  function decorate(target: HTMLElement): void {
    list = target;
    for (const item of target.querySelectorAll<HTMLElement>("[data-testid=participant]")) {
      item.querySelector(".follow-toggle")?.remove();
      const userId = item.dataset.userId;
      if (!userId || userId === options.selfId() || item.dataset.online !== "true") continue;
      const mine = following?.userId === userId;
      const toggle = h("button", { type: "button", class: "follow-toggle link", "data-testid": mine ? "unfollow" : "follow" }, mine ? "Unfollow" : "Follow");
      toggle.addEventListener("click", () => {
        if (mine) stop(null);
        else start(userId, false);
      });
      item.append(toggle);
    }
  }

  // Their file may arrive after their view names it (a file they just made).
  files.observe(() => {
    if (following !== null) follow();
  });
  stopButton.addEventListener("click", () => stop(null));
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && following !== null) stop("you pressed Esc");
  });
  leadButton.addEventListener("click", () => {
    if (leading) {
      stopLeading();
    } else {
      stop(null);
      leading = true;
      setField("lead", Date.now());
    }
    render();
  });

  const breakOff = (why: string) => (): void => {
    if (following !== null) stop(why);
  };
  const scrolled = breakOff("you scrolled");
  const extension: Extension = [
    EditorView.updateListener.of((update) => {
      const typed = update.transactions.some((tr) => tr.isUserEvent("input") || tr.isUserEvent("delete") || tr.isUserEvent("undo") || tr.isUserEvent("redo"));
      if (typed) breakOff("you typed")();
      if (update.docChanged || update.selectionSet || update.viewportChanged || update.geometryChanged) publishSoon();
    }),
    ViewPlugin.define((view) => {
      const onKey = (event: KeyboardEvent): void => {
        if (event.key === "PageUp" || event.key === "PageDown") scrolled();
      };
      view.scrollDOM.addEventListener("scroll", publishSoon, { passive: true });
      view.scrollDOM.addEventListener("wheel", scrolled, { passive: true });
      view.scrollDOM.addEventListener("touchmove", scrolled, { passive: true });
      view.scrollDOM.addEventListener("keydown", onKey);
      return {
        destroy() {
          view.scrollDOM.removeEventListener("scroll", publishSoon);
          view.scrollDOM.removeEventListener("wheel", scrolled);
          view.scrollDOM.removeEventListener("touchmove", scrolled);
          view.scrollDOM.removeEventListener("keydown", onKey);
        },
      };
    }),
  ];

  return {
    banner, note: note.element, followers, leadButton, extension, decorate,
    attach(target) {
      awareness = target;
      target.on("change", onAwareness);
      publish();
      render();
    },
    fileOpened() {
      if (following !== null && !openingForLeader) {
        const theirs = stateOf(following.userId)?.pairing.view;
        const name = options.currentFile();
        if (name === null || theirs?.file !== fileIdentity(files, name)) stop("you opened another file");
      }
      if (publishTimer !== null) clearTimeout(publishTimer);
      publish(); // at once on a file switch
    },
    refresh: render,
  };
}
