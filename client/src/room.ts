/**
 * The editor page (`/r/{roomId}`): wires the API, the Y.Doc and its connection, the file list,
 * the editor, presence and Run, the saved signal, history, zip/upload and the invite link
 * together, and the guardrails' refusals and room deletion. Mount order follows DESIGN.md §8: sign in, join, apply the snapshot, then connect
 * the live provider.
 */
import { fromBase64 } from "lib0/buffer";
import { Awareness } from "y-protocols/awareness";
import * as Y from "yjs";
import { Api, ApiError, type MemberInfo, type Role, type RoomInfo } from "./api";
import { CLOSE_NOT_MEMBER, CLOSE_ROOM_DELETED, CLOSE_ROOM_FULL, CLOSE_TOO_BIG, openConnection, pageWsBase, type Connection, type ConnectionState } from "./connection";
import { mountDeleteRoom } from "./deletion";
import { dismissibleBanner, h } from "./dom";
import { createEditor, extensionOf } from "./editor";
import { mountComments } from "./comments-panel";
import { mountFileList } from "./file-list";
import { mountFollow } from "./follow";
import { ensureStarterFile, firstFile, roomFiles } from "./files";
import { mountHistoryPanel } from "./history-panel";
import { mountKeptCopy } from "./kept-copy";
import { isDeviceOrigin, openLocalCopy, unsentClocks, whenReachable } from "./local-copy";
import { forgetLocalRooms } from "./local-store";
import { goToMovedRoom, mountMoveRoom, movedTo, validRoomId } from "./moving";
import { forgetInviteInLocation, inviteFromLocation, mountInvite } from "./invite";
import { initMonitoring, reportError, setMonitoringUser } from "./monitoring";
import { randomGuestName } from "./names";
import { mountOutputPanel } from "./output-panel";
import {
  bindPeerPresence, participants, renderParticipants, setLocalFile, setLocalUser, signalRolesChanged, watchRoleSignals,
} from "./presence";
import { describeRestoreNote, watchRestoreNotes } from "./restore-note";
import { bindFileShortcuts } from "./quick-open";
import { createRunner } from "./run";
import { goToLine } from "./search";
import { asSentence, dropDeletedContent, mountRefusalBanners } from "./refusal";
import { readRun } from "./run-state";
import { renderSaveStatus, saveStatus, trackLocalEdits, warnBeforeUnload } from "./save-status";
import {
  forgetRoom, loadName, loadSession, rememberRoom, saveHomeNote, saveName, saveResyncNote, takeResyncNote,
} from "./storage";
import { mountTabs } from "./tabs";
import { describeUpload, mountTransfer } from "./transfer";

/** How long a moved room's page waits for this device's copy to move before it follows anyway. */
const MOVE_COPY_WAIT_MS = 3000;

/** Origin of the snapshot applied before connecting. */
export const SNAPSHOT_ORIGIN = "snapshot";
/** How often the member list (and so our own role) is re-read. */
const MEMBERS_REFRESH_MS = 30_000;
/** A page reloaded to drop refused edits does not reload again for that reason within this. */
const RESYNC_GUARD_MS = 30_000;
const DENIED_MESSAGE = "The server did not accept your edit: you are a viewer in this room.";

const CONNECTION_LABELS: Record<ConnectionState, string> = {
  connecting: "Connecting…",
  connected: "Connected",
  reconnecting: "Reconnecting…",
  offline: "Offline",
};

/** A failed step of the mount sequence ("Could not sign in"), wrapping the cause. */
class StepError extends Error {
  constructor(readonly what: string, override readonly cause: unknown) {
    super(what);
    this.name = "StepError";
  }
}

function describe(err: unknown): string {
  if (err instanceof StepError) return `${err.what}: ${describe(err.cause)}`;
  return err instanceof ApiError ? err.describe() : err instanceof Error ? err.message : String(err);
}

