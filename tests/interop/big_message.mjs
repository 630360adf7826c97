// A stock `ws` client that sends one binary message of BYTES bytes, then reports the close.
// Usage: node big_message.mjs <ws url with token> <bytes>
// Prints one JSON line {"code", "reason", "error"} and exits 0 once the socket is closed.
import WebSocket from "ws";

const [, , url, bytes] = process.argv;
const ws = new WebSocket(url, { perMessageDeflate: false });
let error = null;
ws.on("error", (err) => {
  error = String(err);
});
ws.on("open", () => {
  // A sync update message (type 0, sub-type 2): the bytes after it do not matter, the size does.
  const message = Buffer.alloc(Number(bytes));
  message[0] = 0;
  message[1] = 2;
  ws.send(message, { binary: true });
});
ws.on("close", (code, reason) => {
  process.stdout.write(JSON.stringify({ code, reason: reason.toString(), error }) + "\n");
  process.exit(0);
});
setTimeout(() => {
  process.stdout.write(JSON.stringify({ code: null, reason: "", error: "timed out" }) + "\n");
  process.exit(1);
}, 30000);
