#!/usr/bin/env node
'use strict'
// Builds the native addon from the Rust sources with @napi-rs/cli, unless a
// binary for this platform is already there (a packed or published package
// carries one). `--force` rebuilds. ZERORELAY_BUILD_PROFILE=debug builds
// without optimizations (the repository's tests do; users get release).
const { existsSync, readdirSync } = require('node:fs')
const path = require('node:path')
const { spawnSync } = require('node:child_process')

const root = path.join(__dirname, '..')
const nativeDir = path.join(root, 'native')
const manifest = path.join(root, '..', 'bindings', 'node', 'Cargo.toml')
const force = process.argv.includes('--force')
const profile = process.env.ZERORELAY_BUILD_PROFILE || 'release'
const CLI_VERSION = require(path.join(root, 'package.json')).devDependencies['@napi-rs/cli']

function hasBinary () {
  if (!existsSync(nativeDir)) return false
  return readdirSync(nativeDir).some((f) => f.startsWith(`zerorelay.${process.platform}-${process.arch}`) && f.endsWith('.node'))
}

if (!force && hasBinary()) process.exit(0)

if (!existsSync(manifest)) {
  console.error(
    `zerorelay: no prebuilt addon for ${process.platform}-${process.arch}, and the Rust sources ` +
      `(${manifest}) are not here to build one. Install from the repository, or see README "Prebuilt binaries".`,
  )
  process.exit(1)
}
if (profile !== 'release' && profile !== 'debug') {
  console.error(`zerorelay: ZERORELAY_BUILD_PROFILE must be release or debug, not ${JSON.stringify(profile)}`)
  process.exit(1)
}

const env = { ...process.env }
// One target directory for the workspace and the bindings; napi needs it
// absolute.
env.CARGO_TARGET_DIR = path.resolve(env.CARGO_TARGET_DIR || path.join(root, '..', 'target'))

const args = ['build', '--platform', '--manifest-path', manifest, '--output-dir', nativeDir, '--js', 'index.js', '--dts', 'index.d.ts']
if (profile === 'release') args.push('--release')

let cli
try {
  cli = require.resolve('@napi-rs/cli/package.json', { paths: [root] })
} catch {
  cli = null
}
const r = cli
  ? spawnSync(process.execPath, [path.join(path.dirname(cli), require(cli).bin.napi), ...args], { stdio: 'inherit', env })
  : spawnSync('npx', ['--yes', `@napi-rs/cli@${CLI_VERSION}`, ...args], { stdio: 'inherit', env })
if (r.status !== 0) {
  console.error('zerorelay: building the addon failed (it needs Rust 1.88 or newer: https://rustup.rs).')
  process.exit(r.status || 1)
}
