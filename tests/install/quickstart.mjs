// The README's Node quick start (ES modules), against the relay at ZR_URL.
import { connect } from 'zerorelay'

const url = process.env.ZR_URL
const alice = await connect(url, { user: 'alice' })
const bob = await connect(url, { user: 'bob' })
await bob.join('room')
await alice.publish('room', { text: 'hello' })
for await (const msg of bob.messages()) {
  console.log(`${msg.from}: ${msg.data.text}`) // alice: hello
  break
}
await alice.close()
await bob.close()
