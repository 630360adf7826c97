// Load driver: `node driver/load.mjs '<json config>'`. Prints JSON lines on stdout:
// {"event": ...} marks phases (the orchestrator samples the server's /proc at them) and the last
// line is {"result": {...}}. Reads commands (one word a line) from stdin where a phase waits.
// All traffic goes to the URL given, which the orchestrator sets to 127.0.0.1.
import { performance, monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks'
import { createInterface } from 'node:readline'
import { existsSync, readFileSync, writeFileSync, renameSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as Y from 'yjs'
import * as prng from 'lib0/prng'
import * as decoding from 'lib0/decoding'
import { apiRetries, connect, signIn } from './clients.mjs'

const cfg = JSON.parse(process.argv[2])
process.setMaxListeners(0) // y-websocket adds an exit listener per provider
const gen = prng.create(cfg.seed ?? 1)
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const emit = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')
const timing = {} // phases of openRooms, reported with every result
const ALPHABET = 'abcdefghijklmnopqrstuvwxyz_ (){};=+.'

const stdinLines = []
const stdinWaiters = []
createInterface({ input: process.stdin }).on('line', (line) => {
  const w = stdinWaiters.shift()
  if (w) w(line.trim())
  else stdinLines.push(line.trim())
})
const nextCommand = () => stdinLines.length
  ? Promise.resolve(stdinLines.shift())
  : new Promise((resolve) => stdinWaiters.push(resolve))

function percentile (sorted, p) {
  if (sorted.length === 0) return null
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p / 100 * sorted.length) - 1))
  return sorted[i]
}

function summary (values) {
  const sorted = Float64Array.from(values).sort()
  const sum = sorted.reduce((a, b) => a + b, 0)
  return {
    count: sorted.length,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    max: sorted.length ? sorted[sorted.length - 1] : null,
    mean: sorted.length ? sum / sorted.length : null
  }
}

/** Run `fn` over `items` with at most `limit` in flight. */
async function pool (items, limit, fn) {
  let next = 0
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++
      await fn(items[i], i)
    }
  })
  await Promise.all(workers)
}

/**
 * Connect `perRoom` clients to each room: the first client of a room alone and synced before
 * the rest (pycrdt-websocket races when two clients open a new room at once; same for all).
 */
async function openRooms (rooms, perRoom, docFactory = () => new Y.Doc()) {
  // Sign-in and join first (PairPilot only), timed apart from the WebSocket connections.
  const tokens = rooms.map(() => [])
  const t0 = performance.now()
  if (cfg.auth) {
    await pool(rooms, cfg.connectConcurrency ?? 20, async (room, r) => {
      for (let c = 0; c < perRoom; c++) tokens[r].push(await signIn(cfg.http, room, `bench-${r}-${c}`))
    })
  }
  timing.auth_ms = performance.now() - t0
  const t1 = performance.now()
  const byRoom = rooms.map(() => [])
  await pool(rooms, cfg.connectConcurrency ?? 20, async (room, r) => {
    const first = connect(cfg, room, tokens[r][0] ?? null, docFactory())
    byRoom[r].push(first)
    await first.synced
    const rest = []
    for (let c = 1; c < perRoom; c++) rest.push(connect(cfg, room, tokens[r][c] ?? null, docFactory()))
    byRoom[r].push(...rest)
    await Promise.all(rest.map((cl) => cl.synced))
  })
  timing.ws_connect_ms = performance.now() - t1
  return byRoom
}

function converged (byRoom, textName = 'code') {
  let diverged = 0
  for (const clients of byRoom) {
    const ref = clients[0].doc.getText(textName).toString()
    const sv = Buffer.from(Y.encodeStateVector(clients[0].doc)).toString('base64')
    for (const cl of clients.slice(1)) {
      if (cl.doc.getText(textName).toString() !== ref ||
          Buffer.from(Y.encodeStateVector(cl.doc)).toString('base64') !== sv) {
        diverged++
        break
      }
    }
  }
  return diverged
}

function closeAll (byRoom) {
  for (const clients of byRoom) for (const cl of clients) cl.destroy()
}

