'use strict'
// Client options: checked by their JavaScript names against the table
// generated from the engine's ClientOptions (lib/options.generated.js), then
// handed to the engine.
const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { inspect } = require('node:util')
const { connect } = require('..')
const { clientOptionsJson } = require('../lib/options')
const { startServer, take } = require('./helpers')

const NOWHERE = 'ws://127.0.0.1:9/ws'

async function refused (options, message) {
  await assert.rejects(connect(NOWHERE, options), { name: 'ZerorelayError', code: 'invalid_argument', message }, inspect(options))
}

test('an unknown option is refused by its path, with the options known there', async () => {
  await refused({ reconect: { baseMs: 1 } }, /^unknown option reconect \(known: token, user, clientName, headers, reconnect, ack, offlineQueue, requestTimeoutMs, .*, tokenProvider, waitForConnection, logger, logLevel\)$/)
  await refused({ offlineQueue: { maxMesages: 1 } }, 'unknown option offlineQueue.maxMesages (known: maxMessages, maxBytes, whenFull)')
  await refused({ reconnect: { base_ms: 1 } }, 'unknown option reconnect.base_ms (known: enabled, baseMs, capMs, maxAttempts)')
  await refused({ queue: {} }, /^unknown option queue \(known: /)
  await refused({ ack: { batch: 1, interval: 5 } }, 'unknown option ack.interval (known: batch, intervalMs)')
})

test('a wrongly typed option is refused by its path with what it must be', async () => {
  const cases = [
    [{ reconnect: { baseMs: '250' } }, 'option reconnect.baseMs must be a non-negative integer'],
    [{ reconnect: { baseMs: 2.5 } }, 'option reconnect.baseMs must be a non-negative integer'],
    [{ reconnect: { capMs: -1 } }, 'option reconnect.capMs must be a non-negative integer'],
    [{ reconnect: { enabled: 'yes' } }, 'option reconnect.enabled must be a boolean'],
    [{ reconnect: { maxAttempts: 2 ** 32 } }, 'option reconnect.maxAttempts must be a non-negative integer at most 4294967295'],
    [{ reconnect: true }, 'option reconnect must be an object'],
    [{ ack: [256] }, 'option ack must be an object'],
    [{ ack: { batch: NaN } }, 'option ack.batch must be a non-negative integer'],
    [{ offlineQueue: { whenFull: 'fail_fast' } }, 'option offlineQueue.whenFull must be one of "failFast", "dropOldest"'],
    [{ offlineQueue: { whenFull: 1 } }, 'option offlineQueue.whenFull must be one of "failFast", "dropOldest"'],
    [{ offlineQueue: { maxBytes: 2 ** 60 } }, `option offlineQueue.maxBytes must be a non-negative integer at most ${Number.MAX_SAFE_INTEGER}`],
    [{ user: 5 }, 'option user must be a string'],
    [{ clientName: false }, 'option clientName must be a string'],
    [{ headers: 'x-a: b' }, 'option headers must be an object of header names to strings'],
    [{ headers: { 'x-a': ['b'] } }, 'option headers.x-a must be a string'],
    [{ seed: '42' }, 'option seed must be a non-negative integer'],
    [{ requestTimeoutMs: 10n }, 'option requestTimeoutMs must be a non-negative integer'],
  ]
  for (const [options, message] of cases) await refused(options, message)
  // Ranges are the engine's: it names the option by its key.
  await refused({ ack: { batch: 2_000_000 } }, 'options: ack.batch must be at most 1000000')
})

test('JavaScript options become the engine keys and values, null and undefined leaving the default', () => {
  const json = clientOptionsJson({
    token: 't',
    user: undefined,
    headers: { 'x-a': 'b' },
    reconnect: { enabled: false, baseMs: 5, capMs: 10, maxAttempts: null },
    ack: { batch: 2, intervalMs: 3 },
    offlineQueue: { maxMessages: 4, maxBytes: 5, whenFull: 'dropOldest' },
    requestTimeoutMs: 6,
    connectTimeoutMs: 7,
    refreshMarginMs: 8,
    caFile: null,
    persistPath: '/tmp/x',
    seed: 9,
  }, '1.2.3')
  assert.deepEqual(JSON.parse(json), {
    token: 't',
    client_name: 'zerorelay-node/1.2.3',
    headers: { 'x-a': 'b' },
    reconnect: { enabled: false, base_ms: 5, cap_ms: 10 },
    ack: { batch: 2, interval_ms: 3 },
    queue: { max_messages: 4, max_bytes: 5, full: 'drop_oldest' },
    request_timeout_ms: 6,
    connect_timeout_ms: 7,
    refresh_margin_ms: 8,
    persist_path: '/tmp/x',
    seed: 9,
  })
  assert.deepEqual(JSON.parse(clientOptionsJson({ clientName: 'mine', offlineQueue: { whenFull: 'failFast' } }, '1')), {
    client_name: 'mine',
    queue: { full: 'fail_fast' },
  })
})

test('the engine takes every option the generated table names', async (t) => {
  const s = await startServer(t)
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zerorelay-options-'))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  const c = await connect(s.url, {
    user: 'alice',
    clientName: 'options-test/1',
    headers: { 'x-test': 'yes' },
    reconnect: { enabled: true, baseMs: 20, capMs: 200, maxAttempts: 50 },
    ack: { batch: 8, intervalMs: 50 },
    offlineQueue: { maxMessages: 10, maxBytes: 4096, whenFull: 'dropOldest' },
    requestTimeoutMs: 5000,
    connectTimeoutMs: 5000,
    refreshMarginMs: 1000,
    persistPath: path.join(dir, 'state'),
    seed: 7,
  })
  t.after(() => c.close())
  await c.join('room')
  await c.publish('room', 'with every option', { echo: true })
  assert.equal((await take(c, 1))[0].data, 'with every option')
})
