'use strict'
// `limits.rpc_timeout_ms`: an RPC handler of the embedded relay that never
// answers fails its call with `internal`, and nothing else waits for it.
const test = require('node:test')
const assert = require('node:assert/strict')
const { startServer, client } = require('./helpers')

test('an rpc handler that never answers fails with internal after limits.rpc_timeout_ms and nothing else waits', async (t) => {
  let entered = 0
  const s = await startServer(t, { limits: { rpc_timeout_ms: 200 } }, {
    rpc: {
      hang: () => { entered++; return new Promise(() => {}) },
      echo: (data) => data,
    },
  })
  const alice = await client(t, s.url, 'alice')
  const bob = await client(t, s.url, 'bob')

  const hung = alice.rpc('hang').then(() => null, (e) => e)
  // While the call hangs, the same client's next call and another
  // client's are answered.
  assert.equal(await alice.rpc('echo', 'a'), 'a')
  assert.equal(await bob.rpc('echo', 'b'), 'b')

  const e = await hung
  assert.ok(e, 'the hung call fails')
  assert.equal(e.code, 'internal')
  assert.match(e.message, /limits\.rpc_timeout_ms/)
  assert.equal(entered, 1)
  // The connection is unharmed.
  assert.equal(await alice.rpc('echo', 'again'), 'again')
  assert.equal(alice.state, 'connected')
})
