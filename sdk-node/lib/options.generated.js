'use strict'
// Generated from the engine's ClientOptions (zerorelay/src/client/options.rs)
// by bindings/node/tests/options.rs; do not edit. To regenerate:
// ZERORELAY_UPDATE_OPTIONS=1 cargo test -p zerorelay-node --test options
//
// JavaScript name -> { key: the engine's key, type, and per type: max
// (integer), values (enum: JavaScript value -> engine value), fields
// (section) }.
module.exports = {
  token: { key: 'token', type: 'string' },
  user: { key: 'user', type: 'string' },
  clientName: { key: 'client_name', type: 'string' },
  headers: { key: 'headers', type: 'stringMap' },
  reconnect: { key: 'reconnect', type: 'section', fields: {
    enabled: { key: 'enabled', type: 'boolean' },
    baseMs: { key: 'base_ms', type: 'integer', max: Number.MAX_SAFE_INTEGER },
    capMs: { key: 'cap_ms', type: 'integer', max: Number.MAX_SAFE_INTEGER },
    maxAttempts: { key: 'max_attempts', type: 'integer', max: 4294967295 },
  } },
  ack: { key: 'ack', type: 'section', fields: {
    batch: { key: 'batch', type: 'integer', max: 4294967295 },
    intervalMs: { key: 'interval_ms', type: 'integer', max: Number.MAX_SAFE_INTEGER },
  } },
  offlineQueue: { key: 'queue', type: 'section', fields: {
    maxMessages: { key: 'max_messages', type: 'integer', max: Number.MAX_SAFE_INTEGER },
    maxBytes: { key: 'max_bytes', type: 'integer', max: Number.MAX_SAFE_INTEGER },
    whenFull: { key: 'full', type: 'enum', values: { failFast: 'fail_fast', dropOldest: 'drop_oldest' } },
  } },
  requestTimeoutMs: { key: 'request_timeout_ms', type: 'integer', max: Number.MAX_SAFE_INTEGER },
  connectTimeoutMs: { key: 'connect_timeout_ms', type: 'integer', max: Number.MAX_SAFE_INTEGER },
  refreshMarginMs: { key: 'refresh_margin_ms', type: 'integer', max: Number.MAX_SAFE_INTEGER },
  caFile: { key: 'ca_file', type: 'string' },
  persistPath: { key: 'persist_path', type: 'string' },
  seed: { key: 'seed', type: 'integer', max: Number.MAX_SAFE_INTEGER },
}
