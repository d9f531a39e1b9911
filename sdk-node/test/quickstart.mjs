// The README's quick start (with the relay's URL from the environment), run
// by pack.test.js from a project that installed the packed tarball.
import { connect } from 'zerorelay'

const url = process.env.ZERORELAY_URL ?? 'ws://127.0.0.1:8080/ws'
const alice = await connect(url, { user: 'alice' })
const bob = await connect(url, { user: 'bob' })
await bob.join('room')
await alice.publish('room', { text: 'hello' })
for await (const msg of bob.messages()) {
  console.log(`${msg.from}: ${msg.data.text}`)
  break
}
await alice.close()
await bob.close()
