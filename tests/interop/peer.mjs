// The Node peer of the interop test (see README.md).
import { createInterface } from 'node:readline'
import { connect } from '../../sdk-node/lib/index.mjs'

const [url, name, othersCsv, nText] = process.argv.slice(2)
const others = othersCsv.split(',')
const n = Number(nText)
const expected = others.length * n * 2
const got = {}
let count = 0
let allIn
const done = new Promise((resolve) => { allIn = resolve })

const client = await connect(url, { user: name })
client.on('message', (m) => {
  const key = `${m.from}:${m.kind}`
  ;(got[key] ??= []).push(m.data.i)
  if (++count === expected) allIn()
})
await client.join('interop')
console.log('ready')
const lines = createInterface({ input: process.stdin })
for await (const line of lines) if (line === 'go') break

const sent = []
for (let i = 0; i < n; i++) {
  sent.push(client.publish('interop', { i }))
  for (const other of others) sent.push(client.send({ to: other }, { i }))
}
await Promise.all(sent)
await Promise.race([done, new Promise((resolve) => setTimeout(resolve, 20000).unref())])
// Anything delivered twice would arrive now.
await new Promise((resolve) => setTimeout(resolve, 300))
console.log(JSON.stringify({ name, got }))
await client.close()
