'use strict'
// The process lifecycle: nothing keeps Node alive after close, and exiting
// with clients and servers open neither hangs nor crashes.
const test = require('node:test')
const assert = require('node:assert/strict')
const { spawn } = require('node:child_process')
const path = require('node:path')

const ROOT = path.join(__dirname, '..')

/** Runs a script in a fresh Node process; resolves with its exit, or kills it after `ms`. */
function run (script, env = {}, ms = 20000) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['-e', script], { cwd: ROOT, env: { ...process.env, ...env } })
    let out = ''
    let err = ''
    child.stdout.on('data', (d) => { out += d })
    child.stderr.on('data', (d) => { err += d })
    const timer = setTimeout(() => child.kill('SIGKILL'), ms)
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, out, err })
    })
  })
}

const PRELUDE = `
const { connect, Server, setLogger } = require('zerorelay')
async function main () {
  const server = await Server.start({ server: { listen: '127.0.0.1:0' } })
  const a = await connect(server.url, { user: 'a' })
  const b = await connect(server.url, { user: 'b' })
  await b.join('g')
  await a.publish('g', 1)
  for await (const m of b) { if (m.data === 1) break }
`

test('the process exits by itself once clients and the server are closed', async () => {
  const r = await run(PRELUDE + `
  await a.close(); await b.close(); await server.close()
  console.log('done')
}
main()`)
  assert.equal(r.signal, null, 'the process had to be killed: something kept it alive')
  assert.equal(r.code, 0, r.err)
  assert.equal(r.out.trim(), 'done')
})

test('an open server keeps the process alive, as a listening http.Server does', async () => {
  const r = await run(`
const { Server } = require('zerorelay')
Server.start({ server: { listen: '127.0.0.1:0' } }).then((s) => {
  setTimeout(() => { console.log('still alive'); s.close() }, 300)
})`)
  assert.equal(r.code, 0, r.err)
  assert.equal(r.out.trim(), 'still alive')
})

test('process.exit with clients and a server open does not crash', async () => {
  for (let i = 0; i < 3; i++) {
    const r = await run(PRELUDE + `
  a.publish('g', 'in flight')
  process.exit(7)
}
main()`)
    assert.equal(r.signal, null, r.err)
    assert.equal(r.code, 7, r.err)
  }
})

test('an uncaught error with clients open exits with the error, not a hang', async () => {
  const r = await run(PRELUDE + `
  throw new Error('boom')
}
main()`)
  assert.equal(r.signal, null)
  assert.equal(r.code, 1)
  assert.match(r.err, /boom/)
})

test('the core log records reach the logger the application passes in', async () => {
  const r = await run(`
const { connect, Server, setLogger } = require('zerorelay')
const lines = []
setLogger({ info: (m) => lines.push(m), warn: (m) => lines.push(m), error: (m) => lines.push(m), debug: () => {} }, 'info')
;(async () => {
  const server = await Server.start({ server: { listen: '127.0.0.1:0' } })
  await new Promise((r) => setTimeout(r, 100))
  await server.close()
  await new Promise((r) => setTimeout(r, 100))
  console.log(JSON.stringify(lines))
})()`)
  assert.equal(r.code, 0, r.err)
  const lines = JSON.parse(r.out)
  assert.ok(lines.some((l) => /^zerorelay info zerorelay::server::listener: The relay is listening\./.test(l)), r.out)
})

test('DEBUG=zerorelay sends debug records to the console; by default the SDK is silent', async () => {
  const script = `
const { Server } = require('zerorelay')
Server.start({ server: { listen: '127.0.0.1:0' } }).then(async (s) => { await s.close() })`
  const loud = await run(script, { DEBUG: 'zerorelay' })
  assert.equal(loud.code, 0)
  assert.match(loud.err, /zerorelay info .*The relay is listening/)
  const quiet = await run(script, { DEBUG: '' })
  assert.equal(quiet.code, 0)
  assert.equal(quiet.err, '')
  assert.equal(quiet.out, '')
})
