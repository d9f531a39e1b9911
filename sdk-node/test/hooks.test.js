'use strict'
// The host hooks of the embedded relay: `authorize` (asked about what the
// roles allowed) and `validate` (per group pattern: accept, reject or
// rewrite a publish), against real clients.
const test = require('node:test')
const assert = require('node:assert/strict')
const { startServer, client, take } = require('./helpers')

const MEMBER = { allow: ['join:room-*', 'publish:room-*', 'send:*', 'broadcast', 'rpc:*'] }

test('authorize refuses what the roles allow with its own message and allows the rest', async (t) => {
  const asked = []
  const s = await startServer(t, { auth: { roles: { member: MEMBER } }, features: { client_broadcast: true } }, {
    auth: ({ token }) => ({ user: token, roles: ['member'] }),
    rpc: { echo: (data) => data },
    authorize: async (req) => {
      asked.push(req)
      if (req.resource === 'room-secret') return 'room-secret is invite-only'
      if (req.action === 'rpc' && req.user === 'bob') return { allow: false, message: 'no rpc for bob' }
      if (req.action === 'join') return true
    },
  })
  const alice = await client(t, s.url, undefined, { token: 'alice' })
  const bob = await client(t, s.url, undefined, { token: 'bob' })

  await assert.rejects(alice.join('room-secret'), { code: 'forbidden', message: 'room-secret is invite-only' })
  // The roles refuse this one themselves: authorize is not asked.
  await assert.rejects(alice.join('lobby'), { code: 'forbidden' })
  await bob.join('room-1')
  await alice.publish('room-1', 'hi')
  await alice.send({ to: 'bob' }, 'psst')
  await alice.broadcast('everyone')
  assert.equal(await alice.rpc('echo', 7), 7)
  await assert.rejects(bob.rpc('echo', 1), { code: 'forbidden', message: 'no rpc for bob' })

  const got = await take(bob, 3)
  assert.deepEqual(got.map((m) => m.data), ['hi', 'psst', 'everyone'])
  assert.deepEqual(asked.map((r) => [r.user, r.action, r.resource]), [
    ['alice', 'join', 'room-secret'],
    ['bob', 'join', 'room-1'],
    ['alice', 'publish', 'room-1'],
    ['alice', 'send', 'user:bob'],
    ['alice', 'broadcast', null],
    ['alice', 'rpc', 'echo'],
    ['bob', 'rpc', 'echo'],
  ])
  assert.deepEqual(asked[0].roles, ['member'])
  assert.equal(asked[0].claims, null)
  assert.deepEqual(s.groups().map((g) => g.name), ['room-1'])
})

test('an authorize function that throws fails only that request with internal and the connection carries on', async (t) => {
  const s = await startServer(t, {}, {
    rpc: { ping: () => 'pong' },
    authorize: (req) => {
      if (req.resource === 'room-boom') throw new Error('the policy store is down')
      if (req.resource === 'room-odd') return 42
      if (req.resource === 'ping' && req.user === 'alice') return Promise.reject(new Error('async failure'))
      return true
    },
  })
  const alice = await client(t, s.url, 'alice')
  const bob = await client(t, s.url, 'bob')
  const session = alice.session
  let drops = 0
  alice.on('disconnected', () => { drops++ })
  await bob.join('room-1')

  await assert.rejects(alice.publish('room-boom', 1), { code: 'internal' })
  await assert.rejects(alice.join('room-odd'), { code: 'internal' })
  await assert.rejects(alice.rpc('ping'), { code: 'internal' })
  assert.equal(await bob.rpc('ping'), 'pong')
  await alice.publish('room-1', 'still here')

  const [m] = await take(bob, 1)
  assert.equal(m.data, 'still here')
  assert.equal(alice.state, 'connected')
  assert.equal(alice.session, session)
  assert.equal(drops, 0)
})

test('validate rewrites a payload for the subscribers and rejects others with their codes', async (t) => {
  const seen = []
  const s = await startServer(t, {}, {
    validate: {
      'chat-*': async (data, context) => {
        seen.push(context)
        if (data.text === 'spam') return 'no spam here'
        if (data.text === 'nope') return false
        if (data.text === 'secret') return { reject: { code: 'forbidden', message: 'not in this room' } }
        if (data.text.includes('<')) return { rewrite: { text: data.text.replace(/<[^>]*>/g, '') } }
      },
    },
  })
  const alice = await client(t, s.url, 'alice')
  const bob = await client(t, s.url, 'bob')
  await bob.join('chat-1')
  await bob.join('room-1')

  await alice.publish('chat-1', { text: '<b>hi</b>' })
  await assert.rejects(alice.publish('chat-1', { text: 'spam' }), { code: 'bad_request', message: 'no spam here' })
  await assert.rejects(alice.publish('chat-1', { text: 'nope' }), { code: 'bad_request' })
  await assert.rejects(alice.publish('chat-1', { text: 'secret' }), { code: 'forbidden', message: 'not in this room' })
  await alice.publish('chat-1', { text: 'plain' })
  // No pattern matches room-1: its payloads are not validated.
  await alice.publish('room-1', { text: '<i>as sent</i>' })

  const got = await take(bob, 3)
  assert.deepEqual(got.map((m) => [m.group, m.data]), [
    ['chat-1', { text: 'hi' }],
    ['chat-1', { text: 'plain' }],
    ['room-1', { text: '<i>as sent</i>' }],
  ])
  assert.equal(seen.length, 5)
  assert.deepEqual(seen[0], { group: 'chat-1', user: 'alice', session: alice.session, claims: null })
})

test('a validate function slower than limits.validate_timeout_ms fails that publish with internal and the next one is delivered', async (t) => {
  let release
  const gate = new Promise((resolve) => { release = resolve })
  t.after(() => release())
  const s = await startServer(t, { limits: { validate_timeout_ms: 200 } }, {
    validate: {
      'chat-*': async (data) => {
        if (data === 'slow') await gate
      },
    },
  })
  const alice = await client(t, s.url, 'alice')
  const bob = await client(t, s.url, 'bob')
  await bob.join('chat-1')

  await assert.rejects(alice.publish('chat-1', 'slow'), { code: 'internal' })
  await alice.publish('chat-1', 'quick')
  // The late answer changes nothing: the slow payload never arrives.
  release()
  await alice.publish('chat-1', 'last')

  const got = await take(bob, 2)
  assert.deepEqual(got.map((m) => m.data), ['quick', 'last'])
  assert.equal(alice.state, 'connected')
})

test('hooks are checked when the server starts', async (t) => {
  const { Server } = require('..')
  await assert.rejects(Server.start({}, { authorize: 'yes' }), { code: 'invalid_argument', message: /authorize must be a function/ })
  await assert.rejects(Server.start({}, { validate: { 'chat-*': {} } }), { code: 'invalid_argument', message: /validate\.chat-\* must be a function/ })
  await assert.rejects(Server.start({}, { validate: { 'chat-{room}': () => true } }), { code: 'invalid_argument', message: /validator pattern/ })
})
