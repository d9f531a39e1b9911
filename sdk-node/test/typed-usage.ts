// Compiled by `tsc --noEmit` (make test): the declarations must describe
// what a typical program does, and refuse what it must not do.
import { connect, Server, ZerorelayError, setLogger, type Message, type ErrorCode, type ClientOptions } from 'zerorelay'

interface Chat { text: string }

async function main (): Promise<void> {
  setLogger(console, 'info')
  const server = await Server.start({ server: { listen: '127.0.0.1:0' } }, {
    auth: async ({ token }) => (token === 'secret' ? { user: 'alice', expiresInMs: 60_000 } : null),
    rpc: { 'chat.echo': async (data: Chat, { user }) => ({ ...data, user }) },
  })
  const client = await connect(server.url, {
    token: 'secret',
    reconnect: { baseMs: 100, capMs: 5_000 },
    offlineQueue: { maxMessages: 100, whenFull: 'dropOldest' },
  })
  client.on('connected', ({ session, resumed }) => console.log(session, resumed))
  client.on('disconnected', ({ code, willRetry }) => console.log(code, willRetry))
  client.on('error', (e) => console.log(e.code, e.seq ?? 'not about one message'))
  client.on('message', (m: Message) => console.log(m.seq, m.kind, m.from))
  await client.join('room')
  await client.publish('room', { text: 'hi' } satisfies Chat, { echo: true })
  await client.send({ to: 'bob' }, 'hello')
  await client.send({ session: 's_1' }, [1, 2])
  await client.broadcast(null)
  const echoed = await client.rpc<Chat & { user: string }>('chat.echo', { text: 'x' })
  console.log(echoed.user.toUpperCase())
  const ac = new AbortController()
  await client.leave('room', { signal: ac.signal })
  for await (const m of client.messages<Chat>()) {
    console.log(m.data.text)
    break
  }
  try {
    await client.publish('room', 1)
  } catch (e) {
    if (e instanceof ZerorelayError) {
      const code: ErrorCode = e.code
      console.log(code)
    }
  }
  console.log(server.publish('room', { a: 1 }), server.sessions()[0]?.id, server.stats())
  await client.close()
  await server.close()

  // @ts-expect-error a send target is a user or a session, not both
  await client.send({ to: 'a', session: 'b' }, 1)
  // @ts-expect-error unknown options are refused
  await connect(server.url, { tokn: 'x' })
  // @ts-expect-error whenFull has two values
  await connect(server.url, { offlineQueue: { whenFull: 'block' } })
  // @ts-expect-error durations are numbers
  await connect(server.url, { reconnect: { baseMs: '250' } })
  // The engine's options (generated from the Rust definition) are a type
  // of their own, which connect's options extend.
  const engineOptions: ClientOptions = { ack: { batch: 16, intervalMs: 200 }, offlineQueue: { whenFull: 'failFast' } }
  await connect(server.url, { ...engineOptions, waitForConnection: false })
  // @ts-expect-error the SDK's own options are not the engine's
  const notEngine: ClientOptions = { waitForConnection: false }
  console.log(notEngine)

  // Identity and permissions from the configuration, and wss://.
  const secured = await Server.start({
    auth: { jwt: { secret: 's3cret', leeway_s: 5 }, refresh_ahead_ms: 30_000, roles: { member: { allow: ['join:room-*'] } } },
    tls: { cert_file: 'cert.pem', key_file: 'key.pem' },
  }, {
    auth: ({ token }) => (token === 'm' ? { user: 'alice', roles: ['member'] } : null),
  })
  await connect(secured.url, { caFile: 'ca.pem', tokenProvider: async () => ({ token: 'm' }) })
  // @ts-expect-error roles is a list of role names
  await Server.start({}, { auth: () => ({ user: 'a', roles: 'member' }) })

  // Host hooks: authorize what the roles allowed; validate, reject or
  // rewrite what is published to matching groups.
  const hooked = await Server.start({ limits: { authorize_timeout_ms: 500, validate_timeout_ms: 200 } }, {
    authorize: async ({ action, resource, user, roles }) => {
      if (action === 'join' && resource === 'room-secret') return `${user ?? 'anonymous'} may not join`
      if (roles.includes('banned')) return false
      if (action === 'rpc') return { allow: user !== null, message: 'sign in first' }
    },
    validate: {
      'chat-*': (data: Chat, { group, user, session }) => {
        if (data.text.length > 500) return 'too long'
        if (group === 'chat-ro') return { reject: { code: 'forbidden', message: `${user ?? session} may not write here` } }
        if (data.text.includes('<')) return { rewrite: { text: data.text.replace(/<[^>]*>/g, '') } }
        return true
      },
      'audit-*': async () => {},
    },
  })
  await hooked.close()
  // @ts-expect-error a rejection's code is a protocol code
  await Server.start({}, { validate: { 'chat-*': () => ({ reject: { code: 'nope', message: 'x' } }) } })
  // @ts-expect-error a new payload goes in { rewrite }
  await Server.start({}, { validate: { 'chat-*': () => ({ text: 'replaced' }) } })
  // @ts-expect-error an authorize answer is a boolean, a message or { allow, message }
  await Server.start({}, { authorize: () => 1 })
}

void main()
