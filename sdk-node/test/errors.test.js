'use strict'
const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { connect, ZerorelayError, PROTOCOL_CODES, CLIENT_CODES, Server } = require('..')
const { startServer, client, take } = require('./helpers')

test('every code of the protocol vectors is known to the SDK', () => {
  const codes = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'tests', 'vectors', 'codes.json'), 'utf8'))
  assert.deepEqual([...PROTOCOL_CODES], codes.error_codes.map((c) => c.code))
  for (const c of codes.client_codes) assert.ok(CLIENT_CODES.includes(c), `client code ${c}`)
})

test('errors are ZerorelayError instances with the protocol code', async (t) => {
  const s = await startServer(t, { features: { client_broadcast: false } })
  const a = await client(t, s.url, 'alice')
  const forbidden = await a.broadcast('x').catch((e) => e)
  assert.ok(forbidden instanceof ZerorelayError)
  assert.ok(forbidden instanceof Error)
  assert.equal(forbidden.code, 'forbidden')
  await assert.rejects(a.send({ to: 'nobody' }, 1), { code: 'not_found', message: 'user "nobody" has no session' })
  await assert.rejects(a.join('no spaces'), { code: 'invalid_argument', message: /`group` has a character outside/ })
})

test('bad arguments are refused by name and the client keeps working', async (t) => {
  const s = await startServer(t)
  const a = await client(t, s.url, 'alice')
  const b = await client(t, s.url, 'bob')
  await b.join('room')
  const cases = [
    [() => a.publish('room', undefined), /data is not JSON-serializable \(undefined\)/],
    [() => a.publish('room', 10n), /data is not JSON-serializable: Do not know how to serialize a BigInt/],
    [() => a.publish(42, 'x'), /group must be a string/],
    [() => a.send('bob', 'x'), /send target must be \{ to: user \} or \{ session: id \}/],
    [() => a.send({ to: 'bob', session: 's' }, 'x'), /send target must be/],
    [() => a.rpc(null), /method must be a string/],
  ]
  for (const [call, message] of cases) {
    await assert.rejects(call(), { name: 'ZerorelayError', code: 'invalid_argument', message })
  }
  const circular = {}
  circular.self = circular
  await assert.rejects(a.publish('room', circular), { code: 'invalid_argument', message: /circular/ })
  await a.publish('room', 'still fine')
  assert.equal((await take(b, 1))[0].data, 'still fine')
})

test('bad options are refused with the key named', async () => {
  const cases = [
    [{ tokn: 'x' }, /unknown option tokn \(known: token, user,/],
    [{ reconnect: { baseMS: 1 } }, /unknown option reconnect.baseMS/],
    [{ offlineQueue: { whenFull: 'block' } }, /option offlineQueue.whenFull must be one of "failFast", "dropOldest"/],
    [{ requestTimeoutMs: -1 }, /option requestTimeoutMs must be a non-negative integer/],
    [{ requestTimeoutMs: 0 }, /request_timeout_ms and connect_timeout_ms must be > 0/],
    [{ headers: { 'x-a': 1 } }, /option headers.x-a must be a string/],
    [{ user: 'not valid' }, /`user` has a character outside/],
    [{ tokenProvider: 'abc' }, /option tokenProvider must be a function/],
  ]
  for (const [options, message] of cases) {
    await assert.rejects(connect('ws://127.0.0.1:9/ws', options), { code: 'invalid_argument', message })
  }
  await assert.rejects(connect('http://127.0.0.1:9/', {}), { code: 'invalid_argument', message: /the scheme must be ws or wss/ })
  await assert.rejects(connect(42), { code: 'invalid_argument', message: 'url must be a string' })
})

test('a bad server configuration is refused with the key named', async () => {
  await assert.rejects(Server.start({ server: { listen: '127.0.0.1:0', lisen: 1 } }), { code: 'invalid_argument', message: /unknown field `lisen`/ })
  await assert.rejects(Server.start({ server: { listen: 'nowhere' } }), { code: 'invalid_argument' })
  await assert.rejects(Server.start({}, { auht: () => true }), { code: 'invalid_argument', message: /unknown option auht/ })
  await assert.rejects(Server.start({}, { rpc: { m: 1 } }), { code: 'invalid_argument', message: 'option rpc.m must be a function' })
})

test('an unreachable relay fails with a connection error', async () => {
  await assert.rejects(
    connect('ws://127.0.0.1:9/ws', { connectTimeoutMs: 300, reconnect: { baseMs: 20, capMs: 50 } }),
    { code: 'connection', message: /not connected within connect_timeout_ms \(300 ms\); last attempt: .*refused/ },
  )
})
