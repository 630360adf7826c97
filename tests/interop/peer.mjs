// A stock Yjs peer: npm `yjs` + `y-websocket` over `ws`, driven by the Python tests.
// Usage: node peer.mjs <ws base url> <room> <script> [token]
// Scripts print one JSON line per observation on stdout and exit 0 when done.
import WebSocket from "ws";
import * as Y from "yjs";
import { WebsocketProvider } from "y-websocket";

const [, , base, room, script, token] = process.argv;
const doc = new Y.Doc();
const provider = new WebsocketProvider(base, room, doc, {
  WebSocketPolyfill: WebSocket,
  disableBc: true,
  params: token ? { token } : {},
});
const text = doc.getText("code");
const say = (event, extra = {}) =>
  process.stdout.write(JSON.stringify({ event, text: text.toString(), ...extra }) + "\n");

const until = (check, ms = 15000) =>
  new Promise((resolve, reject) => {
    const started = Date.now();
    const tick = () => {
      if (check()) return resolve();
      if (Date.now() - started > ms) return reject(new Error("timed out"));
      setTimeout(tick, 10);
    };
    tick();
  });

const files = doc.getMap("files");
const filesJson = () =>
  Object.fromEntries([...files.entries()].sort().map(([name, value]) => [name, value.toString()]));
const sameFiles = (expected) => JSON.stringify(filesJson()) === JSON.stringify(expected);

// Everything the library itself reports as wrong ends up here (and in the final line).
const errors = [];
for (const level of ["error", "warn"]) {
  console[level] = (...args) => errors.push(args.map(String).join(" "));
}
// Raw frames of the server's "saved" message (auth, sub-type 1) and "comments" message (auth,
// sub-type 4), which the stock client ignores.
let savedFrames = 0;
let commentFrames = 0;
provider.on("status", ({ status }) => {
  if (status === "connected") {
    provider.ws.addEventListener("message", (event) => {
      const bytes = new Uint8Array(event.data);
      if (bytes[0] === 2 && bytes[1] === 1) savedFrames += 1;
      if (bytes[0] === 2 && bytes[1] === 4) commentFrames += 1;
    });
  }
});
const stdinLines = [];
const readStdin = () => {
  process.stdin.setEncoding("utf8");
  process.stdin.on("data", (chunk) => stdinLines.push(...chunk.split("\n").filter(Boolean)));
};

const closes = [];
provider.on("connection-close", (event) => closes.push(event ? event.code : null));

const scripts = {
  // Edit together with a Python client: answer its line, wait for its reply.
  async converse() {
    await until(() => provider.synced);
    provider.awareness.setLocalStateField("user", { name: "Node 🙂", color: "#3b82f6" });
    await until(() => text.toString().includes("from python\n"));
    text.insert(text.length, "from node: héllo 🙂\n");
    await until(() => text.toString().includes("python saw node\n"));
    say("final");
  },
  // Stay alone in a room for longer than the client's 30 s silence timeout.
  async linger() {
    await until(() => provider.synced);
    provider.awareness.setLocalStateField("user", { name: "alone" });
    await new Promise((resolve) => setTimeout(resolve, Number(process.env.LINGER_MS || 35000)));
    say("lingered", { closes, connected: provider.wsconnected });
  },
  // Edit, see the server's "saved" frames arrive, and keep syncing after them without an error.
  async saved() {
    await until(() => provider.synced);
    provider.awareness.setLocalStateField("user", { name: "stock" });
    const before = savedFrames;
    text.insert(0, "stock edit\n");
    await until(() => savedFrames > before);
    say("saved", { savedFrames, errors });
    await until(() => text.toString().includes("python after saved\n"));
    say("final", { savedFrames, errors, synced: provider.synced });
  },
  // Hear process.env.COMMENTS comment messages, then keep syncing: an edit after them arrives.
  async comments() {
    await until(() => provider.synced);
    say("synced");
    await until(() => commentFrames >= Number(process.env.COMMENTS), 20000);
    await until(() => text.toString().includes("python after comments\n"));
    say("final", { commentFrames, errors, closes, synced: provider.synced });
  },
  // Once file FILE holds FIND: insert BEFORE at its start and INSIDE at FIND's index + INSIDE_AT
  // (one transaction), and wait until the server says it is stored.
  async editAround() {
    const { FILE, FIND, BEFORE, INSIDE, INSIDE_AT } = process.env;
    await until(() => provider.synced && files.get(FILE)?.toString().includes(FIND), 30000);
    const target = files.get(FILE);
    const at = target.toString().indexOf(FIND) + Number(INSIDE_AT);
    const before = savedFrames;
    doc.transact(() => {
      target.insert(at, INSIDE);
      target.insert(0, BEFORE);
    });
    await until(() => savedFrames > before);
    say("final", { files: filesJson(), errors });
  },
  // Stay connected until the room's files are exactly process.env.EXPECT (JSON).
  async follow() {
    await until(() => provider.synced);
    say("synced", { files: filesJson() });
    await until(() => sameFiles(JSON.parse(process.env.EXPECT)), 20000);
    say("final", { files: filesJson(), errors });
  },
  // Sync, go offline, edit, wait for "go" on stdin, reconnect and wait for EXPECT.
  async offline() {
    readStdin();
    await until(() => provider.synced && files.get("a.py")?.toString() === process.env.START_A);
    provider.disconnect();
    const a = files.get("a.py");
    a.insert(a.length, "offline edit\n");
    files.set("c.py", new Y.Text("offline file\n"));
    say("offline", { files: filesJson() });
    await until(() => stdinLines.includes("go"), 30000);
    provider.connect();
    await until(() => provider.synced && sameFiles(JSON.parse(process.env.EXPECT)), 20000);
    say("final", { files: filesJson(), errors });
  },
  // Connect and report how the server closed the socket.
  async refused() {
    await until(() => closes.length > 0);
    say("closed", { closes });
  },
};

try {
  await scripts[script]();
  provider.destroy();
  process.exit(0);
} catch (error) {
  say("error", { message: String(error), closes });
  process.exit(1);
}
