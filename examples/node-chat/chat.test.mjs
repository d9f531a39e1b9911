// Two chat processes talk through an embedded relay.
import test from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { Server } from 'zerorelay'

function chat (url, user) {
  const p = spawn(process.execPath, ['chat.mjs', '--url', url, '--user', user, '--room', 'lobby'], { cwd: import.meta.dirname ?? new URL('.', import.meta.url).pathname })
  p.out = ''
  p.err = ''
  p.stdout.on('data', (d) => { p.out += d })
  p.stderr.on('data', (d) => { p.err += d })
  p.done = new Promise((resolve) => p.on('exit', resolve))
  return p
}

async function until (pred, what, ms = 10000) {
  const end = Date.now() + ms
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

test('two chat clients exchange room and private messages', async (t) => {
  const server = await Server.start({ server: { listen: '127.0.0.1:0' } })
  t.after(() => server.close())
  const alice = chat(server.url, 'alice')
  const bob = chat(server.url, 'bob')
  t.after(() => { alice.kill(); bob.kill() })
  await until(() => alice.err.includes('joined') && bob.err.includes('joined'), 'both to join')
  alice.stdin.write('hello room\n')
  alice.stdin.write('/to bob just for you\n')
  bob.stdin.write('/to nobody are you there\n')
  await until(() => bob.out.includes('just for you') && bob.err.includes('not_found'), 'bob to hear alice')
  assert.match(bob.out, /\[#lobby\] alice: hello room/)
  assert.match(bob.out, /\[direct\] alice: just for you/)
  assert.match(bob.err, /\* not_found: user "nobody" has no session/)
  alice.stdin.end()
  bob.stdin.end()
  assert.equal(await alice.done, 0)
  assert.equal(await bob.done, 0)
  assert.equal(alice.out, '', 'alice does not hear herself')
})
