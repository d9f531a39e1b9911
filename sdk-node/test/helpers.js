'use strict'
// Test helpers: an embedded relay on an ephemeral port, clients, a TCP
// proxy that can cut the network, and bounded waits.
const net = require('node:net')
const { once } = require('node:events')
const { connect, Server } = require('..')

/** Starts a relay on 127.0.0.1:0 and closes it when the test ends. */
async function startServer (t, config = {}, options = {}) {
  const server = await Server.start({ ...config, server: { listen: '127.0.0.1:0', ...(config.server || {}) } }, options)
  t.after(() => server.close())
  return server
}

/** Connects a client as `user` and closes it when the test ends. */
async function client (t, url, user, options = {}) {
  const c = await connect(url, { user, reconnect: { baseMs: 20, capMs: 200 }, ...options })
  t.after(() => c.close())
  return c
}

/** Resolves with the first `event` whose value passes `pred`, or rejects after `ms`. */
function waitFor (emitter, event, pred = () => true, ms = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, on)
      reject(new Error(`no ${event} within ${ms} ms`))
    }, ms)
    function on (v) {
      if (!pred(v)) return
      clearTimeout(timer)
      emitter.off(event, on)
      resolve(v)
    }
    emitter.on(event, on)
  })
}

/** Reads `n` messages from a client's iterator, failing after `ms`. */
async function take (c, n, ms = 5000) {
  const it = c.messages()
  const got = []
  const timer = setTimeout(() => it.return(), ms)
  try {
    for await (const m of it) {
      got.push(m)
      if (got.length === n) break
    }
  } finally {
    clearTimeout(timer)
  }
  if (got.length !== n) throw new Error(`wanted ${n} messages within ${ms} ms, got ${got.length}`)
  return got
}

/** Collects messages for `ms` and returns them (to check that none came). */
async function collect (c, ms) {
  const got = []
  const on = (m) => got.push(m)
  c.on('message', on)
  await new Promise((resolve) => setTimeout(resolve, ms))
  c.off('message', on)
  return got
}

/** A TCP proxy to `target` (host:port) whose network can be cut and restored. */
async function proxy (t, target) {
  const [host, port] = [target.slice(0, target.lastIndexOf(':')), Number(target.slice(target.lastIndexOf(':') + 1))]
  const sockets = new Set()
  let down = false
  const server = net.createServer((inbound) => {
    if (down) return inbound.destroy()
    const outbound = net.connect(port, host)
    sockets.add(inbound)
    sockets.add(outbound)
    inbound.pipe(outbound)
    outbound.pipe(inbound)
    const close = () => {
      inbound.destroy()
      outbound.destroy()
      sockets.delete(inbound)
      sockets.delete(outbound)
    }
    inbound.on('error', close)
    outbound.on('error', close)
    inbound.on('close', close)
    outbound.on('close', close)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.after(() => new Promise((resolve) => {
    for (const s of sockets) s.destroy()
    server.close(() => resolve())
  }))
  return {
    url: `ws://127.0.0.1:${server.address().port}/ws`,
    setDown (d) {
      down = d
      if (d) for (const s of sockets) s.destroy()
    },
  }
}

module.exports = { startServer, client, waitFor, take, collect, proxy }
