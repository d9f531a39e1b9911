'use strict'
// The embedded relay: start it from a configuration (the sections and keys
// of the TOML file), publish and send from JavaScript, decide who connects
// with an auth callback and what they may do with the authorize and validate
// hooks, and close it gracefully.
const { EventEmitter } = require('node:events')
const native = require('./native')
const { ZerorelayError, PROTOCOL_CODES, fromNative } = require('./errors')
const { dataJson, rethrowLater } = require('./client')
const logging = require('./logging')

/** Wraps a user's auth callback so that it always answers JSON and never throws. */
function authCallback (auth) {
  return async (credentialsJson) => {
    try {
      const answer = await auth(JSON.parse(credentialsJson))
      if (answer === null || answer === undefined || answer === false) return '{"allow":null}'
      if (answer === true) return '{"allow":{}}'
      if (typeof answer === 'string') return JSON.stringify({ allow: { user: answer } })
      if (typeof answer === 'object') {
        const allow = {}
        if (answer.user !== undefined && answer.user !== null) allow.user = answer.user
        if (answer.expiresInMs !== undefined && answer.expiresInMs !== null) allow.expiresInMs = answer.expiresInMs
        // Checked by the relay (an array of role names).
        if (answer.roles !== undefined && answer.roles !== null) allow.roles = answer.roles
        return JSON.stringify({ allow })
      }
      return JSON.stringify({ error: `the auth callback returned a ${typeof answer}; return a user name, { user, expiresInMs, roles }, true, or null to refuse` })
    } catch (e) {
      return JSON.stringify({ error: String(e && e.message ? e.message : e) })
    }
  }
}

/** One JavaScript function that dispatches every RPC method and never throws. */
function rpcCallback (handlers) {
  return async (callJson) => {
    const call = JSON.parse(callJson)
    try {
      const result = await handlers[call.method](call.data, { session: call.session, user: call.user ?? null })
      const json = JSON.stringify(result === undefined ? null : result)
      return `{"ok":${json}}`
    } catch (e) {
      const known = e instanceof ZerorelayError && PROTOCOL_CODES.includes(e.code)
      if (!known) logging.warn(`rpc ${call.method} failed: ${e && e.stack ? e.stack : e}`)
      return JSON.stringify({
        error: known
          ? { code: e.code, message: e.message }
          : { code: 'internal', message: 'the RPC handler failed' },
      })
    }
  }
}

/** A user's hook failed: the Promise the relay waits on rejects with why (the relay logs it and fails that request with `internal`). */
function hookFailed (what, e) {
  return new Error(`${what} threw: ${e && e.stack ? e.stack : String(e)}`)
}

function describe (value) {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  if (typeof value === 'object') return `an object with keys ${JSON.stringify(Object.keys(value))}`
  return `a ${typeof value}`
}

/**
 * The authorize answer as the relay reads it: nothing or true allows,
 * false or a message refuses, `{ allow, message }` is taken as it is.
 */
function authorizeAnswer (answer) {
  if (answer === undefined || answer === null || answer === true) return '{"allow":true}'
  if (answer === false) return '{"allow":false}'
  if (typeof answer === 'string') return JSON.stringify({ allow: false, message: answer })
  if (typeof answer === 'object' && !Array.isArray(answer) && typeof answer.allow === 'boolean' &&
      Object.keys(answer).every((k) => k === 'allow' || k === 'message') &&
      (answer.message === undefined || answer.message === null || typeof answer.message === 'string')) {
    return JSON.stringify({ allow: answer.allow, message: answer.message ?? undefined })
  }
  throw new Error(`authorize returned ${describe(answer)}; return true or nothing to allow, false or a message to refuse, or { allow, message }`)
}

/** Wraps a user's authorize function: the relay's JSON call in, its JSON answer out. */
function authorizeCallback (authorize) {
  return async (callJson) => {
    const { action, resource, user, roles, claims } = JSON.parse(callJson)
    let answer
    try {
      answer = await authorize({ action, resource: resource ?? null, user: user ?? null, roles, claims: claims ?? null })
    } catch (e) {
      throw hookFailed('authorize', e)
    }
    return authorizeAnswer(answer)
  }
}

/**
 * The validate verdict as the relay reads it: nothing or true accepts,
 * false or a message rejects with `bad_request`, `{ reject: { code, message } }`
 * rejects with that code, `{ rewrite: data }` routes `data` instead.
 */
