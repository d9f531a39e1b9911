// Type declarations for the Zerorelay Node SDK (CommonJS and ES module).
import { EventEmitter } from 'node:events'

/** The protocol's error codes (docs/PROTOCOL.md). */
export type ProtocolCode =
  | 'bad_frame' | 'bad_request' | 'unsupported' | 'unauthorized' | 'forbidden'
  | 'not_found' | 'too_large' | 'rate_limited' | 'limit_exceeded' | 'internal'

/** Codes the client reports itself (and the host API's `io`). */
export type ClientCode =
  | 'timeout' | 'closed' | 'queue_full' | 'cancelled' | 'invalid_argument' | 'connection' | 'io'
  | 'undecodable' | 'unknown_outcome'

export type ErrorCode = ProtocolCode | ClientCode

export declare const PROTOCOL_CODES: readonly ProtocolCode[]
export declare const CLIENT_CODES: readonly ClientCode[]
export declare const version: string

/** Every failure: `code` says what happened. An aborted request has `name` 'AbortError'. */
export declare class ZerorelayError extends Error {
  constructor (code: ErrorCode | string, message: string, options?: ErrorOptions & { seq?: number })
  readonly code: ErrorCode
  /** On an `'error'` event about one message (code `undecodable`): its seq. */
  readonly seq?: number
}

/** Any JSON-serializable value. */
export type Json = string | number | boolean | null | Json[] | { [key: string]: Json }

export interface Message<T = unknown> {
  /** Per-session sequence number, contiguous from 1. */
  seq: number
  kind: 'direct' | 'group' | 'broadcast'
  /** The sender's user; null for anonymous senders and the host. */
  from: string | null
  fromSession: string | null
  /** The group, for group messages. */
  group: string | null
  data: T
  /** When the relay routed it, Unix milliseconds. */
  ts: number
}

export interface ConnectedEvent { session: string; user: string | null; resumed: boolean; lostSession: string | null }
export interface DisconnectedEvent { code: number | null; reason: string; willRetry: boolean }
export interface ReconnectingEvent { attempt: number; delayMs: number }
export interface LossEvent { fromSeq: number; toSeq: number; reason: string }
export interface RejoinedEvent { groups: string[] }
/** A user joined or left a group joined with `{ presence: true }` (a user's first and last session). */
export interface PresenceEvent { group: string; user: string | null; change: 'join' | 'leave' }
/** Joins and leaves of a large group since the last summary (`presence.notify_ms`). */
export interface PresenceSummaryEvent { group: string; joined: number; left: number; present: number }
/** Who is in a group. */
export interface Presence { group: string; members: Array<{ user: string; sessions: number }>; anonymous: number }
export interface ClosedEvent { reason: string }

export interface Logger {
  error?(message: string, fields?: Record<string, unknown>): void
  warn?(message: string, fields?: Record<string, unknown>): void
  info?(message: string, fields?: Record<string, unknown>): void
  debug?(message: string, fields?: Record<string, unknown>): void
  log?(message: string, fields?: Record<string, unknown>): void
}

export type TokenProvider = () => string | { token: string; expiresInMs?: number } | Promise<string | { token: string; expiresInMs?: number }>