/** Keystroke-sized edits (one character at a random position) and their delivery latency. */
async function fanout () {
  const { rooms: K, clients: N, rate: R, durationS } = cfg
  const roomIds = Array.from({ length: K }, (_, r) => `${cfg.roomPrefix}-${r}`)
  const t0 = performance.now()
  const byRoom = await openRooms(roomIds, N)
  const connectMs = performance.now() - t0
  emit({ event: 'connected', connectMs })

  // (clientID:clock) -> [sendTime, receipts]; observers resolve the item ids of remote inserts.
  const pending = new Map()
  const latencies = []
  let delivered = 0
  const bins = []
  let unexpected = 0
  for (const clients of byRoom) {
    for (const cl of clients) {
      // The ids of a transaction's new items are the clock ranges between its state vectors.
      cl.doc.on('afterTransaction', (tr) => {
        if (tr.local) return
        const now = performance.now()
        tr.afterState.forEach((clock, client) => {
          for (let c = tr.beforeState.get(client) ?? 0; c < clock; c++) {
            const key = `${client}:${c}`
            const p = pending.get(key)
            if (!p) { unexpected++; continue }
            if (p[2]) latencies.push(now - p[0])
            if (cfg.debugLag) { const b = Math.floor((p[0] - t0) / 250); bins[b] = Math.max(bins[b] ?? 0, now - p[0]) }
            delivered++
            if (++p[1] === N - 1) pending.delete(key)
          }
        })
      })
    }
  }
  await sleep(cfg.settleMs ?? 1000)

  const loop = monitorEventLoopDelay({ resolution: 1 })
  loop.enable()
  // The driver's own GC pauses stall every client at once and so land in the latency tail of
  // whichever server is measured: reported with every case, so such a tail can be recognised.
  const gc = { pauses: 0, ms: 0, max_ms: 0, over_10ms: 0 }
  const gcObserver = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      gc.pauses++
      gc.ms += e.duration
      gc.max_ms = Math.max(gc.max_ms, e.duration)
      if (e.duration > 10) gc.over_10ms++
    }
  })
  gcObserver.observe({ entryTypes: ['gc'] })
  const cpu0 = process.cpuUsage()
  const periodMs = 1000 / R
  // A warm-up (edits sent and checked, latencies not kept) lets JITs and pools settle.
  const warmupMs = (cfg.warmupS ?? 0) * 1000
  const begin = performance.now() + 100
  const start = begin + warmupMs
  const end = start + durationS * 1000
  let sent = 0
  let maxLagMs = 0
  const measureStart = sleep(start - performance.now()).then(() => emit({ event: 'measure_start' }))
  const senders = []
  for (const clients of byRoom) {
    for (const cl of clients) {
      const text = cl.doc.getText('code')
      const offset = prng.real53(gen) * periodMs
      senders.push((async () => {
        for (let k = 0; ; k++) {
          const due = begin + offset + k * periodMs
          if (due >= end) break
          const wait = due - performance.now()
          if (wait > 0) await sleep(wait)
          const now = performance.now()
          maxLagMs = Math.max(maxLagMs, now - due)
          if (cfg.debugLag && now - due > 50) process.stderr.write(`lag ${Math.round(now - due)} ms at ${Math.round(now - begin)} ms\n`)
          const clock = Y.getState(cl.doc.store, cl.doc.clientID)
          pending.set(`${cl.doc.clientID}:${clock}`, [now, 0, now >= start])
          const pos = prng.uint32(gen, 0, text.length)
          text.insert(pos, ALPHABET[prng.uint32(gen, 0, ALPHABET.length - 1)])
          sent++
        }
      })())
    }
  }
  await Promise.all(senders)
  await measureStart
  emit({ event: 'send_end' })
  const expected = sent * (N - 1)
  const drainUntil = performance.now() + (cfg.drainMs ?? 5000)
  while (delivered < expected && performance.now() < drainUntil) await sleep(20)
  emit({ event: 'measure_end' })
  const cpu = process.cpuUsage(cpu0)
  const wallS = (performance.now() - start) / 1000
  loop.disable()
  gcObserver.disconnect()
  await sleep(cfg.convergeMs ?? 500)
  const diverged = converged(byRoom)
  const closes = byRoom.flat().reduce((a, cl) => a + cl.closes(), 0)
  closeAll(byRoom)
  const lat = summary(latencies)
  if (cfg.debugLag) process.stderr.write('max latency per 250 ms of send time: ' + bins.map((x) => Math.round(x ?? 0)).join(' ') + '\n')
  return {
    sent,
    expected,
    delivered,
    lost: expected - delivered,
    unexpected,
    diverged_rooms: diverged,
    reconnects: closes,
    edits_per_s: sent / (durationS + warmupMs / 1000),
    deliveries_per_s: delivered / (durationS + warmupMs / 1000),
    latency_ms: lat,
    connect_ms: connectMs,
    driver: {
      cpu_pct: 100 * (cpu.user + cpu.system) / 1000 / (wallS * 1000),
      loop_delay_p99_ms: loop.percentile(99) / 1e6,
      max_send_lag_ms: maxLagMs,
      gc
    },
    ok: expected === delivered && diverged === 0 && closes === 0 && sent > 0
  }
}