function verdict (answer) {
  if (answer === undefined || answer === null || answer === true) return '{"accept":true}'
  if (answer === false) return '{"accept":false}'
  if (typeof answer === 'string') return JSON.stringify({ reject: { code: 'bad_request', message: answer } })
  const keys = typeof answer === 'object' && !Array.isArray(answer) ? Object.keys(answer) : []
  if (keys.length === 1 && keys[0] === 'rewrite') {
    if (answer.rewrite === undefined) throw new Error('validate returned { rewrite: undefined }; a payload must be JSON (null included)')
    return `{"rewrite":${dataJson(answer.rewrite, 'the rewritten payload')}}`
  }
  const r = keys.length === 1 && keys[0] === 'reject' ? answer.reject : undefined
  if (r !== null && typeof r === 'object' && typeof r.message === 'string' && (r.code === undefined || typeof r.code === 'string')) {
    return JSON.stringify({ reject: { code: r.code ?? 'bad_request', message: r.message } })
  }
  throw new Error(`validate returned ${describe(answer)}; return true or nothing to accept, false or a message to reject, { reject: { code, message } } or { rewrite: data }`)
}

/** Wraps a user's validate function for `pattern`: the relay's JSON call in, its JSON verdict out. */
function validateCallback (pattern, validate) {
  return async (callJson) => {
    const { group, data, user, session, claims } = JSON.parse(callJson)
    let answer
    try {
      answer = await validate(data, { group, user: user ?? null, session, claims: claims ?? null })
    } catch (e) {
      throw hookFailed(`validate ${pattern}`, e)
    }
    return verdict(answer)
  }
}

function call (fn) {
  try {
    return fn()
  } catch (e) {
    throw fromNative(e)
  }
}

const SESSION_EVENTS = new Set(['connected', 'disconnected', 'ended', 'joined', 'left', 'message', 'clientError', 'lagged'])

class Server extends EventEmitter {
  #native
  #scheme
  #closing = null
  #pumping = false

  /** @internal Use `Server.start()`. */
  constructor (handle, scheme = 'ws') {
    super()
    this.#native = handle
    this.#scheme = scheme
    // Session events are subscribed to when the first listener is added
    // (before that the relay builds none).
    this.on('newListener', (event) => {
      if (SESSION_EVENTS.has(event) && !this.#pumping) {
        this.#pumping = true
        this.#pump()
      }
    })
    // Keep the process alive while the relay serves, as a listening
    // http.Server does; `close()` releases it.
    this.#native.closed().catch(() => {})
  }

  /**
   * Starts a relay. `config` has the sections and keys of the TOML file
   * (`{ server: { listen: '127.0.0.1:9000' }, auth: { tokens: { … } } }`);
   * `server.listen` defaults to a free port on 127.0.0.1.
   * `options.auth(credentials)` decides who connects: return a user name,
   * `{ user, expiresInMs, roles }`, `true` (anonymous) or null/false to
   * refuse. `roles` name `[auth.roles]` entries (without them the
   * connection gets `auth.default_roles`). With `tls.cert_file` and
   * `tls.key_file` the relay serves `wss://` (see `url`).
   * `options.rpc` maps method names to `async (data, { session, user })`
   * handlers; throw a `ZerorelayError` with a protocol code to refuse. A
   * handler that has not answered within `limits.rpc_timeout_ms` (30000 by
   * default) fails that call with `internal`.
   * `options.authorize({ action, resource, user, roles, claims })` is asked
   * about every join, publish, send, broadcast and rpc the roles allowed:
   * return true or nothing to allow, false or a message to refuse
   * (`forbidden`), or `{ allow, message }`. `options.validate` maps group
   * patterns (`chat-*`) to `async (data, { group, user, session, claims })`
   * functions run on every client publish to a matching group: return true
   * or nothing to accept, false or a message to reject (`bad_request`),
   * `{ reject: { code, message } }`, or `{ rewrite: data }` to route `data`
   * instead. A hook that throws, answers something else, or takes longer
   * than `limits.authorize_timeout_ms` / `limits.validate_timeout_ms`
   * (1000 by default) fails that request with `internal`.
   */
  static async start (config = {}, options = {}) {
    if (config === null || typeof config !== 'object' || Array.isArray(config)) {
      throw new ZerorelayError('invalid_argument', 'config must be an object')
    }
    const { auth, rpc = {}, authorize, validate = {}, logger, logLevel, ...rest } = options || {}
    const unknown = Object.keys(rest)
    if (unknown.length > 0) throw new ZerorelayError('invalid_argument', `unknown option ${unknown[0]} (known: auth, rpc, authorize, validate, logger, logLevel)`)
    if (auth !== undefined && typeof auth !== 'function') throw new ZerorelayError('invalid_argument', 'option auth must be a function')
    if (authorize !== undefined && typeof authorize !== 'function') throw new ZerorelayError('invalid_argument', 'option authorize must be a function')
    for (const [name, option, keys] of [['rpc', rpc, 'method names'], ['validate', validate, 'group patterns']]) {
      if (option === null || typeof option !== 'object') throw new ZerorelayError('invalid_argument', `option ${name} must be an object of ${keys} to functions`)
      for (const [k, f] of Object.entries(option)) {
        if (typeof f !== 'function') throw new ZerorelayError('invalid_argument', `option ${name}.${k} must be a function`)
      }
    }
    const methods = Object.keys(rpc)
    const patterns = Object.keys(validate)
    if (logger !== undefined) logging.setLogger(logger, logLevel)
    let handle
    try {
      // An embedded relay listens on a free port of 127.0.0.1 unless told
      // otherwise (the same default in every SDK; the zerorelay command
      // keeps 127.0.0.1:8080).
      const server = config.server === undefined ? {} : config.server
      if (server === null || typeof server !== 'object' || Array.isArray(server)) {
        throw new ZerorelayError('invalid_argument', 'config: `server` must be an object')
      }
      handle = await native.startServer(
        JSON.stringify({ ...config, server: { listen: '127.0.0.1:0', ...server } }),
        auth ? authCallback(auth) : undefined,
        methods,
        methods.length > 0 ? rpcCallback({ ...rpc }) : undefined,
        authorize ? authorizeCallback(authorize) : undefined,
        patterns,
        patterns.map((p) => validateCallback(p, validate[p])),
      )
    } catch (e) {
      throw fromNative(e)
    }
    // The relay serves wss:// when `[tls]` names a certificate (the
    // configuration refuses a cert_file without a key_file).
    const tls = config.tls !== null && typeof config.tls === 'object' && Boolean(config.tls.cert_file)
    return new Server(handle, tls ? 'wss' : 'ws')
  }