// BEGIN GENERATED CLIENT OPTIONS
// From the engine's ClientOptions (zerorelay/src/client/options.rs) by
// bindings/node/tests/options.rs: edit the Rust doc comments, then run
// ZERORELAY_UPDATE_OPTIONS=1 cargo test -p zerorelay-node --test options
/** What the client engine can be told (`connect` adds a few options of the SDK's own). */
export interface ClientOptions {
  /**
   * The token sent in `hello` (and re-sent on every reconnect). A token
   * provider, where a binding offers one, takes precedence.
   */
  token?: string
  /** The user name, honoured by servers in development mode only. */
  user?: string
  /**
   * The `client` string sent in `hello`.
   * @default 'zerorelay-node/<version>'
   */
  clientName?: string
  /** Extra HTTP headers on the WebSocket upgrade request. */
  headers?: Record<string, string>
  /** Reconnection. */
  reconnect?: {
    /**
     * Whether to reconnect at all.
     * @default true
     */
    enabled?: boolean
    /**
     * Ceiling of the first delay, in ms.
     * @default 250
     */
    baseMs?: number
    /**
     * Largest delay ceiling, in ms.
     * @default 30000
     */
    capMs?: number
    /** Give up after this many consecutive failed attempts (`null`: never). */
    maxAttempts?: number
  }
  /** Acknowledgements. */
  ack?: {
    /**
     * Send an ack once this many messages are unacknowledged…
     * @default 256
     */
    batch?: number
    /**
     * …or this long after the first unacknowledged one, in ms.
     * @default 1000
     */
    intervalMs?: number
  }
  /** The offline queue. */
  offlineQueue?: {
    /**
     * Requests held while disconnected.
     * @default 1000
     */
    maxMessages?: number
    /**
     * Bytes of requests held while disconnected.
     * @default 1048576
     */
    maxBytes?: number
    /**
     * What to do when full.
     * - 'failFast': Refuse the new request with `queue_full`.
     * - 'dropOldest': Drop the oldest queued request (it fails with `queue_full`) and queue
     *   the new one.
     * @default 'failFast'
     */
    whenFull?: 'failFast' | 'dropOldest'
  }
  /**
   * How long a request waits for its answer once sent, in ms.
   * @default 10000
   */
  requestTimeoutMs?: number
  /**
   * How long to wait for the transport and `welcome`, in ms.
   * @default 10000
   */
  connectTimeoutMs?: number
  /**
   * Ask the token provider for a new token this long before the current
   * one expires, in ms.
   * @default 30000
   */
  refreshMarginMs?: number
  /**
   * A PEM file with extra trusted CA certificates for `wss://` (on top of
   * the system's roots).
   */
  caFile?: string
  /**
   * Persist the offline queue and the resume state to this file, so that
   * a process restarted while offline loses nothing it had accepted.
   */
  persistPath?: string
  /** Seed for reconnect jitter (tests); random when absent. */
  seed?: number
}
// END GENERATED CLIENT OPTIONS

/** `connect`'s options: the engine's, and the SDK's own. */
export interface ConnectOptions extends ClientOptions {
  /** Asked for a token before every connection, before it expires (`expiresInMs`), and when the relay sends `refresh_required`; wins over `token`. */
  tokenProvider?: TokenProvider
  /** Resolve only once welcomed (default), or at once with requests queued. */
  waitForConnection?: boolean
  /** Where the core's log records go (see `setLogger`). */
  logger?: Logger | null
  logLevel?: string
}

export interface RequestOptions {
  /** Cancels the request: a queued request is then never sent. */
  signal?: AbortSignal
}

export interface JoinOptions extends RequestOptions {
  /** Also be told who joins and leaves ('presence' and 'presenceSummary' events). */
  presence?: boolean
}

export interface ResendOptions extends RequestOptions {
  /**
   * If the relay loses the session after the request may have been routed
   * (the next 'connected' event has `resumed: false`), send it again in the
   * new session instead of rejecting it with `unknown_outcome`. For
   * requests that are idempotent or whose duplicate is acceptable. Default
   * false.
   */
  resend?: boolean
}

export interface EchoOptions extends ResendOptions {
  /** Deliver to this client too. */
  echo?: boolean
}

export type SendTarget = { to: string; session?: never } | { session: string; to?: never }

export interface ClientEvents {
  message: [Message]
  connected: [ConnectedEvent]
  disconnected: [DisconnectedEvent]
  reconnecting: [ReconnectingEvent]
  loss: [LossEvent]
  rejoined: [RejoinedEvent]
  presence: [PresenceEvent]
  presenceSummary: [PresenceSummaryEvent]
  error: [ZerorelayError]
  closed: [ClosedEvent]
}

export declare class Client extends EventEmitter {
  private constructor ()
  readonly state: 'connecting' | 'connected' | 'closed'
  readonly session: string | null
  join (group: string, options?: JoinOptions): Promise<void>
  leave (group: string, options?: RequestOptions): Promise<void>
  presence (group: string, options?: RequestOptions): Promise<Presence>
  publish (group: string, data: unknown, options?: EchoOptions): Promise<void>
  send (target: SendTarget, data: unknown, options?: ResendOptions): Promise<void>
  broadcast (data: unknown, options?: EchoOptions): Promise<void>
  rpc<R = unknown> (method: string, data?: unknown, options?: ResendOptions): Promise<R>
  messages<T = unknown> (): AsyncIterableIterator<Message<T>>
  [Symbol.asyncIterator] (): AsyncIterableIterator<Message>
  close (): Promise<void>

  on<E extends keyof ClientEvents> (event: E, listener: (...args: ClientEvents[E]) => void): this
  once<E extends keyof ClientEvents> (event: E, listener: (...args: ClientEvents[E]) => void): this
  off<E extends keyof ClientEvents> (event: E, listener: (...args: ClientEvents[E]) => void): this
  addListener<E extends keyof ClientEvents> (event: E, listener: (...args: ClientEvents[E]) => void): this
  removeListener<E extends keyof ClientEvents> (event: E, listener: (...args: ClientEvents[E]) => void): this
  emit<E extends keyof ClientEvents> (event: E, ...args: ClientEvents[E]): boolean
}

