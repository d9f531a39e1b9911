'use strict'
// The per-request `resend` option across a lost session: an rpc the relay
// has routed (its handler holds it) is pending when the connection is cut
// and the session ended on the relay; the client's reconnect gets a new
// session. Without `resend` the call rejects with `unknown_outcome` and is
// not called again; with it, it is sent again (the handler sees it twice)
// and answered.
const test = require('node:test')
const assert = require('node:assert/strict')
const { startServer, client, waitFor, take, proxy } = require('./helpers')

/** Waits (bounded) until `pred()` holds, checking every 10 ms. */
async function until (pred, what, ms = 10000) {
  const deadline = Date.now() + ms
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

test('a pending rpc fails with unknown_outcome when the session is lost, unless it was made with resend', async (t) => {
  const seen = new Map()
  const calls = []
  let release
  const released = new Promise((resolve) => { release = resolve })
  const s = await startServer(t, {}, {
    rpc: {
      hold: (data) => {
        seen.set(data, (seen.get(data) || 0) + 1)
        calls.push(data)
        // The first call of each (but the marker) is held until the test
        // ends: its answer never reaches the client.
        if (seen.get(data) === 1 && data !== 'marker') return released.then(() => data)
        return data
      },
    },
  })
  t.after(() => release())
  const p = await proxy(t, s.address)
  const c = await client(t, p.url, 'alice', { requestTimeoutMs: 60000 })
  const old = c.session

  const lost = c.rpc('hold', 'lost').then(() => null, (e) => e)
  const kept = c.rpc('hold', 'kept', { resend: true })
  await until(() => calls.length === 2, 'both calls reach the handler')
  assert.deepEqual([...calls].sort(), ['kept', 'lost'])

  // Both were routed. Cut the connection, then end the session on the
  // relay (as when it expires), so that the reconnect cannot resume it.
  const disconnected = waitFor(c, 'disconnected', () => true, 10000)
  p.setDown(true)
  await disconnected
  assert.equal(s.disconnect(old), true)
  await until(() => s.sessions().length === 0, 'the session ends')
  const connected = waitFor(c, 'connected', () => true, 10000)
  p.setDown(false)
  const e = await connected
  assert.equal(e.resumed, false)
  assert.equal(e.lostSession, old)

  const err = await lost
  assert.ok(err, 'the default call must not succeed')
  assert.equal(err.name, 'ZerorelayError')
  assert.equal(err.code, 'unknown_outcome')
  assert.equal(await kept, 'kept')
  // A marker after everything the reconnect re-sent.
  assert.equal(await c.rpc('hold', 'marker'), 'marker')
  assert.deepEqual(Object.fromEntries(seen), { lost: 1, kept: 2, marker: 1 })
})

test('resend is accepted by publish, send, broadcast and rpc, and must be a boolean', async (t) => {
  const s = await startServer(t, { features: { client_broadcast: true }, limits: { broadcast_per_sec: 100 } }, { rpc: { echo: (d) => d } })
  const a = await client(t, s.url, 'alice')
  const b = await client(t, s.url, 'bob')
  await b.join('room')
  const message = 'option resend must be a boolean'
  for (const bad of [1, 'yes', null, {}]) {
    const ops = [
      ['publish', () => a.publish('room', 'x', { resend: bad })],
      ['publish with echo', () => a.publish('room', 'x', { echo: true, resend: bad })],
      ['send to a user', () => a.send({ to: 'bob' }, 'x', { resend: bad })],
      ['send to a session', () => a.send({ session: b.session }, 'x', { resend: bad })],
      ['broadcast', () => a.broadcast('x', { resend: bad })],
      ['rpc', () => a.rpc('echo', 'x', { resend: bad })],
    ]
    for (const [op, call] of ops) {
      await assert.rejects(call(), { name: 'ZerorelayError', code: 'invalid_argument', message }, `${op} ${JSON.stringify(bad)}`)
    }
  }
  for (const resend of [true, false, undefined]) {
    await a.publish('room', 'p', { resend })
    await a.send({ to: 'bob' }, 'u', { resend })
    await a.send({ session: b.session }, 's', { resend })
    await a.broadcast('b', { resend })
    assert.deepEqual((await take(b, 4)).map((m) => m.data), ['p', 'u', 's', 'b'])
    assert.equal(await a.rpc('echo', 'r', { resend }), 'r')
  }
})
