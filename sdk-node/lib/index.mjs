// ES module entry point: the same objects as the CommonJS one.
import zerorelay from './index.js'

export const { connect, Client, Server, ZerorelayError, PROTOCOL_CODES, CLIENT_CODES, setLogger, version } = zerorelay
export default zerorelay