/** Mounts the room page; `signInNote` says why a Supabase sign-in could not be used, if it could not. */
export function mountRoom(root: HTMLElement, roomId: string, signInNote: string | null = null): void {
  const name = loadName() ?? randomGuestName();
  saveName(name);
  rememberRoom(roomId);
  const api = new Api(() => name);
  const doc = new Y.Doc();
  const files = roomFiles(doc);

  // ---- layout ----
  const status = h("span", { class: "connection-status", "data-testid": "connection-status", "data-state": "connecting", role: "status" }, "Signing in…");
  const saveStatusLabel = h("span", { class: "save-status", "data-testid": "save-status", "data-state": "saving", role: "status" }, "Saving…");
  const restoreNote = dismissibleBanner("restore-note", "restore-note");
  const uploadResult = dismissibleBanner("upload-result");
  const errorBanner = h("div", { class: "banner error", "data-testid": "error-message", role: "alert", hidden: true });
  const readOnlyNotice = h("div", { class: "banner info", "data-testid": "read-only-notice", hidden: true }, "Read-only: you are a viewer");
  const editorHost = h("div", { class: "editor", "data-testid": "editor" });
  const currentFileLabel = h("div", { class: "pane-title", "data-testid": "current-file" }, "");
  const tabs = mountTabs(files, (path) => openFile(path));
  const filesPane = h("aside", { class: "files" });
  const peoplePane = h("div", { class: "people-list" });
  const runButton = h("button", { type: "button", class: "primary", "data-testid": "run", disabled: true }, "▶ Run");
  const stopButton = h("button", { type: "button", "data-testid": "stop", disabled: true }, "■ Stop");
  const runStatus = h("span", { class: "run-status", "data-testid": "run-status", "data-status": "idle" }, "idle");
  const pyodideLoading = h("span", { class: "loading", "data-testid": "pyodide-loading", hidden: true, role: "status" });
  const rateLimitMessage = h("span", { class: "rate-limit", "data-testid": "rate-limit-message", role: "alert", hidden: true });
  const runError = h("span", { class: "run-error", "data-testid": "run-error", role: "alert", hidden: true });
  const runMeta = h("div", { class: "run-meta" });
  const output = h("pre", { class: "output", "data-testid": "output", "aria-live": "polite" });

  const reportFailure = (what: string, err: unknown): void => {
    const moved = movedTo(err);
    if (moved !== null) roomMoved(moved);
    else if (err instanceof ApiError && err.status === 410) roomDeleted(err.message);
    else showError(`${what}: ${describe(err)}`);
  };
  const refusals = mountRefusalBanners({
    roomId, files,
    onRetry: (code) => {
      if (code === CLOSE_ROOM_FULL || code === CLOSE_TOO_BIG) {
        // What the person deleted must really be gone, or the resync sends it all again.
        editor.current?.forgetUndoHistory();
        dropDeletedContent(doc);
      }
      connection?.resume();
    },
  });
  const keptCopy = mountKeptCopy(roomId);
  void keptCopy.load();
  const deleteRoom = mountDeleteRoom({
    api, roomId,
    onDeleted: () => {
      forgetRoom(roomId);
      saveHomeNote(`Room “${roomId}” was deleted.`);
      stopUnloadWarning(); // nothing of the room is kept, so nothing is left to save
      void local.discard(null).finally(() => window.location.assign("/"));
    },
  });
  const inviteToken = inviteFromLocation(); // `/r/{id}?invite=…`: join with the invite's role
  const invite = mountInvite({
    api, roomId,
    onLinkAccessChanged: (room) => { defaultRole = room.default_role; renderPeople(); },
    onError: (message) => showError(message),
  });
  /** The room moved to a new id (the owner's move, close 4301, or a 410 `room_moved`): go there. */
  let moving = false;
  const roomMoved = (newRoomId: string): void => {
    // The mover hears it twice (the API's answer, then its socket's 4301): one navigation.
    if (moving) return;
    moving = true;
    stopUnloadWarning(); // the server carried the room's content over to the new id
    // This device's copy goes along: the same document under the same generation. The page
    // goes to the new link even when the browser's store does not answer: a copy left under the
    // old id follows later (that id's join answers 410 `room_moved`, which moves it then).
    const copied = local.moveTo(newRoomId).catch((err: unknown) => console.warn("PairPilot: could not move the local copy", err));
    const late = new Promise<void>((resolve) => setTimeout(resolve, MOVE_COPY_WAIT_MS));
    void Promise.race([copied, late]).finally(() => goToMovedRoom(roomId, newRoomId));
  };
  invite.note.append(" ", mountMoveRoom({ api, roomId, onMoved: roomMoved }));
  const comments = mountComments({
    api, roomId, files, selfId: () => self.id, role: () => role, view: () => editor.current?.view ?? null, onError: reportFailure,
  });
  const follow = mountFollow({
    files, selfId: () => self.id, role: () => role, currentFile: () => currentFile, openFile: (file) => openFile(file),
    view: () => editor.current?.view ?? null,
    nameOf: (userId) => (awarenessRef.current ? participants(awarenessRef.current, members, self.id) : []).find((p) => p.userId === userId)?.name ?? "someone",
  });
  const history = mountHistoryPanel({ api, roomId, files, currentFile: () => currentFile, onError: reportFailure });
  const transfer = mountTransfer({
    api, roomId, onError: reportFailure,
    onUploaded: (added) => {
      showError(null);
      uploadResult.show(describeUpload(added));
      openWhenPresent = added[0]?.name ?? null;
      if (openWhenPresent !== null && files.has(openWhenPresent)) {
        openFile(openWhenPresent);
        openWhenPresent = null;
      }
    },
  });

  const signOutButton = h("button", { type: "button", "data-testid": "sign-out", hidden: !api.usesSupabase(), title: "Sign out of Supabase in this browser" }, "Sign out");
  signOutButton.addEventListener("click", () => {
    signOutButton.disabled = true;
    // Signing out forgets this device's copies of rooms too (issue #26), safely with other tabs open.
    void api.signOut().then(async (problem) => {
      await forgetLocalRooms();
      saveHomeNote(problem ?? "Signed out of Supabase.");
      window.location.assign("/");
    });
  });
  // A refused Supabase refresh makes this page a guest: nothing left to sign out of.
  api.onSessionChange(() => { signOutButton.hidden = !api.usesSupabase(); });

  root.append(
    h("header", { class: "topbar" },
      h("a", { href: "/", class: "brand" }, "PairPilot"),
      h("span", { class: "room-id", "data-testid": "room-id" }, roomId),
      status,
      saveStatusLabel,
      comments.count,
      h("span", { class: "spacer" }),
      invite.element,
      ...transfer.elements,
      history.toggle,
      ...deleteRoom.elements,
      h("span", { class: "me", "data-testid": "my-name" }, name),
      signOutButton),
    h("div", { class: "notices" }, refusals.element, keptCopy.element, errorBanner, readOnlyNotice, restoreNote.element, uploadResult.element, invite.note, follow.banner, follow.note),
    h("div", { class: "workspace" },
      filesPane,
      h("section", { class: "editor-pane" }, tabs.element, h("div", {}, currentFileLabel, comments.composer), editorHost),
      h("aside", { class: "people" }, h("h2", {}, "Participants"), follow.leadButton, follow.followers, peoplePane, comments.element),
      history.element),
    h("section", { class: "output-pane" },
      h("div", { class: "run-bar" }, runButton, stopButton, runStatus, pyodideLoading, rateLimitMessage, runError),
      runMeta,
      output),
  );

  /** Shows (or with null clears) the error banner; `source` lets the connection clear only its own. */
  let bannerSource: "connection" | "other" = "other";
  const showError = (message: string | null, source: "connection" | "other" = "other"): void => {
    bannerSource = source;
    errorBanner.hidden = message === null;
    errorBanner.textContent = message ?? "";
  };

  const resync = takeResyncNote();
  const resyncedAt = resync?.roomId === roomId ? resync.at : 0;
  if (resync?.roomId === roomId) showError(resync.message);
  if (signInNote !== null) showError(signInNote);
  api.onSupabaseSessionLost((message) => showError(message));

  // ---- state ----
  let self = { id: "", name };
  let role: Role | null = null;
  let defaultRole: Role | null = null;
  let members: MemberInfo[] = [];
  let connection: Connection | null = null;
  let currentFile: string | null = null;
  /** The open file's id and text: a rename keeps the id, so the editor follows it. */
  let currentId: string | null = null;
  let currentText: unknown = null;
  let runBusy = false;
  let synced = false;
  let connectionState: ConnectionState = "connecting";
  /** A file an upload added: opened once it arrives through the doc. */
  let openWhenPresent: string | null = null;

  const awarenessRef: { current: Connection["provider"]["awareness"] | null } = { current: null };
  const editor = { current: null as ReturnType<typeof createEditor> | null };

  const canEdit = (): boolean => !refusals.deleted() && (role === "owner" || role === "editor");

  // ---- saved signal: our own edits the server has stored ----
  const saves = trackLocalEdits(doc, (origin) => origin === SNAPSHOT_ORIGIN || isDeviceOrigin(origin) || (connection !== null && origin === connection.provider));
  const renderSave = (): void => {
    renderSaveStatus(saveStatusLabel, saveStatus(saves.unsaved(), connectionState, saves.acknowledged(), canEdit(), local.kept()));
    saveStatusLabel.dataset.local = local.status();
    keptCopy.storeStatus(local.status());
  };
  // ---- this device's copy (local-copy.ts): restored before the network, written after changes ----
  const local = openLocalCopy({
    roomId, doc, files,
    unsent: () => saves.unsaved() > 0,
    onChange: renderSave,
    onForgotten: () => showError("This device forgot its copies of rooms (signed out in another tab): this page keeps nothing on it any more."),
  });
  /** The room refused this device's copy: keep the unsent text for download, say why. */
  const discardLocal = (reason: string): void => {
    local.discard(reason).then((copy) => { if (copy !== null) keptCopy.show(copy); }, (err: unknown) => reportError(err, { where: "discardLocal", roomId }));
  };
  saves.onChange(renderSave);
  // Nothing to warn about once this device keeps the edits: the next visit sends them.
  const stopUnloadWarning = warnBeforeUnload(() => (local.kept() ? 0 : saves.unsaved()));

  const refreshControls = (): void => {
    const readOnly = !canEdit();
    readOnlyNotice.hidden = role !== "viewer";
    editor.current?.setReadOnly(readOnly);
    fileList?.setEditable(!readOnly);
    const shared = readRun(doc);
    runButton.disabled = readOnly || runBusy || currentFile === null;
    runButton.title = role === "viewer" ? "Viewers cannot run code" : "";
    stopButton.disabled = readOnly || !(runBusy || shared?.status === "running");
    history.setEditable(!readOnly);
    transfer.setEditable(!readOnly);
    comments.setEditable(!readOnly);
    follow.refresh();
    deleteRoom.setOwner(role === "owner" && !refusals.deleted());
    invite.update(refusals.deleted() ? null : role);
    renderSave();
  };

  const isOnline = (userId: string): boolean => {
    const awareness = awarenessRef.current;
    if (!awareness) return false;
    return [...awareness.getStates().values()].some((s) => (s as { user?: { id?: string } }).user?.id === userId);
  };

  const renderPeople = (): void => {
    const awareness = awarenessRef.current;
    if (!awareness) return;
    renderParticipants(peoplePane, participants(awareness, members, self.id), {
      canManage: role === "owner",
      defaultRole,
      onRoleChange: (userId, newRole) => {
        api.setMemberRole(roomId, userId, newRole).then(
          () => {
            signalRolesChanged(awareness);
            void refreshMembers();
          },
          (err: unknown) => {
            showError(`Could not change the role: ${describe(err)}`);
            void refreshMembers();
          },
        );
      },
      onDefaultRoleChange: (newRole) => {
        api.setDefaultRole(roomId, newRole).then(
          (room: RoomInfo) => { defaultRole = newRole; invite.update(role, room.link_access); renderPeople(); },
          (err: unknown) => { showError(`Could not change the default role: ${describe(err)}`); renderPeople(); },
        );
      },
    });
    follow.decorate(peoplePane);
  };

  const applyRole = (newRole: Role | null): void => {
    if (newRole === role) return;
    role = newRole;
    if (awarenessRef.current) setLocalUser(awarenessRef.current, { id: self.id, name: self.name, role });
    refreshControls();
  };

  /** The room was deleted (close 4410 or an API 410): read-only, no reconnect, not remembered. */
  const roomDeleted = (reason: string): void => {
    if (refusals.deleted()) return;
    refusals.show(CLOSE_ROOM_DELETED, reason);
    forgetRoom(roomId);
    discardLocal(asSentence(reason) || "This room was deleted.");
    stopUnloadWarning(); // the room is gone: there is nowhere left to save to
    if (bannerSource === "connection") showError(null);
    refreshControls();
  };

  let membersInFlight = false;
  let resanitisePeers = (): void => {};
  const refreshMembers = async (): Promise<void> => {
    if (membersInFlight || !self.id || refusals.deleted()) return;
    membersInFlight = true;
    try {
      members = await api.listMembers(roomId);
      resanitisePeers();
      const mine = members.find((m) => m.user_id === self.id);
      if (mine) applyRole(mine.role);
      renderPeople();
    } catch (err) {
      reportFailure("Could not load the participants", err);
    } finally {
      membersInFlight = false;
    }
  };

  // ---- files + editor ----
  const openFile = (fileName: string | null): void => {
    currentFile = fileName !== null && files.has(fileName) ? fileName : null;
    currentId = currentFile === null ? null : files.idOf(currentFile)!;
    currentFileLabel.textContent = currentFile ?? "No file open";
    const text = currentFile === null ? undefined : files.get(currentFile);
    currentText = text ?? null;
    if (text && editor.current) editor.current.open(currentFile!, text);
    else editor.current?.close();
    fileList?.setCurrent(currentFile);
    tabs.setCurrent(currentFile);
    comments.setFile(currentFile);
    follow.fileOpened();
    if (awarenessRef.current) setLocalFile(awarenessRef.current, currentFile);
    refreshControls();
  };

  /** The open file moved: the same text stays in the editor (cursor, undo), under its new path. */
  const followRename = (path: string): void => {
    currentFile = path;
    currentFileLabel.textContent = path;
    fileList.setCurrent(path);
    tabs.setCurrent(path);
    comments.setFile(path); // the same threads: they name the file by its id
    follow.fileOpened(); // the same identity: followers stay
    if (awarenessRef.current) setLocalFile(awarenessRef.current, path);
  };

  const fileList = mountFileList(filesPane, files, {
    onOpen: openFile,
    onRenamed: (from, to) => { if (currentFile === from) openFile(to); },
    onError: (message) => showError(message),
    presence: () => awarenessRef.current
      ? participants(awarenessRef.current, members, self.id).filter((p) => p.online && !p.isSelf && p.file !== null)
      : [],
  });

  files.observe(() => {
    if (currentId !== null) {
      // Files keep their id through renames and moves: follow the open one to its new path. Its
      // key may also hold another Y.Text now (two pages created the starter file at once and
      // the other one won): bind the editor to the text everyone shares.
      const path = files.pathOf(currentId);
      if (path === undefined) openFile(null);
      else if (files.textOf(currentId) !== currentText || extensionOf(path) !== extensionOf(currentFile ?? "")) openFile(path);
      else if (path !== currentFile) followRename(path);
    }
    if (currentFile === null && files.size > 0) openFile(firstFile(files)!);
    if (openWhenPresent !== null && files.has(openWhenPresent)) {
      openFile(openWhenPresent);
      openWhenPresent = null;
    }
  });

  bindFileShortcuts(files, openFile, (path, line) => {
    openFile(path);
    if (editor.current && currentFile === path) goToLine(editor.current.view, line);
  });

  // ---- restore note ----
  watchRestoreNotes(doc, () => synced, (note) => {
    restoreNote.show(describeRestoreNote(note, self.id));
    history.refresh();
  });

  // ---- run ----
  const runner = createRunner({
    doc, roomId, api,
    self: () => self,
    isOnline,
    onLocal: (event) => {
      switch (event.kind) {
        case "loading":
          pyodideLoading.hidden = event.message === null;
          pyodideLoading.textContent = event.message ?? "";
          break;
        case "rate-limited":
          rateLimitMessage.hidden = false;
          rateLimitMessage.textContent = `Run limit reached — try again in ${event.retryAfterS} s`;
          break;
        case "error":
          runError.hidden = false;
          runError.textContent = event.message;
          break;
        case "clear":
          rateLimitMessage.hidden = true;
          runError.hidden = true;
          break;
        case "busy":
          runBusy = event.busy;
          refreshControls();
          break;
      }
    },
  });
  runButton.addEventListener("click", () => {
    if (currentFile === null) return;
    const text = files.get(currentFile);
    void runner.run(currentFile, text?.toString() ?? "");
  });
  stopButton.addEventListener("click", () => runner.stop());
  doc.getMap("run").observe(refreshControls);
  mountOutputPanel(doc, runner.localRuns, runStatus, runMeta, output);

  // ---- mount sequence ----
  const setStatus = (state: ConnectionState, detail: string): void => {
    status.dataset.state = state;
    status.textContent = CONNECTION_LABELS[state];
    status.title = detail;
    connectionState = state;
    renderSave();
  };

  /** Runs one step of the mount sequence, naming the step in the error it may throw. */
  const step = async <T>(what: string, action: () => Promise<T>): Promise<T> => {
    try {
      return await action();
    } catch (err) {
      const notFound = err instanceof ApiError && err.status === 404 && what === "join the room";
      throw new StepError(notFound ? "Room not found or not accessible" : `Could not ${what}`, err);
    }
  };

  const loadSnapshot = async (): Promise<void> => {
    const snapshot = await api.getSnapshot(roomId);
    if (snapshot.snapshot_b64) Y.applyUpdate(doc, fromBase64(snapshot.snapshot_b64), SNAPSHOT_ORIGIN);
  };

  /** Before the network: this device's copy, shown and editable (as the role last known). */
  const localAwareness = new Awareness(doc);
  const restoreLocal = async (): Promise<boolean> => {
    const restored = await local.restore();
    if (restored === null) return false;
    if (restored.unsent) saves.restored(unsentClocks(restored), true);
    role = restored.role;
    self = { id: loadSession()?.user.id ?? "", name };
    editor.current ??= createEditor(editorHost, localAwareness, [comments.extension, follow.extension]);
    // The file list may have picked a file while the copy was applied, before an editor existed.
    if (files.size > 0) openFile(currentFile ?? firstFile(files)!);
    refreshControls();
    return true;
  };

  const start = async (): Promise<void> => {
    const restored = await restoreLocal();
    // With a copy on this device the page works offline until the server answers.
    const reachable = <T>(action: () => Promise<T>): Promise<T> =>
      restored ? whenReachable(action, () => setStatus("offline", "the server cannot be reached")) : action();
    const session = await step("sign in", () => reachable(() => api.currentSession()));
    self = { id: session.user.id, name };
    void initMonitoring().then(() => setMonitoringUser(self));
    const joined = await step("join the room", () => reachable(() => api.joinRoom(roomId, inviteToken)));
    if (!local.adopt(joined.room, joined.member.role)) {
      // The id now names another room (created anew since this copy was made): nothing of the
      // copy may reach it. Its text is kept for download; the page loads again without it.
      await local.discard("This room was deleted and a new room now has its name, so your edits were not sent to it.");
      stopUnloadWarning();
      window.location.reload();
      return;
    }
    forgetInviteInLocation();
    // The join signs in again when the server refuses a stored token: we are the user who joined.
    self = { id: joined.member.user_id, name };
    defaultRole = joined.room.default_role;
    role = joined.member.role;
    invite.update(role, joined.room.link_access);
    try {
      await step("load the room's snapshot", loadSnapshot);
    } catch (err) {
      // The live sync below still brings the whole document; say so and go on.
      showError(`${describe(err)} — continuing with the live connection.`);
    }

    // A refresh keeps the user. Only a new sign-in (the refresh token was refused) is another
    // anonymous user, who must join before a socket of theirs is let in.
    let rejoining: Promise<void> | null = null;
    const rejoin = (): Promise<void> => {
      rejoining ??= api.joinRoom(roomId, inviteToken).then((rejoined) => {
        const changed = rejoined.member.user_id !== self.id;
        self = { id: rejoined.member.user_id, name };
        defaultRole = rejoined.room.default_role;
        role = rejoined.member.role;
        invite.update(role, rejoined.room.link_access);
        if (awarenessRef.current) setLocalUser(awarenessRef.current, { id: self.id, name, role });
        refreshControls();
        if (changed) {
          setMonitoringUser(self);
          void refreshMembers();
        }
      }).finally(() => {
        rejoining = null;
      });
      return rejoining;
    };
    api.onSessionChange((renewed) => {
      if (renewed.user.id === self.id) return;
      rejoin().catch((err: unknown) => showError(`Could not re-join the room: ${describe(err)}`));
    });

    connection = openConnection({
      roomId, doc, awareness: localAwareness,
      wsBase: pageWsBase(),
      token: async () => {
        const session = await api.currentSession();
        if (session.user.id !== self.id) await rejoin();
        return session.token;
      },
      renewToken: async (refused) => {
        const renewed = await api.renewSession(refused);
        await rejoin(); // idempotent for the same user; a new one becomes a member here
        return renewed.token;
      },
      nextToken: async (expiring) => (await api.renewSession(expiring)).token,
      onState: (state, detail) => {
        setStatus(state, detail);
        if (state === "connected") {
          refusals.clear();
          if (bannerSource === "connection") showError(null);
        }
      },
      onPermissionDenied: () => {
        // A viewer's reply to the server's sync step 1 is refused too, though it holds no edit:
        // with every local edit acknowledged as stored, nothing of ours was dropped.
        if (saves.unsaved() === 0) return;
        // The server dropped an edit this page already shows (the role changed before we knew):
        // the server's document is the truth, so load it again rather than show text nobody
        // else has. A viewer has no other edits to lose. Once per guard interval, never a loop.
        if (Date.now() - resyncedAt > RESYNC_GUARD_MS) {
          saveResyncNote({ roomId, message: DENIED_MESSAGE, at: Date.now() });
          stopUnloadWarning(); // dropping the refused edits is the point of this reload
          // This device's copy holds them too: kept for download only, never restored.
          void local.discard(DENIED_MESSAGE).finally(() => window.location.reload());
          return;
        }
        void refreshMembers();
        showError(DENIED_MESSAGE);
      },
      onSaved: (stateVector) => {
        saves.saved(stateVector);
        local.saved(stateVector);
      },
      onFatal: (code, message) => {
        showError(message, "connection");
        if (code === CLOSE_NOT_MEMBER) discardLocal(message);
      },
      onMoved: (reason) => {
        const moved = validRoomId(reason);
        if (moved !== null) roomMoved(moved);
        else roomDeleted("This room moved to a new link.");
      },
      onRefused: (code, reason) => {
        if (code === CLOSE_ROOM_DELETED) roomDeleted(reason);
        else refusals.show(code, reason);
      },
    });
    const awareness = connection.provider.awareness;
    // Before anything reads it: peers' states reach the page sanitised, named by membership.
    resanitisePeers = bindPeerPresence(awareness, (id) => members.find((m) => m.user_id === id));
    awarenessRef.current = awareness;
    setLocalUser(awareness, { id: self.id, name, role });
    editor.current ??= createEditor(editorHost, awareness, [comments.extension, follow.extension]);
    follow.attach(awareness);
    comments.connect(connection.provider);

    let knownClients = "";
    awareness.on("change", () => {
      const ids = [...awareness.getStates().values()].map((s) => (s as { user?: { id?: string } }).user?.id ?? "").sort().join(",");
      if (ids !== knownClients) {
        const newcomer = ids.split(",").some((id) => id && !members.some((m) => m.user_id === id));
        knownClients = ids;
        if (newcomer) void refreshMembers();
      }
      renderPeople();
      fileList.refresh();
      refreshControls();
    });
    watchRoleSignals(awareness, () => void refreshMembers());

    connection.provider.on("sync", (isSynced: boolean) => {
      if (!isSynced || synced) return;
      synced = true;
      if (canEdit()) ensureStarterFile(files);
      if (currentFile === null && files.size > 0) openFile(firstFile(files)!);
    });
    if (files.size > 0) openFile(firstFile(files)!);
    refreshControls();
    void refreshMembers();
    setInterval(() => void refreshMembers(), MEMBERS_REFRESH_MS);
  };

  start().catch((err: unknown) => {
    setStatus("offline", describe(err));
    const refused = err instanceof StepError ? err.cause : err;
    const moved = movedTo(refused);
    if (moved !== null) {
      roomMoved(moved);
      return;
    }
    if (refused instanceof ApiError && refused.status === 410) {
      roomDeleted(refused.message);
      return;
    }
    if (refused instanceof ApiError && refused.status === 404) discardLocal("You no longer have access to this room, or it does not exist.");
    showError(err instanceof StepError ? describe(err) : `Could not open the room: ${describe(err)}`);
    const cause = err instanceof StepError ? err.cause : err;
    if (!(cause instanceof ApiError)) reportError(cause, { where: "mountRoom", roomId });
  });
}
