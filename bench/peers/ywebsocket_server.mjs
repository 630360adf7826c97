// The reference Node server (@y/websocket-server, the release that works with yjs 13), as its own
// bin/server.js runs it, on 127.0.0.1:<port>. Usage: node peers/ywebsocket_server.mjs <port>
// With BENCH_STORE=memory, rooms are stored on last disconnect and unloaded (through the
// server's own setPersistence hook), so that a later join is a cold load from stored bytes.
import http from 'node:http'
import { createRequire } from 'node:module'
import * as Y from 'yjs'
import { setupWSConnection, setPersistence } from '@y/websocket-server/utils'

// The ws release the reference server itself depends on (its bin/server.js imports it).
const require = createRequire(import.meta.resolve('@y/websocket-server/package.json'))
const { Server: WebSocketServer } = require('ws')

const port = Number(process.argv[2] ?? 1234)

if (process.env.BENCH_STORE === 'memory') {
  const stored = new Map()
  setPersistence({
    provider: null,
    bindState: async (name, doc) => {
      const bytes = stored.get(name)
      if (bytes) Y.applyUpdate(doc, bytes)
    },
    writeState: async (name, doc) => {
      stored.set(name, Y.encodeStateAsUpdate(doc))
    }
  })
}

const wss = new WebSocketServer({ noServer: true })
wss.on('connection', setupWSConnection)
const server = http.createServer((_req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain' })
  res.end('okay')
})
server.on('upgrade', (req, socket, head) => {
  wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req))
})
server.listen(port, '127.0.0.1', () => console.log(`y-websocket-server on 127.0.0.1:${port}`))
