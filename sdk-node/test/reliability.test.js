'use strict'
const test = require('node:test')
const assert = require('node:assert/strict')
const { connect } = require('..')
const { startServer, client, waitFor, take, collect, proxy } = require('./helpers')

test('a forced disconnect resumes the session and loses nothing', async (t) => {
  const s = await startServer(t)
  const a = await client(t, s.url, 'alice')
  const b = await client(t, s.url, 'bob')
  await b.join('room')
  const session = b.session
  const disconnected = waitFor(b, 'disconnected')
  const resumed = waitFor(b, 'connected', (e) => e.resumed)
  assert.equal(s.dropConnection(session), true)
  await disconnected
  for (let i = 0; i < 50; i++) await a.publish('room', i)
  await resumed
  assert.equal(b.session, session)
  const got = await take(b, 50)
  assert.deepEqual(got.map((m) => m.data), [...Array(50).keys()])
  assert.deepEqual(await collect(b, 150), [], 'nothing is delivered twice')
})

test('a session ended by the host closes the client for good', async (t) => {
  const s = await startServer(t)
  const a = await connect(s.url, { user: 'alice' })
  const closed = waitFor(a, 'closed')
  assert.equal(s.disconnect(a.session), true)
  assert.match((await closed).reason, /disconnected by the host/)
  assert.equal(a.state, 'closed')
  await assert.rejects(a.publish('room', 1), { code: 'closed' })
  await a.close()
})

test('revoking a user or a session closes its clients for good with 4006', async (t) => {
  const s = await startServer(t)
  const a1 = await connect(s.url, { user: 'alice' })
  const a2 = await connect(s.url, { user: 'alice' })
  const b = await connect(s.url, { user: 'bob' })
  const closed = [a1, a2, b].map((c) => waitFor(c, 'closed'))
  assert.equal(s.revokeUser('alice'), 2)
  assert.equal(s.revokeSession(b.session), true)
  for (const e of await Promise.all(closed)) assert.match(e.reason, /revoked/)
  for (const c of [a1, a2, b]) {
    assert.equal(c.state, 'closed')
    await assert.rejects(c.publish('room', 1), { code: 'closed' })
    await c.close()
  }
  assert.equal(s.sessions().length, 0, 'revoked sessions end at once')
  assert.equal(s.revokeSession('s_nope'), false)
  assert.equal(s.revokeUser('nobody'), 0)
})

test('requests made while offline wait in the queue and are sent in order', async (t) => {
  const s = await startServer(t)
  const sub = await client(t, s.url, 'sub')
  await sub.join('g')
  const p = await proxy(t, s.address)
  const pub = await client(t, p.url, 'pub')
  const down = waitFor(pub, 'disconnected')
  p.setDown(true)
  await down
  const sent = [0, 1, 2].map((i) => pub.publish('g', i))
  assert.deepEqual(await collect(sub, 200), [])
  p.setDown(false)
  await Promise.all(sent)
  assert.deepEqual((await take(sub, 3)).map((m) => m.data), [0, 1, 2])
})

test('a client started before the relay is reachable flushes its queue on connect', async (t) => {
  const s = await startServer(t)
  const sub = await client(t, s.url, 'sub')
  await sub.join('g')
  const p = await proxy(t, s.address)
  p.setDown(true)
  const pub = await client(t, p.url, 'pub', { waitForConnection: false })
  assert.equal(pub.state, 'connecting')
  const sent = pub.publish('g', 'queued')
  await new Promise((resolve) => setTimeout(resolve, 100))
  p.setDown(false)
  await sent
  assert.equal((await take(sub, 1))[0].data, 'queued')
})

test('a full offline queue fails fast with queue_full', async (t) => {
  const s = await startServer(t)
  const p = await proxy(t, s.address)
  const c = await client(t, p.url, 'alice', { offlineQueue: { maxMessages: 1, whenFull: 'failFast' } })
  const down = waitFor(c, 'disconnected')
  p.setDown(true)
  await down
  const first = c.join('a')
  await assert.rejects(c.join('b'), { code: 'queue_full' })
  p.setDown(false)
  await first
})

test('an AbortSignal cancels a queued request, which is then never sent', async (t) => {
  const s = await startServer(t)
  const sub = await client(t, s.url, 'sub')
  await sub.join('g')
  const p = await proxy(t, s.address)
  const pub = await client(t, p.url, 'pub')
  const down = waitFor(pub, 'disconnected')
  p.setDown(true)
  await down
  const ac = new AbortController()
  const pending = pub.publish('g', 'never', { signal: ac.signal })
  ac.abort()
  await assert.rejects(pending, { name: 'AbortError', code: 'cancelled' })
  await assert.rejects(pub.publish('g', 'x', { signal: AbortSignal.abort() }), { name: 'AbortError' })
  p.setDown(false)
  await pub.publish('g', 'after')
  assert.deepEqual((await take(sub, 1)).map((m) => m.data), ['after'])
  assert.deepEqual(await collect(sub, 100), [])
})

test('a token provider is asked on every connection', async (t) => {
  let asked = 0
  const s = await startServer(t, {}, {
    auth: ({ token }) => (token === 'good' ? { user: 'alice' } : null),
  })
  const c = await client(t, s.url, undefined, {
    tokenProvider: async () => { asked++; return { token: 'good', expiresInMs: 60000 } },
  })
  assert.equal(asked, 1)
  const resumed = waitFor(c, 'connected', (e) => e.resumed)
  s.dropConnection(c.session)
  await resumed
  assert.equal(asked, 2)
})

test('a failing token provider is retried with backoff and reported, not a crash', async (t) => {
  const s = await startServer(t, {}, { auth: ({ token }) => (token ? 'u' : null) })
  let fail = true
  const c = await client(t, s.url, undefined, {
    waitForConnection: false,
    tokenProvider: () => {
      if (fail) throw new Error('vault is down')
      return 'fine'
    },
  })
  const d = await waitFor(c, 'disconnected')
  assert.equal(d.reason, 'token provider failed: vault is down')
  assert.equal(d.willRetry, true)
  fail = false
  await waitFor(c, 'connected')
})
