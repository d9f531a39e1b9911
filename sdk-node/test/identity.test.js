'use strict'
// Identity from the relay's own configuration: short-lived JWTs kept fresh
// by the token provider, and roles answered by a JavaScript auth callback.
const test = require('node:test')
const assert = require('node:assert/strict')
const crypto = require('node:crypto')
const { setTimeout: sleep } = require('node:timers/promises')
const { startServer, client, take } = require('./helpers')

const SECRET = 'a-test-secret-that-is-long-enough-for-hs256'

/** Resolves once `check()` holds, polling; fails after `ms`. */
async function until (check, ms, what) {
  for (const deadline = Date.now() + ms; !check();) {
    if (Date.now() > deadline) throw new Error(`no ${what} within ${ms} ms`)
    await sleep(20)
  }
}

/** A JWT signed with HMAC-SHA256, from Node's crypto alone. */
function hs256 (secret, claims) {
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url')
  const signed = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`
  return `${signed}.${crypto.createHmac('sha256', secret).update(signed).digest('base64url')}`
}

test('a token provider keeps one session alive across expiring JWTs', async (t) => {
  const s = await startServer(t, { auth: { jwt: { secret: SECRET, leeway_s: 0 } } })
  const expiries = []
  const c = await client(t, s.url, undefined, {
    // A plain token: it does not say how long it is valid, so only the
    // relay's refresh_required makes the client ask again. `exp` is whole
    // seconds, rounded up so that each token lives two seconds or more: the
    // relay's notice comes a tenth of the lifetime ahead of expiry, and
    // rounding down would leave tokens of barely one second and a notice
    // only ~110 ms ahead: a stall that long would let one lapse.
    tokenProvider: () => {
      expiries.push(Math.ceil(Date.now() / 1000) + 2)
      return hs256(SECRET, { sub: 'alice', exp: expiries.at(-1) })
    },
  })
  const session = c.session
  assert.deepEqual(s.sessions().map((x) => [x.id, x.user]), [[session, 'alice']])
  const trouble = []
  for (const event of ['disconnected', 'reconnecting', 'error']) {
    c.on(event, (e) => trouble.push([event, e]))
  }
  // The first welcome's event may still be on its way; a resume would be
  // a second one.
  const welcomes = []
  c.on('connected', (e) => welcomes.push(e))
  // Three expiries: the first three tokens each replaced by the next one
  // before it ran out (about 6.5 s).
  await until(() => expiries.length >= 4, 20000, 'a fourth token')
  await until(() => Date.now() / 1000 > expiries[2], 5000, 'the third expiry')
  await c.join('room')
  await c.publish('room', 'still here', { echo: true })
  const [m] = await take(c, 1)
  assert.deepEqual([m.data, m.from], ['still here', 'alice'])
  assert.deepEqual(trouble, [])
  assert.ok(welcomes.length <= 1 && welcomes.every((e) => e.session === session && !e.resumed), JSON.stringify(welcomes))
  assert.equal(c.state, 'connected')
  assert.equal(c.session, session)
  assert.deepEqual(s.sessions().map((x) => [x.id, x.connected]), [[session, true]])
})

test('roles answered by the auth callback decide what a connection may join', async (t) => {
  const s = await startServer(t, { auth: { roles: { member: { allow: ['join:room-*'] } } } }, {
    auth: ({ token }) => {
      if (token === 'member') return { user: 'alice', roles: ['member'] }
      if (token === 'nobody') return { user: 'bob' }
      return null
    },
  })
  const member = await client(t, s.url, undefined, { token: 'member' })
  await member.join('room-1')
  await assert.rejects(member.join('lobby'), { code: 'forbidden' })
  // Without roles in the answer nothing is allowed: the role above came
  // from the callback.
  const nobody = await client(t, s.url, undefined, { token: 'nobody' })
  await assert.rejects(nobody.join('room-1'), { code: 'forbidden' })
  assert.deepEqual(s.groups().map((g) => [g.name, g.members]), [['room-1', 1]])
})
