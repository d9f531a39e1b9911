// A room-broadcast server on `ws`: every text frame goes to every other
// client (one room), the same contract as the baseline relay.
const { WebSocketServer } = require("ws");
const port = Number(process.env.PORT || 9001);
const wss = new WebSocketServer({ host: "127.0.0.1", port, path: "/ws", perMessageDeflate: false });
wss.on("connection", (ws) => {
  ws.on("message", (data, isBinary) => {
    if (isBinary) return;
    for (const c of wss.clients) {
      if (c !== ws && c.readyState === 1) c.send(data, { binary: false });
    }
  });
});
wss.on("listening", () => console.log(`ws listening on ws://127.0.0.1:${wss.address().port}/ws`));
