// Real Yjs clients for the load driver: y-websocket's WebsocketProvider (PairPilot, the reference
// Node server, pycrdt-websocket) or Hocuspocus' own provider (a plain y-websocket client cannot
// talk to Hocuspocus). Identity: PairPilot's anonymous sign-in + join, when the server has it.
import { Agent, request as httpRequest } from 'node:http'
import WebSocket from 'ws'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { HocuspocusProvider } from '@hocuspocus/provider'

let warnedNoAuth = false
/** Sign-in/join calls answered 429 or 5xx and retried (reported with every result). */
export const apiRetries = { count: 0, statuses: {} }

// node:http rather than fetch: undici's fetch leaves state behind (a development run measured the
// driver's young-generation GC pauses at 2-3x for the rest of the run after 1,000 fetches, whatever
// server the load then went to), and the driver's pauses land in every server's latency tail.
const agent = new Agent({ keepAlive: true, maxSockets: 16 })

/** One POST; resolves with { status, ok, body } once the whole response is read. */
function request (url, { headers, body }) {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: 'POST', headers, agent }, (res) => {
      const chunks = []
      res.on('data', (c) => chunks.push(c))
      res.on('end', () => {
        const status = res.statusCode ?? 0
        resolve({ status, ok: status >= 200 && status < 300, body: Buffer.concat(chunks).toString() })
      })
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(body)
  })
}

/** POST with at most 5 tries on 429/5xx (backoff 100 ms doubling): counted, never hidden. */
async function post (url, init) {
  for (let attempt = 0; ; attempt++) {
    const res = await request(url, init)
    if ((res.status !== 429 && res.status < 500) || attempt === 4) return res
    apiRetries.count++
    apiRetries.statuses[res.status] = (apiRetries.statuses[res.status] ?? 0) + 1
    await new Promise((resolve) => setTimeout(resolve, 100 * 2 ** attempt))
  }
}

/** Sign in anonymously and join the room; null (one warning line) where the API is missing. */
export async function signIn (http, room, name) {
  const res = await post(`${http}/api/auth/anonymous`, {
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name })
  })
  if (res.status === 404) {
    if (!warnedNoAuth) {
      warnedNoAuth = true
      process.stderr.write('warning: /api/auth/anonymous answers 404; connecting without a token\n')
    }
    return null
  }
  if (!res.ok) throw new Error(`anonymous sign-in: HTTP ${res.status}`)
  const token = JSON.parse(res.body).access_token
  const join = await post(`${http}/api/rooms/${room}/join`, {
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: '{}'
  })
  if (!join.ok) throw new Error(`join ${room}: HTTP ${join.status}`)
  return token
}

/**
 * One client: its own Y.Doc and connection. `synced` resolves on the first sync with the server.
 */
export function connect (cfg, room, token, doc = new Y.Doc()) {
  let resolveSynced
  let rejectSynced
  const synced = new Promise((resolve, reject) => { resolveSynced = resolve; rejectSynced = reject })
  const timer = setTimeout(() => rejectSynced(new Error(`sync timeout in ${room}`)), cfg.syncTimeoutMs ?? 60000)
  const done = () => { clearTimeout(timer); resolveSynced() }
  let provider
  let closed = 0
  if (cfg.kind === 'hocuspocus') {
    provider = new HocuspocusProvider({
      url: cfg.url,
      name: room,
      document: doc,
      WebSocketPolyfill: WebSocket,
      token: token ?? 'bench',
      onSynced: ({ state }) => { if (state) done() },
      onClose: () => { closed++ }
    })
  } else {
    provider = new WebsocketProvider(cfg.url, room, doc, {
      WebSocketPolyfill: WebSocket,
      disableBc: true,
      params: token ? { token } : {}
    })
    provider.on('sync', (state) => { if (state) done() })
    provider.on('connection-close', () => { closed++ })
  }
  return {
    doc,
    provider,
    synced,
    closes: () => closed,
    connected: () => cfg.kind === 'hocuspocus'
      ? provider.configuration.websocketProvider.status === 'connected'
      : provider.wsconnected,
    destroy: () => { clearTimeout(timer); provider.destroy() }
  }
}
