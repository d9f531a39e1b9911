'use strict'
/**
 * Zerorelay for Node.js: a client (`connect`) and an embedded relay
 * (`Server`) over the shared Rust engine.
 */
const { connect, Client } = require('./client')
const { Server } = require('./server')
const { ZerorelayError, PROTOCOL_CODES, CLIENT_CODES } = require('./errors')
const logging = require('./logging')

logging.fromEnvironment()

module.exports = {
  connect,
  Client,
  Server,
  ZerorelayError,
  PROTOCOL_CODES,
  CLIENT_CODES,
  setLogger: logging.setLogger,
  version: require('../package.json').version,
}