export declare function connect (url: string, options?: ConnectOptions): Promise<Client>

export interface Credentials {
  token: string | null
  /** `hello.user`: a claim, not a proof. */
  user: string | null
  remote: string | null
  client: string | null
}

/** An auth callback's acceptance. */
export interface AuthAllow {
  /** The user the connection acts as (absent or null: anonymous). */
  user?: string | null
  /** How long the credentials stay valid: the relay sends `refresh_required` ahead of it and closes with 4003 at it unless the client refreshes. */
  expiresInMs?: number | null
  /** Roles from `auth.roles` that decide what the connection may do (absent or null: `auth.default_roles`). */
  roles?: string[] | null
}

export type AuthAnswer = string | AuthAllow | boolean | null | undefined

export interface RpcContext { session: string; user: string | null }

/** What an `authorize` function is asked about. */
export interface AuthorizeRequest {
  action: 'join' | 'publish' | 'send' | 'broadcast' | 'rpc'
  /** The group (join, publish), the recipient `user:<name>` or `session:<id>` (send), the method (rpc); null for broadcast. */
  resource: string | null
  /** The connection's user (null: anonymous). */
  user: string | null
  /** The roles its credentials named (empty when `auth.default_roles` apply). */
  roles: string[]
  /** Its token's claims (a JWT's payload); null when the credentials carry none. */
  claims: Json
}

/**
 * An `authorize` answer: true or nothing allows; false refuses with
 * `forbidden`; a string refuses with that message; `{ allow, message }` says
 * both. Anything else fails the request with `internal`.
 */
export type AuthorizeAnswer = boolean | string | { allow: boolean; message?: string | null } | null | undefined | void

/** Who published the payload a `validate` function is shown. */
export interface ValidateContext {
  /** The group it was published to (one matching the pattern). */
  group: string
  user: string | null
  session: string
  /** The sender's token claims; null when its credentials carry none. */
  claims: Json
}

/**
 * A `validate` verdict: true or nothing accepts; false rejects with
 * `bad_request`; a string rejects with `bad_request` and that message;
 * `{ reject: { code, message } }` rejects with a protocol code (default
 * `bad_request`); `{ rewrite: data }` routes `data` instead (not null).
 * Anything else fails the publish with `internal`.
 */
export type ValidateVerdict =
  | boolean | string | null | undefined | void
  | { reject: { code?: ProtocolCode; message: string } }
  | { rewrite: unknown }

export interface ServerOptions {
  /** Decides who connects: a user name, `{ user, expiresInMs, roles }`, true (anonymous), or null/false to refuse. */
  auth?: (credentials: Credentials) => AuthAnswer | Promise<AuthAnswer>
  /**
   * RPC methods; throw a ZerorelayError with a protocol code to refuse. A
   * handler that has not answered within `limits.rpc_timeout_ms` (default
   * 30000) fails that call with `internal`.
   */
  rpc?: Record<string, (data: any, context: RpcContext) => unknown>
  /**
   * Asked about every join, publish, send, broadcast and rpc that the roles
   * allowed, within `limits.authorize_timeout_ms` (default 1000). A throw,
   * another answer or no answer in time fails that request with `internal`.
   */
  authorize?: (request: AuthorizeRequest) => AuthorizeAnswer | Promise<AuthorizeAnswer>
  /**
   * Group pattern (`chat-*`) → a function run on every client publish to a
   * matching group, in this order, within `limits.validate_timeout_ms`
   * (default 1000). A throw, another answer or no answer in time fails that
   * publish with `internal`.
   */
  validate?: Record<string, (data: any, context: ValidateContext) => ValidateVerdict | Promise<ValidateVerdict>>
  logger?: Logger | null
  logLevel?: string
}

/** `[auth.jwt]`: JSON Web Tokens checked by the relay itself (one key source). */
export interface JwtConfig {
  /** An HMAC secret (HS256/384/512). */
  secret?: string
  secret_file?: string
  /** A PEM public key (RS*, PS*, ES*, EdDSA). */
  public_key_file?: string
  jwks_file?: string
  jwks_url?: string
  issuer?: string
  audience?: string
  leeway_s?: number
  /** Dotted paths into the claims; defaults `sub`, `roles`, `groups`. */
  user_claim?: string
  roles_claim?: string
  groups_claim?: string
  jwks_refresh_s?: number
  refresh_min_s?: number
}

