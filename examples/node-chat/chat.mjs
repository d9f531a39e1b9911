#!/usr/bin/env node
// A terminal chat on Zerorelay: every line you type goes to the room,
// `/to <user> <text>` sends privately, and what others say is printed.
//
//   node chat.mjs --url ws://127.0.0.1:8080/ws --user alice --room lobby
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { connect } from 'zerorelay'

const { values: args } = parseArgs({
  options: {
    url: { type: 'string', default: 'ws://127.0.0.1:8080/ws' },
    user: { type: 'string' },
    token: { type: 'string' },
    room: { type: 'string', default: 'lobby' },
  },
})

const client = await connect(args.url, { user: args.user, token: args.token })
client.on('disconnected', ({ reason, willRetry }) => console.error(`* disconnected (${reason})${willRetry ? ', reconnecting' : ''}`))
client.on('connected', ({ resumed }) => { if (resumed) console.error('* reconnected, nothing missed') })
client.on('message', (m) => {
  const where = m.kind === 'group' ? `#${m.group}` : m.kind
  console.log(`[${where}] ${m.from ?? 'relay'}: ${typeof m.data?.text === 'string' ? m.data.text : JSON.stringify(m.data)}`)
})
await client.join(args.room)
console.error(`* joined #${args.room} as ${args.user ?? 'anonymous'}`)

const lines = createInterface({ input: process.stdin })
for await (const line of lines) {
  const text = line.trim()
  if (!text) continue
  try {
    const direct = /^\/to (\S+) (.+)$/.exec(text)
    if (direct) await client.send({ to: direct[1] }, { text: direct[2] })
    else await client.publish(args.room, { text })
  } catch (e) {
    console.error(`* ${e.code}: ${e.message}`)
  }
}
// stdin ended: leave cleanly.
await client.close()
