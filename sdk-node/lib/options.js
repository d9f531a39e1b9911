'use strict'
// Client options: the JavaScript names (camelCase) of the engine's
// ClientOptions, checked against the table generated from the engine's own
// description (options.generated.js), so that a mistyped key or a wrongly
// typed value is refused by its JavaScript name, and a new engine option
// needs no change here.
const { ZerorelayError } = require('./errors')
const OPTIONS = require('./options.generated')

function bad (path, want) {
  return new ZerorelayError('invalid_argument', `option ${path} must be ${want}`)
}

function isObject (value) {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function convert (value, spec, path) {
  switch (spec.type) {
    case 'boolean':
    case 'string':
      if (typeof value !== spec.type) throw bad(path, 'a ' + spec.type)
      return value
    case 'integer':
      if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) throw bad(path, 'a non-negative integer')
      if (value > spec.max) throw bad(path, `a non-negative integer at most ${spec.max}`)
      return value
    case 'enum':
      if (typeof value !== 'string' || !Object.prototype.hasOwnProperty.call(spec.values, value)) {
        throw bad(path, 'one of ' + Object.keys(spec.values).map((v) => JSON.stringify(v)).join(', '))
      }
      return spec.values[value]
    case 'stringMap':
      if (!isObject(value)) throw bad(path, 'an object of header names to strings')
      for (const [k, v] of Object.entries(value)) {
        if (typeof v !== 'string') throw bad(`${path}.${k}`, 'a string')
      }
      return value
    case 'section':
      if (!isObject(value)) throw bad(path, 'an object')
      return section(value, spec.fields, path + '.')
    default:
      throw new ZerorelayError('internal', `option ${path} has a type this SDK does not know (${spec.type})`)
  }
}

/**
 * The engine's keys and values for JavaScript options; null and undefined
 * leave the default. `also` are names the caller handles itself, listed
 * with the known options when one is unknown.
 */
function section (options, fields, prefix, also = []) {
  const out = {}
  for (const [k, v] of Object.entries(options)) {
    const path = prefix + k
    if (!Object.prototype.hasOwnProperty.call(fields, k)) {
      const known = [...Object.keys(fields), ...also].join(', ')
      throw new ZerorelayError('invalid_argument', `unknown option ${path} (known: ${known})`)
    }
    if (v === undefined || v === null) continue
    out[fields[k].key] = convert(v, fields[k], path)
  }
  return out
}

/**
 * The engine's options JSON for JavaScript client options (without the
 * SDK's own, whose names `own` lists for error messages).
 */
function clientOptionsJson (options, version, own = []) {
  const clientName = options.clientName ?? `zerorelay-node/${version}`
  return JSON.stringify(section({ ...options, clientName }, OPTIONS, '', own))
}

module.exports = { clientOptionsJson }
