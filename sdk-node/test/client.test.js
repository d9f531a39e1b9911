'use strict'
const test = require('node:test')
const assert = require('node:assert/strict')
const { spawnSync } = require('node:child_process')
const path = require('node:path')
const { connect, Server, ZerorelayError } = require('..')
const { startServer, client, waitFor, take, collect } = require('./helpers')

test('connect resolves once welcomed and reports the session', async (t) => {
  const s = await startServer(t)
  const c = await connect(s.url, { user: 'alice' })
  t.after(() => c.close())
  const connected = await waitFor(c, 'connected')
  assert.equal(connected.user, 'alice')
  assert.equal(connected.resumed, false)
  assert.equal(c.state, 'connected')
  assert.match(c.session, /^s_[0-9a-f]{32}$/)
  assert.equal(s.sessions()[0].user, 'alice')
})

test('group messages reach every other member exactly once, in order', async (t) => {
  const s = await startServer(t)
  const a = await client(t, s.url, 'alice')
  const b = await client(t, s.url, 'bob')
  const c = await client(t, s.url, 'carol')
  await b.join('room')
  await c.join('room')
  for (let i = 0; i < 100; i++) a.publish('room', { i })
  for (const who of [b, c]) {
    const got = await take(who, 100)
    assert.deepEqual(got.map((m) => m.data.i), [...Array(100).keys()])
    assert.ok(got.every((m) => m.kind === 'group' && m.group === 'room' && m.from === 'alice'))
  }
  assert.deepEqual(await collect(a, 100), [], 'a publisher does not get its own messages')
})

test('publish with echo reaches the publisher too; leave stops delivery', async (t) => {
  const s = await startServer(t)
  const a = await client(t, s.url, 'alice')
  await a.join('room')
  await a.publish('room', 'mine', { echo: true })
  assert.equal((await take(a, 1))[0].data, 'mine')
  await a.leave('room')
  s.publish('room', 'after leave')
  assert.deepEqual(await collect(a, 150), [])
})

test('send reaches a user or one session', async (t) => {
  const s = await startServer(t)
  const a = await client(t, s.url, 'alice')
  const b = await client(t, s.url, 'bob')
  await a.send({ to: 'bob' }, { text: 'to the user' })
  await a.send({ session: b.session }, [1, 2, 3])
  const got = await take(b, 2)
  assert.deepEqual(got.map((m) => m.data), [{ text: 'to the user' }, [1, 2, 3]])
  assert.equal(got[0].kind, 'direct')
  assert.equal(got[0].fromSession, a.session)
})

test('broadcast reaches every other session; the host can publish and send', async (t) => {
  const s = await startServer(t, { features: { client_broadcast: true } })
  const a = await client(t, s.url, 'alice')
  const b = await client(t, s.url, 'bob')
  await b.join('news')
  await a.broadcast({ alert: 1 })
  assert.deepEqual((await take(b, 1))[0].data, { alert: 1 })
  assert.equal(s.publish('news', 'headline'), 1)
  assert.equal(s.sendToUser('bob', 'psst'), 1)
  s.sendToSession(b.session, 'only you')
  assert.equal(s.broadcast('all'), 2)
  const got = await take(b, 4)
  assert.deepEqual(got.map((m) => m.data), ['headline', 'psst', 'only you', 'all'])
  assert.equal(got[0].from, null)
  assert.equal((await take(a, 1))[0].data, 'all')
})

test('rpc calls a JavaScript handler with the caller', async (t) => {
  const s = await startServer(t, {}, {
    rpc: {
      'math.add': async ({ a, b }, ctx) => ({ sum: a + b, user: ctx.user }),
      'math.fail': () => { throw new ZerorelayError('forbidden', 'not you') },
      'math.bug': () => { throw new TypeError('oops') },
    },
  })
  const a = await client(t, s.url, 'alice')
  assert.deepEqual(await a.rpc('math.add', { a: 2, b: 3 }), { sum: 5, user: 'alice' })
  await assert.rejects(a.rpc('math.fail'), { code: 'forbidden', message: 'not you' })
  await assert.rejects(a.rpc('math.bug'), { code: 'internal', message: 'the RPC handler failed' })
  await assert.rejects(a.rpc('math.nope'), { code: 'not_found' })
})

test('the messages iterator keeps what arrived before it was created', async (t) => {
  const s = await startServer(t)
  const a = await client(t, s.url, 'alice')
  const b = await client(t, s.url, 'bob')
  await a.send({ to: 'bob' }, 1)
  await a.send({ to: 'bob' }, 2)
  await new Promise((resolve) => setTimeout(resolve, 100))
  const got = []
  for await (const m of b) {
    got.push(m.data)
    if (got.length === 2) break
  }
  assert.deepEqual(got, [1, 2])
})

