'use strict'
// The scenario suite (tests/scenarios/scenarios.json) run with the Node SDK:
// each row is one test against a fresh embedded relay. The step vocabulary
// is in tests/scenarios/README.md; a step this runner does not implement
// fails its row.
const test = require('node:test')
const assert = require('node:assert/strict')
const crypto = require('node:crypto')
const fs = require('node:fs')
const path = require('node:path')
const { setTimeout: sleep } = require('node:timers/promises')
const { connect, Server } = require('..')
const { proxy } = require('./helpers')

const SUITE = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'tests', 'scenarios', 'scenarios.json'), 'utf8'))
const WAIT = SUITE.wait_ms

/** A JWT signed with HMAC-SHA256. */
function hs256 (secret, claims) {
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url')
  const signed = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`
  return `${signed}.${crypto.createHmac('sha256', secret).update(signed).digest('base64url')}`
}

/** Polls `check` until it returns something other than undefined; fails after `ms`. */
async function until (what, check, ms = WAIT) {
  const deadline = Date.now() + ms
  for (;;) {
    const v = check()
    if (v !== undefined) return v
    if (Date.now() > deadline) throw new Error(`no ${what} within ${ms} ms`)
    await sleep(10)
  }
}

/** A request's outcome, `{ result }` or `{ error: code }`; never rejects. */
function outcome (promise) {
  return promise.then((result) => ({ result }), (e) => ({ error: e.code || String(e) }))
}

/** Checks an outcome against a step's `error` / `result`. */
function check (step, out) {
  if ('error' in step) {
    assert.equal(out.error, step.error, `expected error ${step.error}, got ${JSON.stringify(out)}`)
  } else {
    assert.equal(out.error, undefined, `expected success, got error ${out.error}`)
    if ('result' in step) assert.deepEqual(out.result, step.result)
  }
}

/** Whether an event has every field the step gives. */
function matches (event, type, step, fields) {
  return event.type === type && fields.every((f) => !(f in step) || event[f] === step[f])
}

class Run {
  constructor (t) {
    this.t = t
    this.clients = new Map()
    this.pending = new Map()
    this.server = null
    this.stopped = false
  }

  client (name) {
    const c = this.clients.get(name)
    if (!c) throw new Error(`no client ${JSON.stringify(name)} in this scenario`)
    return c
  }

  /** The session of a client's latest welcome. */
  session (name) {
    const c = this.client(name)
    return until(`session of ${name}`, () => c.events.findLast((e) => e.type === 'connected')?.session)
  }

  /** Waits for the next event after the last one matched that has the step's fields. */
  async expectEvent (step, type, fields) {
    const c = this.client(step.client)
    const at = await until(`${type} event on ${step.client} like ${JSON.stringify(step)}`, () => {
      const i = c.events.findIndex((e, i) => i >= c.cursor && matches(e, type, step, fields))
      return i >= 0 ? i : undefined
    })
    c.cursor = at + 1
  }

  /** Starts the SDK call a request step names. */
  async call (step) {
    const c = this.client(step.client).c
    switch (step.do) {
      case 'join': return c.join(step.group)
      case 'leave': return c.leave(step.group)
      case 'publish': return c.publish(step.group, step.data, { echo: step.echo === true })
      case 'send': return c.send('to' in step ? { to: step.to } : { session: await this.session(step.session_of) }, step.data)
      case 'broadcast': return c.broadcast(step.data)
      case 'rpc': return c.rpc(step.method, step.data ?? null)
    }
  }

  async request (step) {
    // Resolve a session before the call, so that the request is made at
    // once: pending requests are queued in step order.
    if (step.session_of !== undefined) await this.session(step.session_of)
    const out = outcome(this.call(step))
    if (step.pending !== undefined) {
      this.pending.set(step.pending, out)
      return
    }
    check(step, await within(out, `an answer to ${step.do}`))
  }

  async connect (step) {
    const options = { reconnect: { baseMs: 20, capMs: 200 } }
    if (step.user !== undefined) options.user = step.user
    if (step.token !== undefined) options.token = step.token
    if (step.queue !== undefined) options.offlineQueue = { maxMessages: step.queue.max_messages, whenFull: 'failFast' }
    const tokens = []
    if (step.token_provider !== undefined) {
      const p = step.token_provider
      options.tokenProvider = () => {
        const call = tokens.length + 1
        tokens.push(p.fail_calls?.includes(call) ? null : Math.ceil(Date.now() / 1000) + p.ttl_s)
        if (tokens.at(-1) === null) throw new Error(`the scenario fails call ${call}`)
        return hs256(p.jwt_secret, { sub: p.sub, exp: tokens.at(-1) })
      }
    }
    let net = null
    if (step.proxy) net = await proxy(this.t, this.server.address)
    const url = net ? net.url : this.server.url
    if ('error' in step) {
      // A connect that must fail: no client is kept.
      const out = await outcome(connect(url, options))
      if (out.result) await out.result.close()
      return check(step, out)
    }
    const c = await connect(url, options)
    const entry = { c, net, tokens, events: [], messages: [], cursor: 0, read: 0 }
    // Listeners are attached before the first event is dispatched (the
    // client's pump runs on a later turn of the event loop).
    c.on('connected', (e) => entry.events.push({ type: 'connected', session: e.session, user: e.user, resumed: e.resumed }))
    c.on('disconnected', (e) => entry.events.push({ type: 'disconnected', code: e.code, will_retry: e.willRetry }))
    c.on('error', (e) => entry.events.push({ type: 'error', code: e.code }))
    c.on('closed', () => entry.events.push({ type: 'closed' }))
    c.on('message', (m) => entry.messages.push(m))
    this.clients.set(step.as, entry)
  }

  async step (step) {
    const c = step.client !== undefined ? this.client(step.client) : null
    switch (step.do) {
      case 'connect': return this.connect(step)
      case 'close': return within(c.c.close(), 'close')
      case 'join': case 'leave': case 'publish': case 'send': case 'broadcast': case 'rpc':
        return this.request(step)
      case 'await': {
        const out = this.pending.get(step.pending)
        if (!out) throw new Error(`no pending request ${step.pending}`)
        return check(step, await within(out, `an answer to ${step.pending}`))
      }
      case 'expect_message': {
        const m = await until(`message on ${step.client}`, () => c.messages[c.read])
        c.read++
        const got = { from: m.from, kind: m.kind, group: m.group, data: m.data }
        for (const f of ['from', 'kind', 'group', 'data']) {
          if (f in step) assert.deepEqual(got[f], step[f], `message ${JSON.stringify(got)} should have ${f} ${JSON.stringify(step[f])}`)
        }
        return
      }
      case 'expect_no_message':
        await sleep(step.within_ms)
        return assert.deepEqual(c.messages.slice(c.read), [], 'no message should have arrived')
      case 'expect_connected': return this.expectEvent(step, 'connected', ['user', 'resumed'])
      case 'expect_disconnect': return this.expectEvent(step, 'disconnected', ['code', 'will_retry'])
      case 'expect_error': return this.expectEvent(step, 'error', ['code'])
      case 'expect_closed': return this.expectEvent(step, 'closed', [])
      case 'expect_no_event':
        return assert.deepEqual(c.events.filter((e) => e.type === step.event), [], `no ${step.event} event`)
      case 'expect_sessions':
        return until(`${step.count} sessions of ${step.user}`, () =>
          this.server.sessions().filter((s) => s.user === step.user).length === step.count ? true : undefined)
      case 'outlive_token':
        // Token n+1 was issued (the relay asked before n expired) and n's
        // expiry has passed.
        return until(`the expiry of token ${step.token} of ${step.client}`, () =>
          c.tokens.length > step.token && c.tokens[step.token - 1] !== null && Date.now() / 1000 > c.tokens[step.token - 1] ? true : undefined)
      case 'cut': return assert.equal(this.server.dropConnection(await this.session(step.client)), true)
      case 'kick': return assert.equal(this.server.disconnect(await this.session(step.client)), true)
      case 'revoke': return assert.equal(this.server.revokeSession(await this.session(step.client)), true)
      case 'offline': case 'online':
        if (!c.net) throw new Error(`${step.do} needs a client connected with "proxy": true`)
        return c.net.setDown(step.do === 'offline')
      case 'stop_server':
        this.stopped = true
        return within(this.server.close(), 'the server to stop')
      case 'host_publish': return this.server.publish(step.group, step.data)
      case 'host_send':
        if ('to' in step) return this.server.sendToUser(step.to, step.data)
        return this.server.sendToSession(await this.session(step.session_of), step.data)
      case 'host_broadcast': return this.server.broadcast(step.data)
      default: throw new Error(`the Node runner does not implement step ${JSON.stringify(step.do)}`)
    }
  }
}

/** `promise`, or a failure after the suite's wait. */
function within (promise, what) {
  let timer
  const late = new Promise((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${WAIT} ms`)), WAIT)
  })
  return Promise.race([promise, late]).finally(() => clearTimeout(timer))
}

for (const row of SUITE.scenarios) {
  test(`scenario ${row.name}`, async (t) => {
    const run = new Run(t)
    run.server = await Server.start({ ...row.config, server: { listen: '127.0.0.1:0', ...(row.config.server || {}) } }, {
      rpc: { echo: (data, ctx) => ({ data, user: ctx.user }) },
    })
    t.after(async () => {
      for (const c of run.clients.values()) await c.c.close()
      if (!run.stopped) await run.server.close()
    })
    for (const [i, step] of row.steps.entries()) {
      const allowed = SUITE.vocabulary[step.do]
      if (!allowed) throw new Error(`step ${i + 1}: unknown step ${JSON.stringify(step.do)}`)
      const extra = Object.keys(step).filter((k) => k !== 'do' && !allowed.includes(k))
      if (extra.length) throw new Error(`step ${i + 1} (${step.do}): unknown keys ${extra.join(', ')}`)
      try {
        await run.step(step)
      } catch (e) {
        e.message = `step ${i + 1} ${JSON.stringify(step)}: ${e.message}`
        throw e
      }
    }
  })
}
