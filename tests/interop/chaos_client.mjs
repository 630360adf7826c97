// Stock Yjs clients (npm `yjs` + `y-websocket` over `ws`) for the chaos test: all in this one
// process, each on a random server process, moving to another random one whenever its socket
// drops, and recording which of its edits the server reported saved.
// Usage: node chaos_client.mjs <config.json>
//   config: {"bases": ["ws://127.0.0.1:<port>/collab", ...], "seed": <int>,
//            "clients": [{"name": "c07", "room": "...", "token": "..."}, ...]}
// stdin, one JSON command a line: {"do": "go"} (start typing), {"do": "acks"} (how many edits
// of each client were reported saved so far), {"do": "stop"} (stop typing),
// {"do": "settle", "settleMs"} (wait until every client is synced, saved and agrees with its
// room), {"do": "quit"}.
// stdout, one JSON line an event: "ready" (every client synced once), "acks", "stopped" (how many
// edits were typed), "settled" (every client's text and figures), "error".
// A token reads "c07-000123;" and is only ever inserted at a token boundary, so a text splits
// back into the tokens it holds.
import { readFileSync } from "node:fs";
import readline from "node:readline";
import * as decoding from "lib0/decoding";
import WebSocket from "ws";
import { Awareness } from "y-protocols/awareness";
import * as Y from "yjs";
import { WebsocketProvider } from "y-websocket";

const config = JSON.parse(readFileSync(process.argv[2], "utf8"));
// Each provider adds a process "exit" listener; one per client is expected, not a leak.
process.setMaxListeners(config.clients.length * 2 + 10);

