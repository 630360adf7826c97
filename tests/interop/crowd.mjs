// Stock Yjs clients (npm `yjs` + `y-websocket` over `ws`), one WebsocketProvider per token, all
// in this process, driven line by line from the Python tests.
// Usage: node crowd.mjs <ws base url> <room> <token>[,<token>...]
// Every stdin line is one JSON command {"op": ..., ...}; each is answered, in order, with one
// JSON line {"event": "ok", "op", "texts", "connected", "synced", "closes", "connects", "typed"}
// describing every client, or {"event": "error", "message"} (and the process exits 1).
// Tokens typed by `autotype` read "[<client>.<n>]" and are only ever inserted between two
// tokens, so a text splits back into the tokens it holds (the tests count each one).
import readline from "node:readline";
import WebSocket from "ws";
import * as Y from "yjs";
import { WebsocketProvider } from "y-websocket";

const [, , base, room, tokenList] = process.argv;
const tokens = tokenList.split(",");
// Each provider adds a process "exit" listener; more than 10 is expected here, not a leak.
process.setMaxListeners(tokens.length + 10);

const clients = tokens.map((token, index) => {
  const doc = new Y.Doc();
  const provider = new WebsocketProvider(base, room, doc, {
    WebSocketPolyfill: WebSocket,
    disableBc: true,
    params: { token },
  });
  const text = doc.getText("code");
  const client = { index, provider, text, closes: [], connects: 0, typed: 0, timer: null };
  // `null` is the provider's own watchdog (30 s without a message), a number a close event's code.
  provider.on("connection-close", (event) => client.closes.push(event ? event.code : null));
  provider.on("status", ({ status }) => {
    if (status === "connected") client.connects += 1;
  });
  provider.awareness.setLocalStateField("user", { name: `stock ${index}` });
  return client;
});

const errors = [];
for (const level of ["error", "warn"]) {
  console[level] = (...args) => errors.push(args.map(String).join(" "));
}

const until = (check, ms) =>
  new Promise((resolve, reject) => {
    const started = Date.now();
    const tick = () => {
      if (check()) return resolve();
      if (Date.now() - started > ms) return reject(new Error(`timed out after ${ms} ms`));
      setTimeout(tick, 10);
    };
    tick();
  });

const chosen = (command) =>
  command.client === undefined ? clients : [clients[command.client]];
const live = (client) => client.provider.wsconnected && client.provider.synced;

// A random place between two tokens (or at either end) of the client's current text.
const boundary = (text) => {
  const string = text.toString();
  const places = [0];
  for (let i = 0; i < string.length; i += 1) if (string[i] === "]") places.push(i + 1);
  return places[Math.floor(Math.random() * places.length)];
};

const typeToken = (client) => {
  client.text.insert(boundary(client.text), `[${client.index}.${client.typed}]`);
  client.typed += 1;
};

const stopTyping = () => {
  for (const client of clients) {
    clearTimeout(client.timer);
    client.timer = null;
  }
};

// Every client holds every token typed so far by any of the crowd's clients.
const allTyped = () => {
  const tokensOf = (c) => Array.from({ length: c.typed }, (_, n) => `[${c.index}.${n}]`);
  const expected = clients.flatMap(tokensOf);
  return clients.every((client) => {
    const present = new Set(client.text.toString().match(/\[\d+\.\d+\]/g) || []);
    return expected.every((token) => present.has(token));
  });
};

const ops = {
  // Wait until every chosen client is connected and synced.
  synced: (command) => until(() => chosen(command).every(live), command.ms ?? 15000),
  // Insert `text` at "start", "end" or an index.
  type: (command) => {
    for (const client of chosen(command)) {
      const places = { start: 0, end: client.text.length };
      client.text.insert(places[command.at] ?? command.at, command.text);
    }
  },
  // Go offline (the provider stops reconnecting) and back online.
  disconnect: (command) => chosen(command).forEach((client) => client.provider.disconnect()),
  connect: (command) => chosen(command).forEach((client) => client.provider.connect()),
  // Wait until every chosen client's text is `text`.
  until: (command) => {
    const done = () => chosen(command).every((c) => c.text.toString() === command.text);
    return until(done, command.ms ?? 15000);
  },
  // Each client types one token every `every_ms` (with jitter), online or not, until `settle`.
  autotype: (command) => {
    for (const client of clients) {
      const next = () => {
        typeToken(client);
        client.timer = setTimeout(next, command.every_ms * (0.5 + Math.random()));
      };
      if (client.timer === null) {
        client.timer = setTimeout(next, Math.random() * command.every_ms);
      }
    }
  },
  // Every client's socket is dropped in the same tick, from the client side: "close" sends a close
  // frame, "terminate" cuts the TCP connection. The providers reconnect by themselves.
  drop: (command) => {
    for (const client of clients) {
      const ws = client.provider.ws;
      if (ws !== null && client.provider.wsconnected) {
        if (command.how === "terminate") ws.terminate();
        else ws.close();
      }
    }
  },
  // Stop typing; wait until every client is connected and synced and has every typed token.
  settle: async (command) => {
    stopTyping();
    await until(() => clients.every(live) && allTyped(), command.ms ?? 20000);
  },
  state: () => {},
};

const answer = (op) => {
  const state = {
    texts: clients.map((c) => c.text.toString()),
    connected: clients.map((c) => c.provider.wsconnected),
    synced: clients.map((c) => c.provider.synced),
    closes: clients.map((c) => c.closes),
    connects: clients.map((c) => c.connects),
    typed: clients.map((c) => c.typed),
    errors,
  };
  process.stdout.write(JSON.stringify({ event: "ok", op, ...state }) + "\n");
};

const lines = readline.createInterface({ input: process.stdin });
let queue = Promise.resolve();
lines.on("line", (line) => {
  if (!line.trim()) return;
  queue = queue.then(async () => {
    const command = JSON.parse(line);
    try {
      await ops[command.op](command);
      answer(command.op);
    } catch (error) {
      const failure = { event: "error", op: command.op, message: String(error) };
      process.stdout.write(JSON.stringify(failure) + "\n");
      process.exit(1);
    }
  });
});
lines.on("close", () =>
  queue.then(() => {
    stopTyping();
    clients.forEach((client) => client.provider.destroy());
    process.exit(0);
  }),
);
