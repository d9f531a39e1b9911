#!/usr/bin/env node
'use strict'
// Packs the Node SDK as it is published (the napi-rs layout), for `make dist`:
//
//   zerorelay-<version>.tgz                  the JavaScript, the loader and the
//                                            declarations; names the platform
//                                            package in optionalDependencies
//   zerorelay-linux-x64-gnu-<version>.tgz    the native addon for this platform
//
// Usage: node scripts/dist.js --addon <built .so> --out <dir>
// The addon is the cdylib `cargo build -p zerorelay-node --profile dist` wrote.
const fs = require('node:fs')
const path = require('node:path')
const { execFileSync } = require('node:child_process')

const root = path.join(__dirname, '..')
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))

function arg (name) {
  const i = process.argv.indexOf(name)
  if (i < 0 || i + 1 >= process.argv.length) {
    console.error('usage: node scripts/dist.js --addon <built addon> --out <dir>')
    process.exit(2)
  }
  return path.resolve(process.argv[i + 1])
}
const addon = arg('--addon')
const out = arg('--out')

// The install script pins @napi-rs/cli for source builds; keep it in step
// with the version the repository builds with.
const buildJs = fs.readFileSync(path.join(root, 'scripts', 'build.js'), 'utf8')
const pinned = /const CLI_VERSION = '([^']+)'/.exec(buildJs)[1]
if (pinned !== pkg.devDependencies['@napi-rs/cli']) {
  console.error(`scripts/build.js pins @napi-rs/cli ${pinned}, package.json has ${pkg.devDependencies['@napi-rs/cli']}: make them equal`)
  process.exit(1)
}

fs.mkdirSync(out, { recursive: true })
const stage = fs.mkdtempSync(path.join(out, '.stage-node-'))

function copy (rel, toDir) {
  const to = path.join(toDir, rel)
  fs.mkdirSync(path.dirname(to), { recursive: true })
  fs.cpSync(path.join(root, rel), to, { recursive: true })
}

function pack (dir) {
  const json = execFileSync('npm', ['pack', '--json', '--pack-destination', out], { cwd: dir, encoding: 'utf8' })
  const [info] = JSON.parse(json)
  console.log(`${path.join(out, info.filename)}: ${info.entryCount} files, ${(info.size / 1e6).toFixed(2)} MB packed, ${(info.unpackedSize / 1e6).toFixed(2)} MB unpacked`)
}

// The platform package: its manifest (committed in npm/<platform>/) and the addon.
for (const platform of fs.readdirSync(path.join(root, 'npm'))) {
  const dir = path.join(stage, platform)
  const manifest = JSON.parse(fs.readFileSync(path.join(root, 'npm', platform, 'package.json'), 'utf8'))
  if (platform !== 'linux-x64-gnu') continue // the one this machine builds
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    console.error(`this machine builds the addon for ${process.platform}-${process.arch}, not ${platform}`)
    process.exit(1)
  }
  manifest.version = pkg.version
  fs.mkdirSync(dir, { recursive: true })
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify(manifest, null, 2) + '\n')
  fs.copyFileSync(path.join(root, 'npm', platform, 'README.md'), path.join(dir, 'README.md'))
  fs.copyFileSync(addon, path.join(dir, manifest.main))
  pack(dir)
}

// The main package: what package.json's `files` names, minus any addon a
// local build left in native/, plus the optional dependencies on every
// platform package (npm installs the one whose os/cpu/libc match).
const main = path.join(stage, 'zerorelay')
// No install script: it exists to build from the Rust sources, which the
// published package does not carry (and npm 11 runs a dependency's install
// script only once the project approves it). Without the platform package,
// lib/native.js says what is missing when the package is loaded.
for (const rel of ['lib', 'native/index.js', 'native/index.d.ts', 'README.md']) copy(rel, main)
const published = { ...pkg }
delete published.devDependencies
delete published.scripts
published.files = pkg.files.filter((f) => !f.endsWith('.node') && !f.startsWith('scripts/'))
published.optionalDependencies = {}
for (const platform of fs.readdirSync(path.join(root, 'npm'))) {
  published.optionalDependencies[`${pkg.name}-${platform}`] = pkg.version
}
fs.writeFileSync(path.join(main, 'package.json'), JSON.stringify(published, null, 2) + '\n')
pack(main)

fs.rmSync(stage, { recursive: true, force: true })