/** Hold many idle connections: `connections`, `perRoom` a room, for `holdS` seconds. */
async function idle () {
  const rooms = Math.ceil(cfg.connections / cfg.perRoom)
  const roomIds = Array.from({ length: rooms }, (_, r) => `${cfg.roomPrefix}-${r}`)
  const t0 = performance.now()
  const byRoom = await openRooms(roomIds, cfg.perRoom)
  const connectMs = performance.now() - t0
  emit({ event: 'connected', connectMs })
  await sleep((cfg.settleS ?? 3) * 1000)
  emit({ event: 'measure_start' })
  await sleep(cfg.holdS * 1000)
  emit({ event: 'measure_end' })
  const clients = byRoom.flat()
  const connected = clients.filter((cl) => cl.connected()).length
  const closes = clients.reduce((a, cl) => a + cl.closes(), 0)
  closeAll(byRoom)
  return {
    connections: clients.length,
    connected,
    reconnects: closes,
    connect_ms: connectMs,
    ok: connected === clients.length && closes === 0
  }
}

/**
 * A document of `inserts` random-position inserts of `insertLen` characters (seeded), as one
 * update. Cached in the temp dir: building the 100,000-insert one takes seconds.
 */
function bigDocUpdate (inserts, insertLen, seed) {
  const file = join(tmpdir(), `pairpilot-bench-doc-${inserts}x${insertLen}-${seed}.bin`)
  if (existsSync(file)) return new Uint8Array(readFileSync(file))
  const g = prng.create(seed)
  const doc = new Y.Doc()
  const text = doc.getText('code')
  for (let i = 0; i < inserts; i++) text.insert(prng.uint32(g, 0, text.length), prng.word(g, insertLen, insertLen))
  const update = Y.encodeStateAsUpdate(doc)
  writeFileSync(file + '.tmp', update)
  renameSync(file + '.tmp', file)
  return update
}

/** Upload `update` to `room` through a real client and check a second client reads it back. */
async function upload (room, update, expectedLength) {
  const token = cfg.auth ? await signIn(cfg.http, room, 'bench-owner') : null
  const owner = connect(cfg, room, token)
  await owner.synced
  Y.applyUpdate(owner.doc, update) // a local change: the provider sends it as one update
  const checkToken = cfg.auth ? await signIn(cfg.http, room, 'bench-check') : null
  const deadline = performance.now() + 60000
  for (;;) {
    const check = connect(cfg, room, checkToken)
    await check.synced
    const length = check.doc.getText('code').length
    check.destroy()
    if (length === expectedLength) break
    if (performance.now() > deadline) throw new Error(`upload: server has ${length} characters`)
    await sleep(500)
  }
  owner.destroy()
}

/**
 * Cold load: store a 1,000,000-character document, let the server unload it, then time fresh
 * clients joining it (`loads` times; the orchestrator waits for the unload between loads).
 */
async function coldload () {
  const update = bigDocUpdate(cfg.inserts, cfg.insertLen, cfg.docSeed ?? 7)
  const expected = cfg.inserts * cfg.insertLen
  const room = `${cfg.roomPrefix}-0`
  await upload(room, update, expected)
  emit({ event: 'stored', update_bytes: update.length })
  const loads = []
  for (let i = 0; i < cfg.loads; i++) {
    if ((await nextCommand()) !== 'go') throw new Error('orchestrator said stop')
    const token = cfg.auth ? await signIn(cfg.http, room, `bench-load-${i}`) : null
    emit({ event: `load_start_${i}` })
    const t0 = performance.now()
    const cl = connect(cfg, room, token)
    await cl.synced
    const syncedMs = performance.now() - t0
    const length = cl.doc.getText('code').length
    await sleep(cfg.afterSyncMs ?? 300)
    emit({ event: `load_end_${i}`, synced_ms: syncedMs })
    cl.destroy()
    loads.push({ synced_ms: syncedMs, length })
    if (length !== expected) throw new Error(`load ${i}: ${length} characters, expected ${expected}`)
  }
  return { update_bytes: update.length, characters: expected, loads, ok: loads.length === cfg.loads }
}

/**
 * Durability cost: keystroke edits on a 1 MB document at rising rates. After each step the
 * orchestrator crashes the server (SIGKILL, `2 * flushMs` after the last edit) and restarts it;
 * a fresh client then counts the edits that survived. A step that lost edits is where the
 * flush fell behind.
 */
