'use strict'
// Client options: the JavaScript names (camelCase) of the core's
// ClientOptions, checked here so that a mistyped key is refused by name.
const { ZerorelayError } = require('./errors')

const SHAPE = {
  token: 'string',
  user: 'string',
  clientName: 'string',
  headers: 'headers',
  reconnect: { enabled: 'boolean', baseMs: 'number', capMs: 'number', maxAttempts: 'number' },
  ack: { batch: 'number', intervalMs: 'number' },
  offlineQueue: { maxMessages: 'number', maxBytes: 'number', whenFull: ['failFast', 'dropOldest'] },
  requestTimeoutMs: 'number',
  connectTimeoutMs: 'number',
  refreshMarginMs: 'number',
  caFile: 'string',
  persistPath: 'string',
  seed: 'number',
}

const RENAME = { offlineQueue: 'queue', whenFull: 'full' }
const VALUES = { failFast: 'fail_fast', dropOldest: 'drop_oldest' }

function snake (k) {
  return RENAME[k] || k.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase())
}

function bad (path, want) {
  return new ZerorelayError('invalid_argument', `option ${path} must be ${want}`)
}

function convert (value, shape, path) {
  if (value === undefined || value === null) return undefined
  if (Array.isArray(shape)) {
    if (!shape.includes(value)) throw bad(path, 'one of ' + shape.map((s) => JSON.stringify(s)).join(', '))
    return VALUES[value]
  }
  if (shape === 'headers') {
    if (typeof value !== 'object' || Array.isArray(value)) throw bad(path, 'an object of header names to strings')
    for (const [k, v] of Object.entries(value)) {
      if (typeof v !== 'string') throw bad(`${path}.${k}`, 'a string')
    }
    return value
  }
  if (typeof shape === 'string') {
    if (typeof value !== shape) throw bad(path, 'a ' + shape)
    if (shape === 'number' && (!Number.isInteger(value) || value < 0)) throw bad(path, 'a non-negative integer')
    return value
  }
  if (typeof value !== 'object' || Array.isArray(value)) throw bad(path, 'an object')
  const out = {}
  for (const [k, v] of Object.entries(value)) {
    const sub = path ? `${path}.${k}` : k
    if (!Object.prototype.hasOwnProperty.call(shape, k)) {
      throw new ZerorelayError('invalid_argument', `unknown option ${sub} (known: ${Object.keys(shape).join(', ')})`)
    }
    const c = convert(v, shape[k], sub)
    if (c !== undefined) out[snake(k)] = c
  }
  return out
}

/** The core's options JSON for JavaScript client options. */
function clientOptionsJson (options, version) {
  const o = convert(options, SHAPE, '')
  if (o.client_name === undefined) o.client_name = `zerorelay-node/${version}`
  return JSON.stringify(o)
}

module.exports = { clientOptionsJson }