// A seeded generator (mulberry32): the run's choices are repeatable given the same timing.
let seed = config.seed >>> 0;
const random = () => {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const pick = (items) => items[Math.floor(random() * items.length)];

const errors = [];
for (const level of ["error", "warn"]) {
  console[level] = (...args) => errors.push(args.map(String).join(" "));
}
const say = (event, extra = {}) => process.stdout.write(JSON.stringify({ event, ...extra }) + "\n");

const SAVED = 1; // auth message sub-type of PairPilot's "saved" message

// The clock of `doc.clientID` in a "saved" frame, or null for any other frame.
const savedClock = (doc, data) => {
  const bytes = new Uint8Array(data);
  if (bytes[0] !== 2 || bytes[1] !== SAVED) return null;
  const decoder = decoding.createDecoder(bytes);
  decoding.readVarUint(decoder);
  decoding.readVarUint(decoder);
  const clocks = Y.decodeStateVector(decoding.readVarUint8Array(decoder));
  return clocks.get(doc.clientID) ?? 0;
};

const clients = config.clients.map(({ name, room, token }) => {
  const doc = new Y.Doc();
  // One presence for the client's life, handed to each of its successive providers.
  const awareness = new Awareness(doc);
  awareness.setLocalStateField("user", { name });
  return {
    name,
    room,
    token,
    doc,
    awareness,
    text: doc.getText("code"),
    provider: null,
    clocks: [], // the client's clock right after each of its edits, in typing order
    saved: 0, // the highest clock of its own that a "saved" message reported
    savedAtStop: 0,
    connects: 0,
    attempts: 0,
    failures: 0, // consecutive attempts that never connected
    closes: {},
    timer: null,
  };
});

const connect = (client) => {
  client.attempts += 1;
  const provider = new WebsocketProvider(pick(config.bases), client.room, client.doc, {
    WebSocketPolyfill: WebSocket,
    disableBc: true,
    awareness: client.awareness,
    params: { token: client.token },
  });
  client.provider = provider;
  provider.on("status", ({ status }) => {
    if (status !== "connected") return;
    client.connects += 1;
    client.failures = 0;
    provider.ws.addEventListener("message", (event) => {
      const clock = savedClock(client.doc, event.data);
      if (clock !== null && clock > client.saved) client.saved = clock;
    });
  });
  provider.on("connection-close", (event) => {
    // y-websocket would reconnect to the same URL: stop it, and move to a random process.
    provider.shouldConnect = false;
    const code = event ? String(event.code) : "watchdog";
    client.closes[code] = (client.closes[code] ?? 0) + 1;
    client.failures += 1;
    const backoff = Math.min(1000, 50 * 2 ** Math.min(client.failures, 5));
    setTimeout(
      () => {
        if (client.provider !== provider) return;
        provider.destroy();
        connect(client);
      },
      backoff / 2 + random() * backoff,
    );
  });
};

// A random token boundary of the client's text (either end, or right after a ";").
const boundary = (text) => {
  const string = text.toString();
  const at = Math.floor(random() * (string.length + 1));
  if (at === 0 || string[at - 1] === ";") return at;
  return string.indexOf(";", at) + 1;
};

const typeOne = (client) => {
  const n = client.clocks.length;
  const token = `${client.name}-${String(n).padStart(6, "0")};`;
  client.text.insert(boundary(client.text), token);
  client.clocks.push(Y.getState(client.doc.store, client.doc.clientID));
};

const startTyping = (client) => {
  const next = () => {
    typeOne(client);
    client.timer = setTimeout(next, 100 + random() * 100);
  };
  client.timer = setTimeout(next, random() * 200);
};

// How many of the client's edits (a prefix: clocks grow) are within its saved clock.
const acked = (client, saved) => {
  let count = 0;
  while (count < client.clocks.length && client.clocks[count] <= saved) count += 1;
  return count;
};

const live = (client) => client.provider.wsconnected && client.provider.synced;
const ownSaved = (client) => client.saved >= Y.getState(client.doc.store, client.doc.clientID);
const roomsAgree = () => {
  const texts = new Map();
  for (const client of clients) {
    const text = client.text.toString();
    if (!texts.has(client.room)) texts.set(client.room, text);
    else if (texts.get(client.room) !== text) return false;
  }
  return true;
};

const until = (check, ms) =>
  new Promise((resolve) => {
    const started = Date.now();
    const tick = () => {
      if (check()) return resolve(true);
      if (Date.now() - started > ms) return resolve(false);
      setTimeout(tick, 50);
    };
    tick();
  });

const report = (client) => ({
  name: client.name,
  room: client.room,
  client_id: client.doc.clientID,
  typed: client.clocks.length,
  acked_at_stop: acked(client, client.savedAtStop),
  acked: acked(client, client.saved),
  live: live(client),
  own_saved: ownSaved(client),
  connects: client.connects,
  attempts: client.attempts,
  closes: client.closes,
  text: client.text.toString(),
});

const commands = {
  async go() {
    for (const client of clients) startTyping(client);
  },
  async acks() {
    say("acks", { acked: clients.map((client) => acked(client, client.saved)) });
  },
  async stop() {
    for (const client of clients) {
      clearTimeout(client.timer);
      client.savedAtStop = client.saved;
    }
    say("stopped", { typed: clients.reduce((sum, client) => sum + client.clocks.length, 0) });
  },
  async settle({ settleMs }) {
    const started = Date.now();
    const settled = await until(
      () => clients.every((client) => live(client) && ownSaved(client)) && roomsAgree(),
      settleMs,
    );
    say("settled", {
      settled,
      settle_ms: Date.now() - started,
      clients: clients.map(report),
      errors,
    });
  },
  async quit() {
    for (const client of clients) client.provider.destroy();
    process.exit(0);
  },
};

try {
  for (const client of clients) connect(client);
  const ready = await until(() => clients.every(live), 30000);
  if (!ready) throw new Error("not every client synced within 30 s");
  say("ready", { clients: clients.length });
  for await (const line of readline.createInterface({ input: process.stdin })) {
    const command = JSON.parse(line);
    await commands[command.do](command);
  }
  process.exit(0);
} catch (error) {
  say("error", { message: String(error), errors });
  process.exit(1);
}