async function durability () {
  const update = bigDocUpdate(cfg.inserts, cfg.insertLen, cfg.docSeed ?? 11)
  const base = cfg.inserts * cfg.insertLen
  const room = `${cfg.roomPrefix}-0`
  await upload(room, update, base)
  // The upload is one 1.4 MB log row, which the server compacts at once (PairPilot merges it in
  // a worker process that it starts first): let that end before the first step is measured.
  await sleep(cfg.settleMs ?? 3000)
  let expected = base
  const steps = []
  for (const [i, rate] of cfg.rates.entries()) {
    const tokens = []
    for (let w = 0; w < cfg.writers; w++) tokens.push(cfg.auth ? await signIn(cfg.http, room, `bench-w${i}-${w}`) : null)
    const writers = tokens.map((token) => connect(cfg, room, token))
    await Promise.all(writers.map((cl) => cl.synced))
    const periodMs = 1000 / (rate / cfg.writers)
    const begin = performance.now() + 100
    const end = begin + cfg.stepS * 1000
    let sent = 0
    let maxLagMs = 0
    // How long each edit took to be stored: PairPilot's "saved" message (auth sub-type 1, the
    // stored state vector) after the flush that wrote it. Each writer's edits wait in order.
    const stored = []
    const unsaved = writers.map(() => [])
    if (cfg.auth) {
      writers.forEach((cl, w) => cl.provider.ws?.addEventListener('message', (event) => {
        const data = new Uint8Array(event.data)
        if (data[0] !== 2 || data[1] !== 1) return
        const clock = Y.decodeStateVector(decoding.readVarUint8Array(decoding.createDecoder(data.subarray(2)))).get(cl.doc.clientID) ?? 0
        const now = performance.now()
        const queue = unsaved[w]
        let n = 0
        while (n < queue.length && queue[n][0] <= clock) stored.push(now - queue[n++][1])
        queue.splice(0, n)
      }))
    }
    emit({ event: `step_start_${i}` })
    const cpu0 = process.cpuUsage()
    await Promise.all(writers.map(async (cl, w) => {
      const text = cl.doc.getText('code')
      const offset = prng.real53(gen) * periodMs
      for (let k = 0; ; k++) {
        const due = begin + offset + k * periodMs
        if (due >= end) break
        const wait = due - performance.now()
        if (wait > 0) await sleep(wait)
        const now = performance.now()
        maxLagMs = Math.max(maxLagMs, now - due)
        text.insert(prng.uint32(gen, 0, text.length), ALPHABET[prng.uint32(gen, 0, ALPHABET.length - 1)])
        unsaved[w].push([Y.getState(cl.doc.store, cl.doc.clientID), now])
        sent++
      }
    }))
    // The driver's own load: a driver short of CPU sends late and in bursts, not at `rate`.
    const cpu = process.cpuUsage(cpu0)
    const sendS = (performance.now() - begin) / 1000
    const driver = { cpu_pct: (cpu.user + cpu.system) / 1e4 / sendS, max_send_lag_ms: maxLagMs }
    emit({ event: `step_end_${i}` })
    expected += sent
    await sleep(2 * cfg.flushMs)
    const saved = { ...summary(stored), unsaved_at_kill: unsaved.reduce((a, q) => a + q.length, 0) }
    emit({ event: `kill_${i}` }) // the orchestrator SIGKILLs and restarts the server, then "go"
    const command = await nextCommand()
    for (const cl of writers) cl.destroy()
    if (command !== 'go') throw new Error(`orchestrator said ${command}`)
    const token = cfg.auth ? await signIn(cfg.http, room, `bench-check-${i}`) : null
    const check = connect(cfg, room, token)
    await check.synced
    const length = check.doc.getText('code').length
    check.destroy()
    const lost = expected - length
    steps.push({ rate, sent, lost, expected, length, driver, saved_ms: saved })
    emit({ event: `checked_${i}`, sent, lost })
    if (lost !== 0) break
    // Later steps start from what survived.
  }
  return { update_bytes: update.length, characters: base, steps, ok: steps.length > 0 }
}

const MODES = { fanout, idle, coldload, durability }

const mode = MODES[cfg.mode]
if (!mode) throw new Error(`unknown mode ${cfg.mode}`)
try {
  const result = await mode()
  Object.assign(result, { timing, api_retries: apiRetries })
  emit({ result })
  process.exit(0)
} catch (err) {
  emit({ result: { ok: false, error: String(err?.stack ?? err) } })
  process.exit(1)
}
