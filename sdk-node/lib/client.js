'use strict'
// The client: Promises for requests, an EventEmitter for what happens, and
// async iteration over messages. Every protocol decision (resume, acks,
// dedup, the offline queue, backoff) is the shared Rust engine's.
const { EventEmitter } = require('node:events')
const native = require('./native')
const { ZerorelayError, fromNative, abortError } = require('./errors')
const { clientOptionsJson } = require('./options')
const logging = require('./logging')

const VERSION = require('../package.json').version
/** Messages an iterator may hold before the client stops reading (backpressure). */
const ITERATOR_HIGH_WATER = 8192

function dataJson (data, what = 'data') {
  let json
  try {
    json = JSON.stringify(data)
  } catch (e) {
    throw new ZerorelayError('invalid_argument', `${what} is not JSON-serializable: ${e.message}`, { cause: e })
  }
  if (json === undefined) throw new ZerorelayError('invalid_argument', `${what} is not JSON-serializable (${typeof data})`)
  return json
}

function stringArg (value, what) {
  if (typeof value !== 'string') throw new ZerorelayError('invalid_argument', `${what} must be a string`)
  return value
}

/**
 * `options.resend` of publish, send, broadcast and rpc: re-send the request
 * if the session is lost after it may have been routed, instead of
 * rejecting it with `unknown_outcome`. Absent means false.
 */
function resendOption (options) {
  const resend = options ? options.resend : undefined
  if (resend === undefined) return false
  if (typeof resend !== 'boolean') throw new ZerorelayError('invalid_argument', 'option resend must be a boolean')
  return resend
}

function rethrowLater (e) {
  // A listener that throws is the application's bug: report it as Node
  // does (an uncaught exception) without stopping the event pump.
  process.nextTick(() => { throw e })
}

/** Wraps a user's token provider so that it always answers JSON and never throws. */
function tokenCallback (provider) {
  return async () => {
    try {
      const r = await provider()
      if (typeof r === 'string') return JSON.stringify({ token: r })
      if (r && typeof r.token === 'string') {
        return JSON.stringify({ token: r.token, expiresInMs: r.expiresInMs ?? undefined })
      }
      return JSON.stringify({ error: 'the token provider must return a string or { token, expiresInMs }' })
    } catch (e) {
      return JSON.stringify({ error: String(e && e.message ? e.message : e) })
    }
  }
}

class MessageIterator {
  constructor (client) {
    this.client = client
    this.buffer = []
    this.waiting = null
    this.done = false
  }

  push (msg) {
    if (this.waiting) {
      const w = this.waiting
      this.waiting = null
      w.resolve({ value: msg, done: false })
    } else {
      this.buffer.push(msg)
    }
  }

  end () {
    this.done = true
    if (this.waiting) {
      const w = this.waiting
      this.waiting = null
      w.resolve({ value: undefined, done: true })
    }
  }

  next () {
    if (this.buffer.length > 0) {
      const value = this.buffer.shift()
      if (this.buffer.length < ITERATOR_HIGH_WATER / 2) this.client._drained()
      return Promise.resolve({ value, done: false })
    }
    if (this.done) return Promise.resolve({ value: undefined, done: true })
    return new Promise((resolve) => { this.waiting = { resolve } })
  }

  return () {
    this.client._forget(this)
    this.end()
    this.buffer.length = 0
    return Promise.resolve({ value: undefined, done: true })
  }

  [Symbol.asyncIterator] () { return this }
}

class Client extends EventEmitter {
  #native
  #iterators = new Set()
  #nextAbort = 1
  #finished
  #closedReason = null
  #resume = null
  /** Messages kept for the next iterator while nobody else takes them. */
  #pending = []
  #closing = false

  /** @internal Use `connect()`. */
  constructor (handle) {
    super()
    this.#native = handle
    this.#finished = this.#pump()
  }

