#!/usr/bin/env node
'use strict'
// The install script of the package in a checkout of the repository (the
// published package has none: its addon comes prebuilt in a per-platform
// package, zerorelay-linux-x64-gnu, ..., that npm installs through
// optionalDependencies). When no prebuilt addon is there, it builds one from
// the Rust sources with a Rust toolchain; otherwise it says what is missing
// and fails the install. npm 11 runs it once the project approves it:
// `npm install-scripts approve zerorelay && npm rebuild zerorelay`.
//
// `--force` rebuilds (the repository's `make node-addon`).
// ZERORELAY_BUILD_PROFILE=debug builds without optimizations (the
// repository's tests do; users get release).
const { existsSync } = require('node:fs')
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const { platformName } = require('../lib/platform')

const root = path.join(__dirname, '..')
const pkg = require(path.join(root, 'package.json'))
const nativeDir = path.join(root, 'native')
const manifest = path.join(root, '..', 'bindings', 'node', 'Cargo.toml')
const force = process.argv.includes('--force')
const profile = process.env.ZERORELAY_BUILD_PROFILE || 'release'
// Pinned here, not taken from devDependencies: npm does not install a
// dependency's devDependencies, and this runs in other people's projects.
const CLI_VERSION = '3.10.12'

function fail (message) {
  console.error(`zerorelay: ${message}`)
  process.exit(1)
}

const platform = platformName()
const platformPackage = `${pkg.name}-${platform}`

function hasPrebuilt () {
  if (existsSync(path.join(nativeDir, `zerorelay.${platform}.node`))) return true
  try {
    require.resolve(`${platformPackage}/package.json`, { paths: [root] })
    return true
  } catch {
    return false
  }
}

function hasCargo () {
  const r = spawnSync('cargo', ['--version'], { encoding: 'utf8' })
  return r.status === 0
}

if (!force && hasPrebuilt()) process.exit(0)

if (!existsSync(manifest)) {
  const published = (pkg.optionalDependencies || {})[platformPackage] !== undefined
  fail(
    published
      ? `the prebuilt addon package ${platformPackage} is not installed. npm skips optional dependencies ` +
          'with --omit=optional or --no-optional; install without it, or add ' +
          `${platformPackage}@${pkg.version} to your dependencies.`
      : `there is no prebuilt addon for ${platform}, and this package has no Rust sources to build one from. ` +
          'Build from a checkout of the Zerorelay repository (npm install <checkout>/sdk-node, needs Rust 1.88+).',
  )
}
if (profile !== 'release' && profile !== 'debug') {
  fail(`ZERORELAY_BUILD_PROFILE must be release or debug, not ${JSON.stringify(profile)}`)
}
if (!hasCargo()) {
  fail(
    `no prebuilt addon for ${platform} is installed, and building one from the sources at ${path.dirname(manifest)} ` +
      'needs Rust 1.88 or newer (cargo was not found on PATH): install it from https://rustup.rs, ' +
      'or install the prebuilt packages that `make dist` writes to dist/ (see README "Installing the SDKs").',
  )
}

const env = { ...process.env }
// One target directory for the workspace and the bindings; napi needs it
// absolute.
env.CARGO_TARGET_DIR = path.resolve(env.CARGO_TARGET_DIR || path.join(root, '..', 'target'))

const args = ['build', '--platform', '--manifest-path', manifest, '--output-dir', nativeDir, '--js', 'index.js', '--dts', 'index.d.ts']
if (profile === 'release') args.push('--release')

// npm hides an install script's output unless it fails (or runs with
// --foreground-scripts), so say up front what the wait is.
console.error(
  `zerorelay: building the native addon for ${platform} from source with cargo (${profile}); ` +
    'this takes a few minutes (npm install --foreground-scripts shows the progress).',
)

let cli
try {
  cli = require.resolve('@napi-rs/cli/package.json', { paths: [root] })
} catch {
  cli = null
}
// @napi-rs/cli has two executables (napi, napi-raw), so npx must be told
// which: `npx -p @napi-rs/cli@V napi ...`.
const r = cli
  ? spawnSync(process.execPath, [path.join(path.dirname(cli), require(cli).bin.napi), ...args], { stdio: 'inherit', env })
  : spawnSync('npx', ['--yes', '-p', `@napi-rs/cli@${CLI_VERSION}`, 'napi', ...args], { stdio: 'inherit', env })
if (r.error) fail(`could not run the napi build: ${r.error.message}`)
if (r.status !== 0) fail(`building the addon with cargo failed (exit ${r.status}); the output above says why.`)