/** `[auth]`. */
export interface AuthConfig {
  /** Fixed token → user map. */
  tokens?: Record<string, string>
  jwt?: JwtConfig
  /** How long before a credential expires the relay sends `refresh_required` (at most a tenth of its lifetime); default 60000. */
  refresh_ahead_ms?: number
  /** Roles of an identity that names none. */
  default_roles?: string[]
  /** What each role may do: `action:pattern` (`join:room-*`, `join:user:{user}`, `*`). */
  roles?: Record<string, { allow?: string[] }>
  /** An HTTP endpoint that decides (opaque tokens): `{ token, client, remote }` is POSTed to it. */
  callback?: { url?: string; timeout_ms?: number; cache_s?: number }
}

/** `[tls]`: the relay serves `wss://` (TLS 1.2 or newer) with this certificate. */
export interface TlsConfig {
  /** PEM certificate chain. */
  cert_file?: string
  /** PEM private key. */
  key_file?: string
  /** How often the files are checked for a new certificate (0: never). */
  watch_ms?: number
}

/** The relay's configuration: the sections and keys of the TOML file. */
export interface ServerConfig {
  server?: { listen?: string; allowed_origins?: string[]; [key: string]: unknown }
  session?: Record<string, unknown>
  limits?: Record<string, unknown>
  auth?: AuthConfig
  tls?: TlsConfig
  features?: { client_broadcast?: boolean; send_to_session?: boolean }
  log?: Record<string, unknown>
}

export interface SessionInfo {
  id: string
  user: string | null
  connected: boolean
  groups: string[]
  last_seq: number
  unacked: number
  [key: string]: unknown
}

export interface ServerEvents {
  /** A client said hello and was welcomed (`resumed`: an existing session). */
  connected: [{ session: string; user: string | null; resumed: boolean; remote: string | null; roles: string[] }]
  /** A connection ended; the session stays resumable unless 'ended' follows. */
  disconnected: [{ session: string; user: string | null; reason: string }]
  /** A session ended for good (closed by its client, by the host, or expired). */
  ended: [{ session: string; user: string | null; reason: string }]
  /** A session joined a group. */
  joined: [{ session: string; user: string | null; group: string }]
  /** A session left a group (by leave, or because it ended). */
  left: [{ session: string; user: string | null; group: string }]
  /** A client routed a message (only with `hooks: { messages: true }` in the config). */
  message: [{ kind: 'direct' | 'group' | 'broadcast'; session: string; user: string | null; group: string | null; to: string | null; bytes: number }]
  /** The server refused a client's frame with an error. */
  clientError: [{ session: string | null; code: string; message: string; frameType: string }]
  /** The listeners fell more than 1,024 events behind and missed these. */
  lagged: [{ missed: number }]
}

export declare class Server extends EventEmitter {
  private constructor ()
  on<E extends keyof ServerEvents> (event: E, listener: (...args: ServerEvents[E]) => void): this
  once<E extends keyof ServerEvents> (event: E, listener: (...args: ServerEvents[E]) => void): this
  off<E extends keyof ServerEvents> (event: E, listener: (...args: ServerEvents[E]) => void): this
  static start (config?: ServerConfig, options?: ServerOptions): Promise<Server>
  readonly address: string
  /** `ws://host:port/ws`, or `wss://` when `tls` names a certificate. */
  readonly url: string
  publish (group: string, data: unknown): number
  sendToUser (user: string, data: unknown): number
  sendToSession (session: string, data: unknown): void
  broadcast (data: unknown): number
  disconnect (session: string): boolean
  /** Revokes a session: close 4006, the session ends (no resume). */
  revokeSession (session: string): boolean
  /** Revokes every session of a user (close 4006); how many were ended. */
  revokeUser (user: string): number
  dropConnection (session: string): boolean
  sessions (): SessionInfo[]
  groups (): Array<{ name: string; members: number; [key: string]: unknown }>
  presence (group: string): Presence
  stats (): Record<string, number>
  close (): Promise<void>
}

/** Sends the core's log records at `level` and above to `logger` (null: silent). */
export declare function setLogger (logger: Logger | null, level?: string): void

declare const zerorelay: {
  connect: typeof connect
  Client: typeof Client
  Server: typeof Server
  ZerorelayError: typeof ZerorelayError
  PROTOCOL_CODES: typeof PROTOCOL_CODES
  CLIENT_CODES: typeof CLIENT_CODES
  setLogger: typeof setLogger
  version: string
}
export default zerorelay