test('the ES module entry point exports the same API', () => {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e',
    "import z, { connect, Server, ZerorelayError } from 'zerorelay'; " +
    "if (typeof connect !== 'function' || z.Server !== Server || !(new ZerorelayError('x','y') instanceof Error)) process.exit(1)"],
  { cwd: path.join(__dirname, '..'), encoding: 'utf8' })
  assert.equal(r.status, 0, r.stderr)
})

test('an embedded server defaults to a free port on 127.0.0.1', async (t) => {
  const s = await Server.start()
  t.after(() => s.close())
  assert.match(s.address, /^127\.0\.0\.1:\d+$/)
  assert.notEqual(s.address, '127.0.0.1:8080')
  await assert.rejects(Server.start({ server: 'x' }), { code: 'invalid_argument', message: 'config: `server` must be an object' })
})

test('close returns although nobody reads the messages', async (t) => {
  const s = await Server.start({ session: { outbox_messages: 100000, outbox_bytes: 1 << 26 }, limits: { slow_consumer_bytes: 1 << 30 } })
  t.after(() => s.close())
  const c = await connect(s.url, { user: 'idle' })
  await c.join('g')
  for (let i = 0; i < 20000; i++) s.publish('g', i)
  await new Promise((resolve) => setTimeout(resolve, 300))
  await c.close()
  assert.equal(c.state, 'closed')
})

test('the server tells its listeners about joins, leaves, messages and refused frames', async (t) => {
  const s = await Server.start({ hooks: { messages: true } })
  t.after(() => s.close())
  const seen = []
  for (const e of ['joined', 'left', 'message', 'clientError']) s.on(e, (v) => seen.push([e, v]))
  const a = await connect(s.url, { user: 'alice' })
  t.after(() => a.close())
  await a.join('room')
  await a.publish('room', { hi: 1 })
  await a.leave('room')
  await assert.rejects(a.send({ to: 'nobody' }, 1), { code: 'not_found' })
  const until = Date.now() + 5000
  while (seen.length < 4 && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 10))
  assert.deepEqual(seen.map(([e]) => e), ['joined', 'message', 'left', 'clientError'])
  assert.deepEqual(seen[0][1], { session: a.session, user: 'alice', group: 'room' })
  assert.deepEqual(seen[1][1], { kind: 'group', session: a.session, user: 'alice', group: 'room', to: null, bytes: 8 })
  assert.equal(seen[3][1].code, 'not_found')
  assert.equal(seen[3][1].frameType, 'send')
})

test('presence: a watcher hears users join and leave, and anyone may ask who is in a group', async (t) => {
  const s = await Server.start()
  t.after(() => s.close())
  const w = await connect(s.url, { user: 'watcher' })
  t.after(() => w.close())
  await w.join('room', { presence: true })
  const seen = []
  w.on('presence', (e) => seen.push(e))
  const a1 = await connect(s.url, { user: 'alice' })
  const a2 = await connect(s.url, { user: 'alice' })
  await a1.join('room')
  await a2.join('room')
  const until = Date.now() + 5000
  while (seen.length < 1 && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 10))
  assert.deepEqual(seen, [{ group: 'room', user: 'alice', change: 'join' }])
  const expected = {
    group: 'room',
    members: [{ user: 'alice', sessions: 2 }, { user: 'watcher', sessions: 1 }],
    anonymous: 0,
  }
  assert.deepEqual(await a1.presence('room'), expected)
  assert.deepEqual(s.presence('room'), expected)
  assert.throws(() => s.presence('not a name'), { code: 'bad_request' })
  await a1.close()
  await a2.close()
  while (seen.length < 2 && Date.now() < until + 5000) await new Promise((resolve) => setTimeout(resolve, 10))
  assert.deepEqual(seen[1], { group: 'room', user: 'alice', change: 'leave' })
})

test('the server tells its listeners about sessions connecting, resuming and ending', async (t) => {
  const s = await Server.start()
  t.after(() => s.close())
  const seen = []
  for (const e of ['connected', 'disconnected', 'ended']) s.on(e, (v) => seen.push([e, v]))
  const a = await connect(s.url, { user: 'alice', reconnect: { baseMs: 20, capMs: 100 } })
  const resumed = waitFor(a, 'connected', (e) => e.resumed)
  s.dropConnection(a.session)
  await resumed
  await a.close()
  const until = Date.now() + 5000
  while (seen.length < 5 && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 10))
  assert.deepEqual(seen.map(([e]) => e), ['connected', 'disconnected', 'connected', 'disconnected', 'ended'])
  assert.equal(seen[0][1].user, 'alice')
  assert.equal(seen[0][1].resumed, false)
  assert.match(seen[0][1].remote, /^127\.0\.0\.1:/)
  assert.equal(seen[2][1].resumed, true)
  assert.equal(seen[4][1].reason, 'session closed')
})