  async #pump () {
    try {
      for (;;) {
        const batch = await this.#native.nextEvents()
        if (batch === null) return
        for (const e of JSON.parse(batch)) {
          try {
            if (e.type === 'connected') {
              this.emit('connected', { session: e.session, user: e.user ?? null, resumed: e.resumed, remote: e.remote ?? null, roles: e.roles ?? [] })
            } else if (e.type === 'disconnected' || e.type === 'ended') {
              this.emit(e.type, { session: e.session, user: e.user ?? null, reason: e.reason })
            } else if (e.type === 'joined' || e.type === 'left') {
              this.emit(e.type, { session: e.session, user: e.user ?? null, group: e.group })
            } else if (e.type === 'message') {
              this.emit('message', { kind: e.kind, session: e.session, user: e.user ?? null, group: e.group ?? null, to: e.to ?? null, bytes: e.bytes })
            } else if (e.type === 'error') {
              // Not 'error': an EventEmitter throws on an 'error' nobody listens to.
              this.emit('clientError', { session: e.session ?? null, code: e.code, message: e.message, frameType: e.frame_type })
            } else if (e.type === 'lagged') {
              this.emit('lagged', { missed: e.missed })
            }
          } catch (err) {
            rethrowLater(err)
          }
        }
      }
    } catch (err) {
      logging.warn(`session events stopped: ${err && err.message}`)
    }
  }

  /** The bound address, `host:port`. */
  get address () { return this.#native.address }

  /** The WebSocket URL clients connect to: `wss://` when the relay serves TLS. */
  get url () { return `${this.#scheme}://${this.#native.address}/ws` }

  /** Publishes to a group's members; returns the number of sessions reached. */
  publish (group, data) { return call(() => this.#native.publish(group, dataJson(data))) }

  /** Sends to every session of a user; `not_found` when there is none. */
  sendToUser (user, data) { return call(() => this.#native.sendToUser(user, dataJson(data))) }

  /** Sends to one session; `not_found` when it does not exist. */
  sendToSession (session, data) { call(() => this.#native.sendToSession(session, dataJson(data))) }

  /** Broadcasts to every session; returns the number reached. */
  broadcast (data) { return call(() => this.#native.broadcast(dataJson(data))) }

  /** Revokes a session: its client gets close 4006 and the session ends (no resume). */
  revokeSession (session) { return call(() => this.#native.revokeSession(session)) }
  /** Revokes every session of a user (close 4006); returns how many were ended. */
  revokeUser (user) { return call(() => this.#native.revokeUser(user)) }
  /** Ends a session for good (its client gets close 4005). */
  disconnect (session) { return call(() => this.#native.disconnect(session)) }

  /** Cuts a session's connection as a network failure would; the client resumes. */
  dropConnection (session) { return call(() => this.#native.dropConnection(session)) }

  /** Every session: `{ id, user, connected, groups, last_seq, unacked, … }`. */
  sessions () { return JSON.parse(this.#native.sessions()) }

  /** Every group and its member count. */
  groups () { return JSON.parse(this.#native.groups()) }

  /** Who is in a group: `{ group, members: [{ user, sessions }], anonymous }`. */
  presence (group) { return JSON.parse(call(() => this.#native.presence(group))) }

  /** The relay's counters. */
  stats () { return JSON.parse(this.#native.stats()) }

  /** Shuts down gracefully (clients get 1001); resolves when every connection closed. */
  close () {
    if (!this.#closing) {
      this.#closing = this.#native.close().catch((e) => { throw fromNative(e) })
    }
    return this.#closing
  }
}

if (typeof Symbol.asyncDispose === 'symbol') {
  // `await using server = await Server.start(...)` where the runtime has it.
  Server.prototype[Symbol.asyncDispose] = function () { return this.close() }
}

module.exports = { Server }
