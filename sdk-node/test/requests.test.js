'use strict'
// The client's request methods: each checks its arguments by name (in
// JavaScript, or in the engine for what the protocol decides, such as which
// names are valid), and none of them writes a protocol frame itself.
const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { startServer, client, take } = require('./helpers')

const BAD_NAME = /^`(group|to|method)` has a character outside A-Z a-z 0-9 _ - \. : @ \/ at byte 3$/

test('each request method refuses arguments of the wrong type by name, and the client keeps working', async (t) => {
  const s = await startServer(t, { features: { client_broadcast: true } })
  const a = await client(t, s.url, 'alice')
  const b = await client(t, s.url, 'bob')
  await b.join('room')
  const target = 'send target must be { to: user } or { session: id }'
  const cases = [
    ['join', () => a.join(42), 'group must be a string'],
    ['join', () => a.join(undefined, { presence: true }), 'group must be a string'],
    ['leave', () => a.leave(null), 'group must be a string'],
    ['presence', () => a.presence({ group: 'room' }), 'group must be a string'],
    ['publish', () => a.publish(['room'], 'x'), 'group must be a string'],
    ['publish', () => a.publish('room', undefined), 'data is not JSON-serializable (undefined)'],
    ['broadcast', () => a.broadcast(undefined), 'data is not JSON-serializable (undefined)'],
    ['send', () => a.send(null, 'x'), target],
    ['send', () => a.send({ to: 7 }, 'x'), target],
    ['send', () => a.send({ session: 7 }, 'x'), target],
    ['send', () => a.send({}, 'x'), target],
    ['send', () => a.send({ to: 'bob' }, undefined), 'data is not JSON-serializable (undefined)'],
    ['send', () => a.send({ session: b.session }, undefined), 'data is not JSON-serializable (undefined)'],
    ['rpc', () => a.rpc(undefined), 'method must be a string'],
    ['rpc', () => a.rpc(Symbol('m')), 'method must be a string'],
  ]
  for (const [op, call, message] of cases) {
    await assert.rejects(call(), { name: 'ZerorelayError', code: 'invalid_argument', message }, op)
  }
  await a.publish('room', 'still fine')
  assert.equal((await take(b, 1))[0].data, 'still fine')
})

test('names the protocol refuses are refused by the engine, for every request that carries one', async (t) => {
  const s = await startServer(t)
  const a = await client(t, s.url, 'alice')
  const b = await client(t, s.url, 'bob')
  const cases = [
    ['join', () => a.join('bad name'), BAD_NAME],
    ['join with presence', () => a.join('bad name', { presence: true }), BAD_NAME],
    ['leave', () => a.leave('bad name'), BAD_NAME],
    ['presence', () => a.presence('bad name'), BAD_NAME],
    ['publish', () => a.publish('bad name', 1), BAD_NAME],
    ['send to a user', () => a.send({ to: 'bad name' }, 1), BAD_NAME],
    ['send to a session', () => a.send({ session: '' }, 1), /^`session` must be a session id of 1 to 128 bytes$/],
    ['rpc', () => a.rpc('bad name', 1), BAD_NAME],
  ]
  for (const [op, call, message] of cases) {
    await assert.rejects(call(), { name: 'ZerorelayError', code: 'invalid_argument', message }, op)
  }
  await a.send({ to: 'bob' }, 'after')
  assert.equal((await take(b, 1))[0].data, 'after')
})

test('a payload that is not JSON-serializable is refused by every request that carries one', async (t) => {
  const s = await startServer(t, { features: { client_broadcast: true } }, { rpc: { echo: (d) => d } })
  const a = await client(t, s.url, 'alice')
  const b = await client(t, s.url, 'bob')
  await b.join('room')
  const circular = {}
  circular.self = circular
  const payloads = [
    [10n, /^data is not JSON-serializable: Do not know how to serialize a BigInt$/],
    [circular, /^data is not JSON-serializable: Converting circular structure to JSON/],
    [{ toJSON () { throw new Error('no JSON for you') } }, /^data is not JSON-serializable: no JSON for you$/],
    [() => 1, /^data is not JSON-serializable \(function\)$/],
    [Symbol('s'), /^data is not JSON-serializable \(symbol\)$/],
  ]
  const ops = {
    publish: (d) => a.publish('room', d),
    broadcast: (d) => a.broadcast(d),
    'send to a user': (d) => a.send({ to: 'bob' }, d),
    'send to a session': (d) => a.send({ session: b.session }, d),
    rpc: (d) => a.rpc('echo', d),
  }
  for (const [op, call] of Object.entries(ops)) {
    for (const [data, message] of payloads) {
      await assert.rejects(call(data), { name: 'ZerorelayError', code: 'invalid_argument', message }, op)
    }
  }
  // Nothing was sent; what comes next is.
  assert.deepEqual(await a.rpc('echo', { ok: [1] }), { ok: [1] })
  await a.publish('room', 'next')
  assert.equal((await take(b, 1))[0].data, 'next')
})

test('every request method reaches the relay through the engine', async (t) => {
  const s = await startServer(t, { features: { client_broadcast: true } }, { rpc: { echo: (d) => d, none: () => undefined } })
  const a = await client(t, s.url, 'alice')
  const b = await client(t, s.url, 'bob')
  await a.join('room', { presence: true })
  await b.join('room')
  assert.deepEqual(await b.presence('room'), { group: 'room', members: [{ user: 'alice', sessions: 1 }, { user: 'bob', sessions: 1 }], anonymous: 0 })
  await b.publish('room', { p: 1 }, { echo: true })
  await b.broadcast('all', { echo: false })
  await b.send({ to: 'alice' }, 'user')
  await b.send({ session: a.session }, 'session')
  const got = await take(a, 4)
  assert.deepEqual(got.map((m) => [m.kind, m.data]), [['group', { p: 1 }], ['broadcast', 'all'], ['direct', 'user'], ['direct', 'session']])
  assert.deepEqual((await take(b, 1))[0].data, { p: 1 }, 'echo')
  assert.deepEqual(await b.rpc('echo', [1, 'two', { three: null }]), [1, 'two', { three: null }])
  assert.equal(await b.rpc('echo'), null)
  assert.equal(await b.rpc('none'), null)
  assert.equal(await b.leave('room'), undefined)
  assert.deepEqual((await b.presence('room')).members, [{ user: 'alice', sessions: 1 }])
})

test('the SDK writes no protocol frame: the engine builds them', () => {
  const lib = path.join(__dirname, '..', 'lib')
  const frameTypes = 'hello|resume|join|leave|presence|publish|send|broadcast|rpc|ack|ping|pong|refresh'
  const patterns = [/"type"\s*:/, /\\"type\\"/, new RegExp(`\\btype\\s*:\\s*['"\`](${frameTypes})['"\`]`)]
  for (const file of fs.readdirSync(lib)) {
    const text = fs.readFileSync(path.join(lib, file), 'utf8')
    for (const p of patterns) assert.doesNotMatch(text, p, `lib/${file}`)
  }
  const native = require('../native/index.js')
  assert.equal(native.NativeClient.prototype.request, undefined, 'the generic JSON request entry point is gone')
})
