'use strict'
// The stream for bench/recv.js, in its own process so that it does not
// share the receiver's JavaScript thread: an embedded relay whose host
// publishes to group "bench" when told, staying at most WINDOW messages
// ahead of the slowest member (so the outbox is never overrun).
const readline = require('node:readline')
const { Server } = require('..')

const WINDOW = 8192
const PAYLOAD = { symbol: 'ZRLY', price: 101.25, seq: 0, note: 'sixty-four bytes of payload....' }

async function main () {
  const server = await Server.start({
    server: { listen: '127.0.0.1:0' },
    session: { outbox_messages: 65536, outbox_bytes: 64 << 20 },
    limits: { slow_consumer_bytes: 1 << 30 },
  })
  console.log(server.url)
  const lines = readline.createInterface({ input: process.stdin })
  for await (const line of lines) {
    const [cmd, arg] = line.split(' ')
    if (cmd === 'quit') break
    if (cmd !== 'go') continue
    const n = Number(arg)
    let sent = 0
    while (sent < n) {
      const behind = Math.max(0, ...server.sessions().map((s) => s.unacked))
      const room = Math.min(WINDOW - behind, n - sent)
      for (let i = 0; i < room; i++) server.publish('bench', PAYLOAD)
      sent += Math.max(room, 0)
      if (room <= 0) await new Promise((resolve) => setTimeout(resolve, 1))
      else await new Promise((resolve) => setImmediate(resolve))
    }
    console.log('done')
  }
  await server.close()
  process.stdin.destroy()
}

main()
