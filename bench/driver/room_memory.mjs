// Memory per live room (issue #23): `node driver/room_memory.mjs '<json config>'`.
// Types a document line by line (seeded: `bytes` of code-like lines, one transaction a line, at
// the end of the text), then for each of `rooms` rooms one stock client (y-websocket's provider)
// with that document connects: its first sync hands the whole document to the server. The
// clients stay connected until the orchestrator says "check" or "done" on stdin. JSON lines on stdout as
// load.mjs prints them: {"event": ...} marks, then {"result": ...}.
import { performance } from 'node:perf_hooks'
import { createInterface } from 'node:readline'
import * as Y from 'yjs'
import * as prng from 'lib0/prng'
import { apiRetries, connect, signIn } from './clients.mjs'

const cfg = JSON.parse(process.argv[2])
process.setMaxListeners(0) // y-websocket adds an exit listener per provider
const emit = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const WORDS = ['const', 'let', 'return', 'if', 'else', 'for', 'function', 'value', 'items',
  'index', 'result', 'await', 'async', 'this', 'new', 'map', 'filter', '=', '+', '(', ')', '{', '}']

const lines = []
createInterface({ input: process.stdin }).on('line', (line) => lines.push(line.trim()))
async function nextCommand () {
  while (lines.length === 0) await sleep(50)
  return lines.shift()
}

/** A document typed line by line: every line appended in its own transaction. */
function typed (bytes, seed) {
  const g = prng.create(seed)
  const doc = new Y.Doc()
  const text = doc.getText('code')
  while (text.length < bytes) {
    const indent = ' '.repeat(2 * prng.uint32(g, 0, 4))
    const words = Array.from({ length: prng.uint32(g, 3, 12) }, () => prng.oneOf(g, WORDS))
    text.insert(text.length, indent + words.join(' ') + '\n')
  }
  return Y.encodeStateAsUpdate(doc)
}

const t0 = performance.now()
const update = typed(cfg.bytes, cfg.seed ?? 23)
const typedMs = performance.now() - t0
const clients = []
let index = 0
async function open () {
  while (index < cfg.rooms) {
    const r = index++
    const room = `${cfg.roomPrefix}-${r}`
    const token = cfg.auth ? await signIn(cfg.http, room, `bench-mem-${r}`) : null
    const doc = new Y.Doc()
    Y.applyUpdate(doc, update) // the client's own document before it connects
    const client = connect(cfg, room, token, doc)
    clients.push(client)
    await client.synced
  }
}
const t1 = performance.now()
await Promise.all(Array.from({ length: cfg.concurrency ?? 4 }, open))
emit({ event: 'synced', ms: performance.now() - t1 })
emit({ event: 'live' })
// After the orchestrator measured: "check" (a fresh client per room reads the document back:
// the server holds all of it) or "done".
const command = await nextCommand()
let ok = command === 'check' || command === 'done'
let error = null
const expected = clients[0]?.doc.getText('code').length
for (let r = 0; command === 'check' && r < cfg.rooms && ok; r++) {
  const room = `${cfg.roomPrefix}-${r}`
  const token = cfg.auth ? await signIn(cfg.http, room, `bench-check-${r}`) : null
  const check = connect(cfg, room, token)
  await check.synced
  const length = check.doc.getText('code').length
  check.destroy()
  if (length !== expected) { ok = false; error = `${room}: ${length} of ${expected}` }
}
const connected = clients.filter((cl) => cl.connected()).length
const closes = clients.reduce((a, cl) => a + cl.closes(), 0)
for (const cl of clients) cl.destroy()
emit({
  result: {
    ok: ok && connected === cfg.rooms && closes === 0,
    error,
    update_bytes: update.length,
    characters: expected,
    typed_ms: typedMs,
    connected,
    reconnects: closes,
    api_retries: apiRetries
  }
})
process.exit(0)
