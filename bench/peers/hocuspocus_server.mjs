// Hocuspocus (@hocuspocus/server) on 127.0.0.1:<port>, no extensions, quiet.
// Usage: node peers/hocuspocus_server.mjs <port>. Clients: @hocuspocus/provider (a plain
// y-websocket client cannot talk to it). With BENCH_STORE=memory documents are stored through
// Hocuspocus' own onStoreDocument hook and loaded back through onLoadDocument, so that a join
// after the document was unloaded is a cold load from stored bytes.
import { Server } from '@hocuspocus/server'
import * as Y from 'yjs'

const port = Number(process.argv[2] ?? 1234)
const stored = new Map()
const store = process.env.BENCH_STORE === 'memory'
  ? {
      async onLoadDocument ({ documentName, document }) {
        const bytes = stored.get(documentName)
        if (bytes) Y.applyUpdate(document, bytes)
        return document
      },
      async onStoreDocument ({ documentName, document }) {
        stored.set(documentName, Y.encodeStateAsUpdate(document))
      }
    }
  : {}

const server = new Server({
  port,
  address: '127.0.0.1',
  quiet: true,
  websocketOptions: { perMessageDeflate: false, maxPayload: 16 * 1024 * 1024 },
  ...store
})
await server.listen()
console.log(`hocuspocus on 127.0.0.1:${port}`)
