'use strict'
// Messages per second received through the SDK from a local relay, against
// the `ws` package reading the same stream (same relay, same payloads) and
// doing the same protocol work: hello, join, decode every message, ack
// every 256. Run with `make bench-node` (release addon). Not a test.
const { spawn } = require('node:child_process')
const path = require('node:path')
const readline = require('node:readline')
const WebSocket = require('ws')
const { connect } = require('..')

const N = Number(process.env.N || 200000)
const RUNS = Number(process.env.RUNS || 3)

function feeder () {
  const child = spawn(process.execPath, [path.join(__dirname, 'feeder.js')], { stdio: ['pipe', 'pipe', 'inherit'] })
  const lines = readline.createInterface({ input: child.stdout })
  const waiters = []
  const early = []
  lines.on('line', (l) => { const w = waiters.shift(); if (w) w(l); else early.push(l) })
  const next = () => early.length > 0 ? Promise.resolve(early.shift()) : new Promise((resolve) => waiters.push(resolve))
  return { child, next, send: (l) => child.stdin.write(l + '\n') }
}

async function viaSdk (f, url, mode) {
  const c = await connect(url, { user: `sdk-${mode}` })
  await c.join('bench')
  const start = process.hrtime.bigint()
  f.send(`go ${N}`)
  let got = 0
  if (mode === 'listener') {
    await new Promise((resolve) => {
      c.on('message', (m) => {
        if (m.data.symbol !== 'ZRLY') throw new Error('bad payload')
        if (++got === N) resolve()
      })
    })
  } else {
    for await (const m of c.messages()) {
      if (m.data.symbol !== 'ZRLY') throw new Error('bad payload')
      if (++got === N) break
    }
  }
  const secs = Number(process.hrtime.bigint() - start) / 1e9
  await f.next() // "done"
  await c.close()
  return N / secs
}

async function viaWs (f, url) {
  const ws = new WebSocket(url, { perMessageDeflate: false })
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
  const frames = []
  let wake = null
  ws.on('message', (d) => { frames.push(d); if (wake) { const w = wake; wake = null; w() } })
  const nextFrame = async () => {
    while (frames.length === 0) await new Promise((resolve) => { wake = resolve })
    return JSON.parse(frames.shift())
  }
  ws.send('{"type":"hello","v":1,"user":"ws"}')
  if ((await nextFrame()).type !== 'welcome') throw new Error('no welcome')
  ws.send('{"type":"join","id":1,"group":"bench"}')
  if ((await nextFrame()).type !== 'ok') throw new Error('join failed')
  ws.removeAllListeners('message')
  let got = 0
  const start = process.hrtime.bigint()
  f.send(`go ${N}`)
  await new Promise((resolve) => {
    ws.on('message', (d) => {
      const m = JSON.parse(d)
      if (m.type !== 'message') return
      if (m.data.symbol !== 'ZRLY') throw new Error('bad payload')
      if (++got % 256 === 0) ws.send(`{"type":"ack","seq":${m.seq}}`)
      if (got === N) resolve()
    })
  })
  const secs = Number(process.hrtime.bigint() - start) / 1e9
  await f.next()
  ws.close(1000)
  return N / secs
}

async function main () {
  const f = feeder()
  const url = await f.next()
  const results = { 'zerorelay SDK (message listener)': [], 'zerorelay SDK (for await)': [], 'ws package': [] }
  for (let r = 0; r < RUNS; r++) {
    // Alternate, so that drift on the machine hits every reader alike.
    results['ws package'].push(await viaWs(f, url))
    results['zerorelay SDK (message listener)'].push(await viaSdk(f, url, 'listener'))
    results['zerorelay SDK (for await)'].push(await viaSdk(f, url, 'iterator'))
  }
  f.send('quit')
  f.child.stdin.end()
  await new Promise((resolve) => f.child.once('exit', resolve))
  console.log(`Receive rate, ${N} messages of ~100 bytes each from one relay, ${RUNS} runs (msgs/s):`)
  for (const [name, rates] of Object.entries(results)) {
    const sorted = [...rates].sort((a, b) => a - b)
    const k = (x) => `${Math.round(x / 1000)}k`
    console.log(`  ${name.padEnd(34)} median ${k(sorted[Math.floor(sorted.length / 2)])}  (${sorted.map(k).join(', ')})`)
  }
  console.log(JSON.stringify({ bench: 'node-receive', n: N, results }))
}

main().catch((e) => { console.error(e); process.exit(1) })
