'use strict'
// The core's log records reach a logger the application passes in. Default:
// silent, unless DEBUG names zerorelay (then console.error at debug level).
const native = require('./native')

const METHODS = { error: 'error', warn: 'warn', info: 'info', debug: 'debug', trace: 'debug' }
let logger = null
let installed = false

function deliver (json) {
  if (!logger) return
  let r
  try { r = JSON.parse(json) } catch { return }
  const method = METHODS[r.level] || 'info'
  const fn = typeof logger[method] === 'function' ? logger[method] : logger.log
  if (typeof fn !== 'function') return
  try {
    fn.call(logger, `zerorelay ${r.level} ${r.target}: ${r.message}`, r.fields)
  } catch {
    // A failing logger must not break the relay.
  }
}

/**
 * Sends the core's log records at `level` and above (or a filter such as
 * `zerorelay=debug`) to `target` (anything with error/warn/info/debug
 * methods: `console`, pino, winston). `null` silences it again. The level is
 * fixed by the first call in a process.
 */
function setLogger (target, level = 'info') {
  if (target !== null && (typeof target !== 'object' && typeof target !== 'function')) {
    const { ZerorelayError } = require('./errors')
    throw new ZerorelayError('invalid_argument', 'logger must be an object with error/warn/info/debug methods, or null')
  }
  logger = target
  if (target && !installed) {
    installed = true
    try {
      native.initLogging(level, deliver)
    } catch (e) {
      installed = false
      throw require('./errors').fromNative(e)
    }
  }
}

/** Logs a message of the JavaScript layer itself at warn level. */
function warn (message) {
  if (!logger) return
  const fn = typeof logger.warn === 'function' ? logger.warn : logger.log
  if (typeof fn !== 'function') return
  try { fn.call(logger, `zerorelay warn: ${message}`) } catch { /* see deliver() */ }
}

function fromEnvironment () {
  const debug = process.env.DEBUG || ''
  if (/(^|[,\s])zerorelay(\*|:\*)?($|[,\s])/.test(debug) || debug === '*') {
    // Like the `debug` package: everything to stderr.
    const stderr = (m, fields) => {
      const extra = fields && Object.keys(fields).length > 0 ? ' ' + JSON.stringify(fields) : ''
      process.stderr.write(`${new Date().toISOString()} ${m}${extra}\n`)
    }
    setLogger({ error: stderr, warn: stderr, info: stderr, debug: stderr }, 'zerorelay=debug')
  }
}

module.exports = { setLogger, fromEnvironment, warn }
