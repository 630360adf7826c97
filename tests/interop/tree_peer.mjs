// A stock Yjs peer (npm yjs + y-websocket, no PairPilot code) that applies the file tree's
// operations as README.md's schema describes them, one JSON command per stdin line:
//   {"do": "offline" | "online" | "report"}
//   {"do": "create", "id", "path", "text"}   files.set(id, text) + paths.set(id, path)
//   {"do": "legacy", "name", "text"}         the old way: files.set(name, text), no path
//   {"do": "rename", "id", "path"}           paths.set(id, path)
//   {"do": "edit", "id", "text"}             appends to the file's text
//   {"do": "delete", "id"}                   files.delete(id) + paths.delete(id)
//   {"do": "folder", "path"}                 folders.set(path, true)
//   {"do": "move_folder", "from", "to"}      every file's (and explicit folder's) path under it
//   {"do": "delete_folder", "path"}          every file and explicit folder under it
// Each command answers one line: {"event": "ok", "state": {files, paths, folders}, "seen"}
// ("seen": its state vector as client id → clock).
// Usage: node tree_peer.mjs <ws base url> <room> <token>
import { createInterface } from "node:readline";
import WebSocket from "ws";
import * as Y from "yjs";
import { WebsocketProvider } from "y-websocket";

const [, , base, room, token] = process.argv;
const doc = new Y.Doc();
const provider = new WebsocketProvider(base, room, doc, {
  WebSocketPolyfill: WebSocket,
  disableBc: true,
  params: { token },
});
const files = doc.getMap("files");
const paths = doc.getMap("paths");
const folders = doc.getMap("folders");

const state = () => ({
  files: Object.fromEntries([...files.entries()].filter(([, v]) => v instanceof Y.Text).map(([k, v]) => [k, v.toString()])),
  paths: Object.fromEntries([...paths.entries()]),
  folders: [...folders.keys()].sort(),
});
// What this replica has seen: client id → clock, to tell when everyone holds everything.
const seen = () => Object.fromEntries([...Y.decodeStateVector(Y.encodeStateVector(doc))].map(([c, n]) => [String(c), n]));
const say = (event, extra = {}) => process.stdout.write(JSON.stringify({ event, ...extra }) + "\n");
const pathOf = (id) => (typeof paths.get(id) === "string" ? paths.get(id) : id);
const under = (path, folder) => path.startsWith(`${folder}/`);

const commands = {
  offline: () => provider.disconnect(),
  online: () => provider.connect(),
  report: () => {},
  create: ({ id, path, text }) => { files.set(id, new Y.Text(text)); paths.set(id, path); },
  legacy: ({ name, text }) => files.set(name, new Y.Text(text)),
  rename: ({ id, path }) => paths.set(id, path),
  edit: ({ id, text }) => { const t = files.get(id); t.insert(t.length, text); },
  delete: ({ id }) => { files.delete(id); paths.delete(id); },
  folder: ({ path }) => folders.set(path, true),
  move_folder: ({ from, to }) => {
    for (const id of files.keys()) if (under(pathOf(id), from)) paths.set(id, to + pathOf(id).slice(from.length));
    for (const folder of [...folders.keys()]) {
      if (folder === from || under(folder, from)) { folders.delete(folder); folders.set(to + folder.slice(from.length), true); }
    }
  },
  delete_folder: ({ path }) => {
    for (const id of [...files.keys()]) if (under(pathOf(id), path)) { files.delete(id); paths.delete(id); }
    for (const folder of [...folders.keys()]) if (folder === path || under(folder, path)) folders.delete(folder);
  },
};

let announced = false;
provider.on("sync", (synced) => {
  if (synced && !announced) say("synced", { state: state() });
  announced ||= synced;
});
for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  const command = JSON.parse(line);
  try {
    doc.transact(() => commands[command.do](command));
    say("ok", { state: state(), seen: seen() });
  } catch (error) {
    say("error", { message: String(error) });
  }
}
provider.destroy();
process.exit(0);
