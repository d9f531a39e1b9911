'use strict'
// The embedded relay serves wss:// with a certificate made at test time
// (the selfsigned package): the SDK client (caFile) and Node's own tls
// module trust it through the test CA, and nothing else does.
const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const tls = require('node:tls')
const { once } = require('node:events')
const selfsigned = require('selfsigned')
const { connect } = require('..')
const { startServer, client, take } = require('./helpers')

/** A test CA and a certificate for 127.0.0.1 and localhost it signed, as files. */
async function pki (t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zerorelay-tls-'))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  const base = { keyType: 'ec', curve: 'P-256', algorithm: 'sha256' }
  const ca = await selfsigned.generate([{ name: 'commonName', value: 'zerorelay test CA' }], {
    ...base,
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    ],
  })
  const leaf = await selfsigned.generate([{ name: 'commonName', value: 'localhost' }], {
    ...base,
    ca: { key: ca.private, cert: ca.cert },
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }, { type: 2, value: 'localhost' }] },
    ],
  })
  const files = { ca: path.join(dir, 'ca.pem'), cert: path.join(dir, 'cert.pem'), key: path.join(dir, 'key.pem') }
  fs.writeFileSync(files.ca, ca.cert)
  fs.writeFileSync(files.cert, leaf.cert + ca.cert)
  fs.writeFileSync(files.key, leaf.private)
  return files
}

async function startTlsServer (t, files) {
  return startServer(t, { tls: { cert_file: files.cert, key_file: files.key } })
}

test('the SDK client says hello through the relay over wss when it trusts the CA', async (t) => {
  const files = await pki(t)
  const s = await startTlsServer(t, files)
  assert.equal(s.url, `wss://${s.address}/ws`)
  const alice = await client(t, s.url, 'alice', { caFile: files.ca })
  const bob = await client(t, s.url, 'bob', { caFile: files.ca })
  await bob.join('room')
  await alice.publish('room', 'hello over tls')
  const [m] = await take(bob, 1)
  assert.deepEqual([m.data, m.from, m.group], ['hello over tls', 'alice', 'room'])
  // Without the CA the handshake fails, however long the client tries.
  await assert.rejects(
    connect(s.url, { user: 'mallory', reconnect: { enabled: false }, connectTimeoutMs: 5000 }),
    { code: 'connection', message: /certificate/ },
  )
})

test('Node tls.connect trusts the relay with the test CA and refuses it without', async (t) => {
  const files = await pki(t)
  const s = await startTlsServer(t, files)
  const port = Number(s.address.slice(s.address.lastIndexOf(':') + 1))

  const trusting = tls.connect({ host: '127.0.0.1', port, ca: fs.readFileSync(files.ca) })
  t.after(() => trusting.destroy())
  await once(trusting, 'secureConnect')
  assert.equal(trusting.authorized, true)
  assert.ok(['TLSv1.2', 'TLSv1.3'].includes(trusting.getProtocol()), trusting.getProtocol())
  trusting.end()

  const doubting = tls.connect({ host: '127.0.0.1', port })
  t.after(() => doubting.destroy())
  const [err] = await once(doubting, 'error')
  assert.match(err.code, /CERT|VERIFY|SIGNATURE|ISSUER/)
})
