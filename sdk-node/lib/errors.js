'use strict'
// Errors: every failure is a ZerorelayError whose `code` is one of the
// protocol's error codes or a client code (tests/vectors/codes.json).

/** The protocol's error codes (docs/PROTOCOL.md). */
const PROTOCOL_CODES = Object.freeze([
  'bad_frame', 'bad_request', 'unsupported', 'unauthorized', 'forbidden',
  'not_found', 'too_large', 'rate_limited', 'limit_exceeded', 'internal',
])

/** Codes the client itself reports (and the host API's `io`). */
const CLIENT_CODES = Object.freeze([
  'timeout', 'closed', 'queue_full', 'cancelled', 'invalid_argument', 'connection', 'io', 'undecodable',
  'unknown_outcome',
])

class ZerorelayError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {ErrorOptions & { seq?: number }} [options]
   */
  constructor (code, message, options) {
    super(message, options)
    this.name = 'ZerorelayError'
    this.code = code
    // The one message an 'error' event is about (code 'undecodable').
    if (options && options.seq !== undefined) this.seq = options.seq
  }
}

const CODED = /^\[([a-z_]+)\] ([\s\S]*)$/

/** Turns an error thrown by the addon (`[code] message`) into a ZerorelayError. */
function fromNative (err) {
  if (err instanceof ZerorelayError) return err
  const m = CODED.exec(err && err.message)
  if (m) return new ZerorelayError(m[1], m[2])
  return new ZerorelayError('internal', String(err && err.message ? err.message : err), { cause: err })
}

/** An AbortSignal's abort as an error, as Node APIs do (`name` AbortError). */
function abortError (signal) {
  const e = new ZerorelayError('cancelled', 'the request was cancelled', { cause: signal.reason })
  e.name = 'AbortError'
  return e
}

module.exports = { ZerorelayError, PROTOCOL_CODES, CLIENT_CODES, fromNative, abortError }
