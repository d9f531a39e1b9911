'use strict'
// Loads the compiled addon: the per-platform package npm installs through
// optionalDependencies (zerorelay-linux-x64-gnu, ...), or, in a checkout of
// the repository, the one scripts/build.js compiled into native/.
const { ZerorelayError } = require('./errors')
const { platformName } = require('./platform')

let native
try {
  native = require('../native/index.js')
} catch (e) {
  const platform = platformName()
  throw new ZerorelayError(
    'internal',
    `the zerorelay native addon for ${platform} is not installed. It comes in the package ` +
      `zerorelay-${platform}, an optional dependency: install it (npm skips it with --omit=optional), ` +
      'or, in a checkout of the repository, build it from source with ' +
      '`npm install-scripts approve zerorelay && npm rebuild zerorelay` (needs Rust 1.88+)',
    { cause: e },
  )
}
module.exports = native
