// A room-broadcast server on Socket.IO: clients emit "join" with a room and
// "pub" with a payload; the payload is emitted as "msg" to the room's other
// members.
const http = require("http");
const { Server } = require("socket.io");
const port = Number(process.env.PORT || 9002);
const server = http.createServer();
const io = new Server(server, { transports: ["websocket"], perMessageDeflate: false, serveClient: false });
io.on("connection", (socket) => {
  socket.on("join", (room) => socket.join(room));
  socket.on("pub", (room, data) => socket.to(room).emit("msg", data));
});
server.listen(port, "127.0.0.1", () => console.log(`socket.io listening on ws://127.0.0.1:${port}/socket.io/`));
