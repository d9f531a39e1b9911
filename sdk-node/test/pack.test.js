'use strict'
// What a user does: `npm pack` gives a tarball that installs into an empty
// project and runs the quick start; `npm install <folder>` works too.
const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { execFileSync } = require('node:child_process')
const { startServer } = require('./helpers')

const ROOT = path.join(__dirname, '..')
const NPM_FLAGS = ['--no-audit', '--no-fund', '--offline', '--loglevel=error']

function emptyProject (t, name) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `zerorelay-${name}-`))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: `try-${name}`, version: '1.0.0', private: true }))
  fs.copyFileSync(path.join(__dirname, 'quickstart.mjs'), path.join(dir, 'quickstart.mjs'))
  return dir
}

function quickstart (dir, url) {
  return execFileSync(process.execPath, ['quickstart.mjs'], { cwd: dir, env: { ...process.env, ZERORELAY_URL: url }, encoding: 'utf8', timeout: 30000 })
}

test('npm pack produces a tarball that installs into an empty project and runs the quick start', async (t) => {
  const s = await startServer(t)
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'zerorelay-pack-'))
  t.after(() => fs.rmSync(out, { recursive: true, force: true }))
  const packed = JSON.parse(execFileSync('npm', ['pack', '--json', '--pack-destination', out], { cwd: ROOT, encoding: 'utf8' }))
  const files = packed[0].files.map((f) => f.path)
  for (const f of ['lib/index.js', 'lib/index.mjs', 'lib/index.d.ts', 'native/index.js', 'package.json', 'README.md']) {
    assert.ok(files.includes(f), `${f} is packed`)
  }
  assert.ok(files.some((f) => /^native\/zerorelay\.[\w-]+\.node$/.test(f)), 'the addon is packed')
  assert.ok(!files.some((f) => f.startsWith('test/') || f.startsWith('node_modules/')), 'tests are not packed')

  const dir = emptyProject(t, 'tarball')
  execFileSync('npm', ['install', path.join(out, packed[0].filename), ...NPM_FLAGS], { cwd: dir, stdio: 'pipe' })
  assert.equal(quickstart(dir, s.url), 'alice: hello\n')
})

test('npm install of the package folder works', async (t) => {
  const s = await startServer(t)
  const dir = emptyProject(t, 'folder')
  execFileSync('npm', ['install', ROOT, ...NPM_FLAGS], { cwd: dir, stdio: 'pipe' })
  assert.equal(quickstart(dir, s.url), 'alice: hello\n')
})
