'use strict'
// Loads the compiled addon (built from source by `npm install`, or the
// per-platform package when published; see README "Prebuilt binaries").
const { ZerorelayError } = require('./errors')

let native
try {
  native = require('../native/index.js')
} catch (e) {
  throw new ZerorelayError(
    'internal',
    'the zerorelay addon is not built for this platform: run `npm rebuild zerorelay` ' +
      '(needs Rust) or install the prebuilt package for ' + process.platform + '-' + process.arch,
    { cause: e },
  )
}
module.exports = native