  /** `connecting`, `connected` or `closed`. */
  get state () { return this.#closedReason === null ? this.#native.state : 'closed' }

  /** The session id while connected, else null. */
  get session () { return this.#native.session ?? null }

  async #pump () {
    try {
      for (;;) {
        const batch = await this.#native.nextEvents()
        if (batch === null) break
        const events = JSON.parse(batch)
        for (let i = 0; i < events.length; i++) this.#dispatch(events[i])
        while (this.#overHighWater()) {
          await new Promise((resolve) => { this.#resume = resolve })
        }
      }
    } catch (e) {
      this.#emitError(fromNative(e))
    }
    if (this.#closedReason === null) this.#closedReason = 'closed'
    for (const it of this.#iterators) it.end()
  }

  #overHighWater () {
    // Closing: drain what is left rather than wait for a reader.
    if (this.#closing) return false
    if (this.#pending.length >= ITERATOR_HIGH_WATER) return true
    for (const it of this.#iterators) if (it.buffer.length >= ITERATOR_HIGH_WATER) return true
    return false
  }

  /** @internal */
  _drained () {
    if (this.#resume && !this.#overHighWater()) {
      const r = this.#resume
      this.#resume = null
      r()
    }
  }

  /** @internal */
  _forget (it) {
    this.#iterators.delete(it)
    this._drained()
  }

  #emit (event, value) {
    try {
      this.emit(event, value)
    } catch (e) {
      rethrowLater(e)
    }
  }

  #emitError (err) {
    if (this.listenerCount('error') > 0) {
      this.#emit('error', err)
    } else {
      // Unlike most emitters, an unheard 'error' does not throw: these errors
      // are not fatal (the client recovers), so they go to the logger.
      logging.warn(`client error ${err.code}: ${err.message}`)
    }
  }

  #dispatch (e) {
    switch (e.type) {
      case 'message': {
        const msg = {
          seq: e.seq,
          kind: e.kind,
          from: e.from ?? null,
          fromSession: e.from_session ?? null,
          group: e.group ?? null,
          data: e.data,
          ts: e.ts,
        }
        if (this.#iterators.size === 0 && this.listenerCount('message') === 0) {
          // Nobody reads messages yet: keep them (in order) for the next
          // iterator, so that none is lost between two awaits.
          this.#pending.push(msg)
          break
        }
        this.#emit('message', msg)
        for (const it of this.#iterators) it.push(msg)
        break
      }
      case 'connected':
        this.#emit('connected', {
          session: e.session,
          user: e.user ?? null,
          resumed: e.resumed,
          lostSession: e.lost_session ?? null,
        })
        break
      case 'disconnected':
        this.#emit('disconnected', { code: e.code ?? null, reason: e.reason, willRetry: e.will_retry })
        break
      case 'reconnecting':
        this.#emit('reconnecting', { attempt: e.attempt, delayMs: e.delay_ms })
        break
      case 'loss':
        this.#emit('loss', { fromSeq: e.from_seq, toSeq: e.to_seq, reason: e.reason })
        break
      case 'rejoined':
        this.#emit('rejoined', { groups: e.groups })
        break
      case 'presence_change':
        this.#emit('presence', { group: e.group, user: e.user ?? null, change: e.change })
        break
      case 'presence_summary':
        this.#emit('presenceSummary', { group: e.group, joined: e.joined, left: e.left, present: e.present })
        break
      case 'error':
        this.#emitError(new ZerorelayError(e.code, e.message, e.seq === undefined ? undefined : { seq: e.seq }))
        break
      case 'closed':
        this.#closedReason = e.reason
        this.#emit('closed', { reason: e.reason })
        break
      default:
        // A newer engine's event: ignore, as the protocol asks of unknown things.
        break
    }
  }

  /**
   * Makes a request through `call(abortId)`, one of the addon's request
   * methods (the engine builds the frame): resolves to the result (null
   * for a plain ok) and rejects with a ZerorelayError, or an AbortError
   * once `options.signal` aborted it.
   */
  async #request (options, call) {
    const signal = options && options.signal
    if (signal && signal.aborted) throw abortError(signal)
    let abortId
    let onAbort
    if (signal) {
      abortId = this.#nextAbort
      this.#nextAbort = this.#nextAbort >= 0xffffffff ? 1 : this.#nextAbort + 1
      onAbort = () => this.#native.abort(abortId)
      signal.addEventListener('abort', onAbort, { once: true })
    }
    let result
    try {
      result = await call(abortId)
    } catch (e) {
      const err = fromNative(e)
      if (err.code === 'cancelled' && signal && signal.aborted) throw abortError(signal)
      throw err
    } finally {
      if (signal) signal.removeEventListener('abort', onAbort)
    }
    return result === null ? null : JSON.parse(result)
  }

  /** Joins a group (re-joined automatically if the session is ever lost). */
  async join (group, options) {
    const g = stringArg(group, 'group')
    const presence = Boolean(options && options.presence)
    return void await this.#request(options, (abortId) => this.#native.join(g, presence, abortId))
  }

  /** Who is in a group: `{ group, members: [{ user, sessions }], anonymous }`. */
  async presence (group, options) {
    const g = stringArg(group, 'group')
    return this.#request(options, (abortId) => this.#native.presence(g, abortId))
  }

  /** Leaves a group. */
  async leave (group, options) {
    const g = stringArg(group, 'group')
    return void await this.#request(options, (abortId) => this.#native.leave(g, abortId))
  }

  /** Publishes to a group's members (not to ourselves unless `echo`). */
  async publish (group, data, options) {
    const g = stringArg(group, 'group')
    const json = dataJson(data)
    const echo = Boolean(options && options.echo)
    const resend = resendOption(options)
    return void await this.#request(options, (abortId) => this.#native.publish(g, json, echo, resend, abortId))
  }

  /** Sends to every session of a user (`{ to }`) or to one session (`{ session }`). */
  async send (target, data, options) {
    let call
    if (target && typeof target === 'object' && typeof target.to === 'string' && target.session === undefined) {
      const [to, json, resend] = [target.to, dataJson(data), resendOption(options)]
      call = (abortId) => this.#native.sendToUser(to, json, resend, abortId)
    } else if (target && typeof target === 'object' && typeof target.session === 'string' && target.to === undefined) {
      const [session, json, resend] = [target.session, dataJson(data), resendOption(options)]
      call = (abortId) => this.#native.sendToSession(session, json, resend, abortId)
    } else {
      throw new ZerorelayError('invalid_argument', 'send target must be { to: user } or { session: id }')
    }
    return void await this.#request(options, call)
  }

  /** Broadcasts to every session (not to ourselves unless `echo`). */
  async broadcast (data, options) {
    const json = dataJson(data)
    const echo = Boolean(options && options.echo)
    const resend = resendOption(options)
    return void await this.#request(options, (abortId) => this.#native.broadcast(json, echo, resend, abortId))
  }

  /** Calls a method the host registered and resolves to its result. */
  async rpc (method, data = null, options) {
    const m = stringArg(method, 'method')
    const json = dataJson(data)
    const resend = resendOption(options)
    return this.#request(options, (abortId) => this.#native.rpc(m, json, resend, abortId))
  }

  /**
   * Messages, in order and each exactly once, until the client closes.
   * Each iterator sees every message from the moment it was created, plus
   * those that arrived while nothing (no iterator, no 'message' listener)
   * was reading. A consumer that falls 8,192 messages behind pauses the
   * client's reading from the relay (backpressure), so nothing is lost.
   */
  messages () {
    const it = new MessageIterator(this)
    if (this.#pending.length > 0) {
      it.buffer = this.#pending
      this.#pending = []
    }
    if (this.#closedReason !== null) it.end()
    else this.#iterators.add(it)
    return it
  }

  [Symbol.asyncIterator] () { return this.messages() }

  /** Closes cleanly (the session ends on the server); resolves when done. */
  async close () {
    this.#closing = true
    this._drained()
    try {
      await this.#native.close()
    } catch (e) {
      throw fromNative(e)
    }
    await this.#finished
  }
}

/**
 * Connects to a relay. Resolves once the relay welcomed the client (unless
 * `waitForConnection` is false: then requests wait in the offline queue).
 */
async function connect (url, options = {}) {
  if (typeof url !== 'string') throw new ZerorelayError('invalid_argument', 'url must be a string')
  if (options === null || typeof options !== 'object') throw new ZerorelayError('invalid_argument', 'options must be an object')
  const { tokenProvider, logger, logLevel, waitForConnection = true, ...rest } = options
  if (tokenProvider !== undefined && typeof tokenProvider !== 'function') {
    throw new ZerorelayError('invalid_argument', 'option tokenProvider must be a function')
  }
  if (typeof waitForConnection !== 'boolean') throw new ZerorelayError('invalid_argument', 'option waitForConnection must be a boolean')
  const json = clientOptionsJson(rest, VERSION, ['tokenProvider', 'waitForConnection', 'logger', 'logLevel'])
  if (logger !== undefined) logging.setLogger(logger, logLevel)
  const tokens = tokenProvider ? tokenCallback(tokenProvider) : undefined
  let handle
  try {
    handle = await native.connect(url, json, tokens, waitForConnection)
  } catch (e) {
    throw fromNative(e)
  }
  return new Client(handle)
}

module.exports = { Client, connect, dataJson, rethrowLater }
