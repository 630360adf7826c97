// Real Yjs clients for the load driver: y-websocket's WebsocketProvider (PairPilot, the reference
// Node server, pycrdt-websocket) or Hocuspocus' own provider (a plain y-websocket client cannot
// talk to Hocuspocus). Identity: PairPilot's anonymous sign-in + join, when the server has it.
import WebSocket from 'ws'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { HocuspocusProvider } from '@hocuspocus/provider'

let warnedNoAuth = false
/** Sign-in/join calls answered 429 or 5xx and retried (reported with every result). */
export const apiRetries = { count: 0, statuses: {} }

/** POST with at most 5 tries on 429/5xx (backoff 100 ms doubling): counted, never hidden. */
async function post (url, init) {
  for (let attempt = 0; ; attempt++) {
    const res = await fetch(url, { method: 'POST', ...init })
    if ((res.status !== 429 && res.status < 500) || attempt === 4) return res
    apiRetries.count++
    apiRetries.statuses[res.status] = (apiRetries.statuses[res.status] ?? 0) + 1
    await res.arrayBuffer()
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
  const token = (await res.json()).access_token
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
