/**
 * A development-only, in-memory stand-in for the server's /api (DESIGN.md §3, §4, §6), used by
 * `PAIRPILOT_MOCK_API=1 npm run dev` until the real endpoints exist. Never part of the build.
 */
import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Plugin } from "vite";

type Role = "owner" | "editor" | "viewer";
interface Room { id: string; owner_id: string; default_role: Role; created_at: string; members: Map<string, Role> }

const users = new Map<string, { id: string; name: string }>();
const rooms = new Map<string, Room>();
const runs = new Map<string, number[]>();
const RUN_LIMIT = 3;
const RUN_WINDOW_MS = 60_000;

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "Content-Type": "application/json", ...headers });
  res.end(JSON.stringify(body));
}

function fail(res: ServerResponse, status: number, error: string, message: string): void {
  send(res, status, { error, message });
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  let raw = "";
  for await (const chunk of req) raw += String(chunk);
  return raw ? (JSON.parse(raw) as Record<string, unknown>) : {};
}

function isRole(value: unknown): value is Role {
  return value === "owner" || value === "editor" || value === "viewer";
}

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? "/", "http://mock");
  const path = url.pathname;
  const method = req.method ?? "GET";
  if (method === "GET" && path === "/api/config") {
    return send(res, 200, { browser_sentry_dsn: process.env.PAIRPILOT_MOCK_BROWSER_DSN ?? null });
  }
  if (method === "POST" && path === "/monitoring") return send(res, 200, {});
  if (method === "POST" && path === "/api/auth/anonymous") {
    const body = await readJson(req);
    const user = { id: randomUUID(), name: typeof body.name === "string" ? body.name : "anonymous" };
    const token = `mock.${user.id}`;
    users.set(token, user);
    return send(res, 200, { access_token: token, token_type: "bearer", expires_in: 3600, user });
  }
  const token = (req.headers.authorization ?? "").replace(/^Bearer /, "");
  const user = users.get(token);
  if (!user) return fail(res, 401, "unauthorized", "missing or invalid token");

  if (method === "POST" && path === "/api/ratelimit/run") {
    const body = await readJson(req);
    const key = `${String(body.roomId)}:${user.id}`;
    const now = Date.now();
    const recent = (runs.get(key) ?? []).filter((t) => now - t < RUN_WINDOW_MS);
    if (recent.length >= RUN_LIMIT) {
      const retry = Math.ceil((recent[0]! + RUN_WINDOW_MS - now) / 1000);
      return send(res, 429, { error: "rate_limited", message: "run limit reached" }, { "Retry-After": String(retry) });
    }
    recent.push(now);
    runs.set(key, recent);
    return send(res, 200, { allowed: true, limit: RUN_LIMIT, remaining: RUN_LIMIT - recent.length, reset_s: 60 });
  }

  const match = /^\/api\/rooms\/([A-Za-z0-9_-]{1,64})(\/.*)?$/.exec(path);
  if (!match) return fail(res, 404, "not_found", `no route ${method} ${path}`);
  const roomId = match[1]!;
  const rest = match[2] ?? "";
  let room = rooms.get(roomId);
  if (method === "POST" && rest === "/join") {
    if (!room) {
      room = { id: roomId, owner_id: user.id, default_role: "editor", created_at: new Date().toISOString(), members: new Map([[user.id, "owner"]]) };
      rooms.set(roomId, room);
    }
    if (!room.members.has(user.id)) room.members.set(user.id, room.default_role);
    const { members, ...roomRow } = room;
    return send(res, 200, { room: roomRow, member: { user_id: user.id, role: members.get(user.id) } });
  }
  const role = room?.members.get(user.id);
  if (!room || !role) return fail(res, 404, "not_found", "room not found");
  if (method === "GET" && rest === "/members") {
    const names = new Map([...users.values()].map((u) => [u.id, u.name]));
    return send(res, 200, [...room.members].map(([id, r]) => ({ user_id: id, role: r, name: names.get(id) })));
  }
  if (method === "GET" && rest === "/snapshot") {
    return send(res, 200, { room_id: roomId, snapshot_b64: null, updated_at: null });
  }
  const memberMatch = /^\/members\/([^/]+)$/.exec(rest);
  if ((method === "PUT" && memberMatch) || (method === "PATCH" && rest === "")) {
    if (role !== "owner") return fail(res, 403, "forbidden", "only the owner can do that");
    const body = await readJson(req);
    if (memberMatch) {
      if (!isRole(body.role)) return fail(res, 400, "bad_request", "role must be owner, editor or viewer");
      room.members.set(decodeURIComponent(memberMatch[1]!), body.role);
      return send(res, 200, { user_id: memberMatch[1], role: body.role });
    }
    if (!isRole(body.default_role)) return fail(res, 400, "bad_request", "bad default_role");
    room.default_role = body.default_role;
    const { members: _members, ...roomRow } = room;
    return send(res, 200, roomRow);
  }
  return fail(res, 404, "not_found", `no route ${method} ${path}`);
}

/** Vite plugin answering /api/* in the dev server from the in-memory state above. */
export function mockApi(): Plugin {
  const middleware = (req: IncomingMessage, res: ServerResponse, next: () => void): void => {
    const url = req.url ?? "";
    if (!url.startsWith("/api/") && !url.startsWith("/monitoring")) return next();
    handle(req, res).catch((err: unknown) => fail(res, 500, "internal", String(err)));
  };
  return {
    name: "pairpilot-mock-api",
    configureServer(server) {
      server.middlewares.use(middleware);
    },
    configurePreviewServer(server) {
      server.middlewares.use(middleware);
    },
  };
}
