'use strict'
const test = require('node:test')
const assert = require('node:assert/strict')
const { connect } = require('..')
const { startServer, client, take } = require('./helpers')

test('a JavaScript auth callback decides who connects and as whom', async (t) => {
  const seen = []
  const s = await startServer(t, {}, {
    auth: async (credentials) => {
      seen.push(credentials)
      await new Promise((resolve) => setTimeout(resolve, 5))
      if (credentials.token === 'tok-alice') return 'alice'
      if (credentials.token === 'tok-bob') return { user: 'bob', expiresInMs: 60000 }
      return null
    },
  })
  const a = await client(t, s.url, undefined, { token: 'tok-alice', clientName: 'tests/1' })
  const b = await client(t, s.url, undefined, { token: 'tok-bob' })
  assert.equal(seen[0].token, 'tok-alice')
  assert.equal(seen[0].client, 'tests/1')
  assert.match(seen[0].remote, /^127\.0\.0\.1:\d+$/)
  await a.send({ to: 'bob' }, 'hi')
  const [m] = await take(b, 1)
  assert.equal(m.from, 'alice')
})

test('a refusal, a throw and a bad answer are all unauthorized', async (t) => {
  const s = await startServer(t, {}, {
    auth: ({ token }) => {
      if (token === 'throw') throw new Error('db down')
      if (token === 'bad') return 42
      if (token === 'bad-user') return 'not a name'
      return false
    },
  })
  for (const token of ['nope', 'throw', 'bad', 'bad-user']) {
    await assert.rejects(
      connect(s.url, { token, connectTimeoutMs: 2000 }),
      (e) => e.code === 'unauthorized',
      token,
    )
  }
  // The relay is unaffected.
  const s2 = await client(t, s.url, undefined, { token: 'nope' }).catch((e) => e)
  assert.equal(s2.code, 'unauthorized')
  // The client gives up as soon as it reads the refusal; the relay's side
  // of the connection ends when the close handshake completes, a moment
  // later. Every refused connection is released (bounded wait).
  const until = Date.now() + 5000
  while (s.stats().connections_open !== 0 && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 10))
  assert.equal(s.stats().connections_open, 0)
})
