/**
 * Presence through Yjs awareness: who is here (name, colour, role, open file; the cursor field is
 * written by y-codemirror.next), a "roles changed" signal, and the participant list.
 */
import type { Awareness } from "y-protocols/awareness";
import { ROLES, type MemberInfo, type Role } from "./api";
import { h, replaceChildren } from "./dom";
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
    const id = state.user?.id;
    if (!id) return;
    const known = byId.get(id);
    byId.set(id, {
      userId: id,
      name: state.user?.name || known?.name || shortId(id),
      role: known?.role ?? state.user?.role ?? null,
      color: state.user?.color || colourFor(id).color,
      online: true,
      file: state.file ?? known?.file ?? null,
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
