"""A small program using the public API, checked by `mypy --strict` (not
run by pytest): the stubs and annotations must describe real usage."""

from __future__ import annotations

import asyncio
from typing import Any, Optional

import zerorelay
import zerorelay.sync
from zerorelay.server import ValidateResult


async def chat(url: str) -> list[Any]:
    got: list[Any] = []

    def on_down(e: zerorelay.Event) -> None:
        print(e.close_code, e.reason, e.will_retry)

    async with zerorelay.connect(
        url,
        user="alice",
        reconnect={"base_ms": 100, "cap_ms": 5000},
        offline_queue=100,
        request_timeout=5.0,
        on={"disconnected": on_down},
    ) as client:
        await client.join("room-1")
        await client.publish("room-1", {"text": "hi"}, echo=True)
        await client.send({"n": 1}, to="bob")
        await client.broadcast([1, 2, 3])
        result: Any = await client.rpc("math.add", [1, 2])
        got.append(result)

        @client.on("reconnecting")
        async def later(e: zerorelay.Event) -> None:
            await asyncio.sleep(e.delay)

        @client.on("error")
        def skipped(e: zerorelay.Event) -> None:
            if e.code == zerorelay.Undecodable.code:
                seq: Optional[int] = e.seq
                print("message", seq, "could not be decoded:", e.message)

        session: Optional[str] = client.session
        got.append(session)
        async for msg in client:
            seq: int = msg.seq
            sender: Optional[str] = msg.sender
            got.append((seq, sender, msg.data))
            break
        try:
            m = await client.recv(timeout=0.1)
            got.append(m.kind)
        except asyncio.TimeoutError:
            pass
        except zerorelay.Closed as e:
            code: str = e.code
            got.append(code)
        async for ev in client.events():
            got.append(ev.type)
            break
    return got


async def host() -> None:
    def auth(c: zerorelay.Credentials) -> Optional[zerorelay.Answer]:
        if c.token == "member":
            return zerorelay.Answer(user="alice", expires_in=60.0, roles=["member"])
        return zerorelay.Answer(user=c.token, expires_in=60.0) if c.token else None

    def add(ctx: zerorelay.RpcContext, arg: Any) -> int:
        return int(sum(arg))

    async with zerorelay.Server(
        {"server": {"listen": "127.0.0.1:0"}}, auth=auth, rpc={"math.add": add}
    ) as server:
        url: str = server.url
        port: int = server.port
        n: int = server.publish("room-1", {"from": "host"})
        try:
            server.send_to_user("nobody", 1)
        except zerorelay.NotFound as e:
            print(e.code, e.message, port, n)
        for s in server.sessions():
            print(s.id, s.user, s.connected, s.groups)
        stats: zerorelay.Stats = server.stats()
        print(stats.connections_open, url)
        dropped: bool = server.drop_connection("s_x")
        print(dropped, server.disconnect("s_x"))
        print(await chat(url))


async def hooked() -> None:
    async def authorize(req: zerorelay.AuthorizeRequest) -> Optional[str]:
        if req.action == "join" and req.resource == "room-secret":
            return f"{req.user} may not join"
        return None

    def chat(ctx: zerorelay.ValidateContext, data: Any) -> ValidateResult:
        if not isinstance(data, dict) or not isinstance(data.get("text"), str):
            return "a chat message needs text"
        if ctx.group == "chat-ro":
            return {"reject": {"code": "forbidden", "message": f"{ctx.session} may not write"}}
        if "<" in data["text"]:
            return {"rewrite": {"text": data["text"].replace("<", "")}}
        return True

    async with zerorelay.Server(
        {"limits": {"authorize_timeout_ms": 500, "validate_timeout_ms": 200}},
        authorize=authorize,
        validate={"chat-*": chat, "audit-*": lambda ctx, data: None},
    ) as server:
        print(server.url)


def script(url: str) -> None:
    with zerorelay.sync.connect(url, token="t") as c:
        c.join("room-1")
        c.publish("room-1", "hello")
        m = c.recv(timeout=1.0)
        if m is not None:
            print(m.data)
        for msg in c:
            print(msg.group)
            break
    with zerorelay.sync.Server() as s:
        s.broadcast(None)
        s.close()


if __name__ == "__main__":
    asyncio.run(host())
