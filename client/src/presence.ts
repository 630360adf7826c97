/**
 * Presence through Yjs awareness: who is here (name, colour, role, open file; the cursor field is
 * written by y-codemirror.next), a "roles changed" signal, and the participant list.
 */
import type { Awareness } from "y-protocols/awareness";
import { ROLES, type MemberInfo, type Role } from "./api";
import { h, replaceChildren } from "./dom";
import { sanitisePairing } from "./follow-state";
import { colourFor } from "./names";

/** Our awareness fields. `cursor` is owned by y-codemirror.next. */
export interface PresenceUser { id: string; name: string; color: string; colorLight: string; role: Role | null }
interface PresenceState { user?: Partial<PresenceUser>; file?: string | null; rolesVersion?: number }

export interface Participant {
  userId: string;
  name: string;
  role: Role | null;
  color: string;
  online: boolean;
  file: string | null;
  isSelf: boolean;
}

export function setLocalUser(awareness: Awareness, user: { id: string; name: string; role: Role | null }): void {
  awareness.setLocalStateField("user", { ...user, ...colourFor(user.id) } satisfies PresenceUser);
}

export function setLocalFile(awareness: Awareness, file: string | null): void {
  awareness.setLocalStateField("file", file);
}

/** Tells the others to re-read roles (an owner changed one); the server stays the authority. */
export function signalRolesChanged(awareness: Awareness): void {
  awareness.setLocalStateField("rolesVersion", Date.now());
}

/** Calls `onChange` when another client signals a role change. Returns an unsubscribe. */
export function watchRoleSignals(awareness: Awareness, onChange: () => void): () => void {
  let lastSeen = Date.now();
  const handler = (): void => {
    let newest = lastSeen;
    awareness.getStates().forEach((state, clientId) => {
      const version = (state as PresenceState).rolesVersion;
      if (clientId !== awareness.clientID && typeof version === "number" && version > newest) newest = version;
    });
    if (newest > lastSeen) {
      lastSeen = newest;
      onChange();
    }
  };
  awareness.on("change", handler);
  return () => awareness.off("change", handler);
}

// A colour from a peer reaches a `style` attribute (the participant dot, y-codemirror.next's
// cursor and selection): only these exact shapes pass, anything else (`red;background:url(…)`)
// is replaced by the colour derived from the user id. Ours are `hsl(H 70% 42%)` (see names.ts);
// stock Yjs clients send `#rrggbb` (and y-codemirror.next appends `33` for the light variant).
const HEX_COLOUR = /^#[0-9a-fA-F]{6}([0-9a-fA-F]{2})?$/;
const HSL_COLOUR = /^hsl\(\d{1,3} \d{1,3}% \d{1,3}%( \/ (0|1|0?\.\d{1,3}))?\)$/;

/** `value` if it is a colour of a strict shape (hex or our hsl), else `fallback`. */
export function safeColour(value: unknown, fallback: string): string {
  return typeof value === "string" && (HEX_COLOUR.test(value) || HSL_COLOUR.test(value)) ? value : fallback;
}

function text(value: unknown): string | undefined {
  return typeof value === "string" ? value.slice(0, 200) : undefined;
}

/**
 * A peer's awareness state as this page may show it: colours validated, the name the room's
 * membership gives (the peer's own claim only for someone not yet in the members list), text
 * fields as strings. The peer's claimed role is dropped: roles come from membership only.
 */
export function sanitisePeerState(raw: unknown, memberOf: (userId: string) => MemberInfo | undefined): PresenceState {
  const state = (typeof raw === "object" && raw !== null ? raw : {}) as Record<string, unknown>;
  const user = (typeof state.user === "object" && state.user !== null ? state.user : {}) as Record<string, unknown>;
  const id = text(user.id);
  const clean: Record<string, unknown> = { ...state };
  if (id === undefined) {
    delete clean.user;
  } else {
    const derived = colourFor(id);
    const color = safeColour(user.color, derived.color);
    const member = memberOf(id);
    clean.user = {
      id,
      name: member?.name || text(user.name) || "",
      color,
      colorLight: safeColour(user.colorLight, color === derived.color ? derived.colorLight : color),
      role: member?.role ?? null,
    } satisfies PresenceUser;
  }
  clean.file = text(state.file) ?? null;
  Object.assign(clean, sanitisePairing(state));
  return clean as PresenceState;
}

/**
 * Every remote state is sanitised as it enters the awareness (y-protocols stores each one with
 * `states.set`), so no reader (the participant list, y-codemirror.next's cursors) sees a raw
 * one. Returns a function that sanitises the current states again (after the members list
 * changed: names and roles follow membership).
 */
