'use strict'
// A payload other decoders give up on (nested 100,000 deep: serde_json stops
// at 128, Go at 10,000, Python's json at about 1,000) never stops the Node
// client: JSON.parse has no nesting limit, so it arrives as data, between
// its neighbours, and the client goes on.
const test = require('node:test')
const assert = require('node:assert/strict')
const { once } = require('node:events')
const WebSocket = require('ws')
const { startServer, client, take } = require('./helpers')

const DEPTH = 100000

/** Sends each payload (raw JSON text) to `to` from a plain WebSocket peer: JSON.stringify cannot encode a payload this deep. */
async function sendRaw (url, to, payloads) {
  const ws = new WebSocket(url)
  const frames = []
  let wake = null
  ws.on('message', (b) => { frames.push(JSON.parse(b.toString())); if (wake) wake() })
  const next = async () => {
    while (frames.length === 0) await new Promise((resolve) => { wake = resolve })
    return frames.shift()
  }
  await once(ws, 'open')
  ws.send(JSON.stringify({ type: 'hello', v: 1, user: 'alice' }))
  assert.equal((await next()).type, 'welcome')
  payloads.forEach((p, i) => ws.send(`{"type":"send","id":${i + 1},"to":${JSON.stringify(to)},"data":${p}}`))
  for (const _ of payloads) assert.equal((await next()).type, 'ok')
  ws.close(1000)
  await once(ws, 'close')
}

/** How deep a nest of one-element arrays goes (without recursion). */
function depth (v) {
  let d = 0
  for (; Array.isArray(v); v = v[0]) d++
  return d
}

test('a payload nested 100,000 deep arrives between its neighbours and the client goes on', { timeout: 30000 }, async (t) => {
  const s = await startServer(t, { limits: { max_json_depth: DEPTH + 1, max_frame_bytes: 1 << 20 } })
  const bob = await client(t, s.url, 'bob')
  const errors = []
  bob.on('error', (e) => errors.push(e))
  await sendRaw(s.url, 'bob', ['1', '['.repeat(DEPTH) + ']'.repeat(DEPTH), '3'])

  const [m1, m2, m3] = await take(bob, 3, 10000)
  assert.deepEqual([m1.seq, m1.data, m2.seq, m3.seq, m3.data], [1, 1, 2, 3, 3])
  assert.equal(depth(m2.data), DEPTH)
  assert.deepEqual(errors, [])

  // Still connected, still acknowledging, still sending and receiving.
  assert.equal(bob.state, 'connected')
  const deadline = Date.now() + 10000
  for (;;) {
    const me = s.sessions().find((x) => x.user === 'bob')
    if (me.connected && me.unacked === 0) break
    assert.ok(Date.now() < deadline, `bob is not acknowledging: ${JSON.stringify(me)}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  await bob.join('g')
  await bob.publish('g', 'after', { echo: true })
  const [after] = await take(bob, 1)
  assert.deepEqual([after.seq, after.data], [4, 'after'])
})
