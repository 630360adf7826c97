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