export function bindPeerPresence(awareness: Awareness, memberOf: (userId: string) => MemberInfo | undefined): () => void {
  const states = awareness.states;
  const set = states.set.bind(states);
  states.set = (clientId: number, state: Record<string, unknown>) =>
    set(clientId, clientId === awareness.clientID ? state : sanitisePeerState(state, memberOf) as Record<string, unknown>);
  return () => {
    const updated: number[] = [];
    states.forEach((state, clientId) => {
      if (clientId === awareness.clientID) return;
      const clean = sanitisePeerState(state, memberOf) as Record<string, unknown>;
      if (JSON.stringify(clean) === JSON.stringify(state)) return;
      states.set(clientId, clean);
      updated.push(clientId);
    });
    if (updated.length === 0) return;
    // Announced as gone and back: y-codemirror.next keeps a caret whose colour is unchanged,
    // so only a new one shows the member's name.
    const again = updated.map((clientId) => [clientId, states.get(clientId)] as const);
    for (const clientId of updated) states.delete(clientId);
    awareness.emit("change", [{ added: [], updated: [], removed: updated }, "local"]);
    for (const [clientId, state] of again) if (state) set(clientId, state);
    awareness.emit("change", [{ added: updated, updated: [], removed: [] }, "local"]);
  };
}

/** Members (from the API) merged with who is online (awareness); online first, then by name. */
export function participants(awareness: Awareness, members: MemberInfo[], selfId: string): Participant[] {
  const byId = new Map<string, Participant>();
  for (const m of members) {
    byId.set(m.user_id, {
      userId: m.user_id, name: m.name || shortId(m.user_id), role: m.role, color: colourFor(m.user_id).color,
      online: false, file: null, isSelf: m.user_id === selfId,
    });
  }
  awareness.getStates().forEach((raw) => {
    const state = raw as PresenceState;
    const id = text(state.user?.id);
    if (!id) return;
    const known = byId.get(id);
    byId.set(id, {
      userId: id,
      // A member's name and role are the room's; a peer's claim only names a stranger.
      name: known?.name || text(state.user?.name) || shortId(id),
      role: known?.role ?? null,
      color: safeColour(state.user?.color, colourFor(id).color),
      online: true,
      file: text(state.file) ?? known?.file ?? null,
      isSelf: id === selfId,
    });
  });
  return [...byId.values()].sort(
    (a, b) => Number(b.online) - Number(a.online) || a.name.localeCompare(b.name) || a.userId.localeCompare(b.userId),
  );
}

function shortId(id: string): string {
  return `user ${id.slice(0, 8)}`;
}

export interface ParticipantListOptions {
  canManage: boolean;
  defaultRole: Role | null;
  onRoleChange: (userId: string, role: Role) => void;
  onDefaultRoleChange: (role: Role) => void;
}

function roleSelect(value: Role, testId: string, onChange: (role: Role) => void, label: string): HTMLSelectElement {
  const select = h("select", { "data-testid": testId, "aria-label": label });
  for (const role of ROLES) select.append(h("option", { value: role, selected: role === value }, role));
  select.addEventListener("change", () => onChange(select.value as Role));
  return select;
}

/** Renders the participant list (and the owner's default-role control) into `container`. */
export function renderParticipants(container: HTMLElement, people: Participant[], options: ParticipantListOptions): void {
  const defaultRole = options.defaultRole;
  const header = options.canManage && defaultRole
    ? h("label", { class: "default-role" }, "New members join as ",
        roleSelect(defaultRole, "default-role-select", options.onDefaultRoleChange, "Default role for new members"))
    : defaultRole ? h("div", { class: "default-role" }, `New members join as ${defaultRole}`) : null;
  const list = h("ul", { class: "participant-list", "data-testid": "participants" });
  for (const p of people) {
    const roleView = options.canManage && !p.isSelf && p.role
      ? roleSelect(p.role, "role-select", (role) => options.onRoleChange(p.userId, role), `Role of ${p.name}`)
      : h("span", { class: "role-badge" }, p.role ?? "?");
    list.append(h("li", {
      class: `participant${p.online ? " online" : ""}`,
      "data-testid": "participant",
      "data-user-id": p.userId,
      "data-role": p.role ?? "",
      "data-online": String(p.online),
      title: p.file ? `editing ${p.file}` : "",
    },
    h("span", { class: "dot", style: `background:${p.online ? p.color : "transparent"};border-color:${p.color}` }),
    h("span", { class: "participant-name" }, p.name, p.isSelf ? " (you)" : ""),
    roleView));
  }
  replaceChildren(container, header, list);
}
