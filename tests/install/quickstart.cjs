// The README's Node quick start (CommonJS), against the relay at ZR_URL.
const { connect } = require('zerorelay')

async function main () {
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
}
main().catch((e) => { console.error(e); process.exit(1) })
