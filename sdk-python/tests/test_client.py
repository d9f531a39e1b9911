"""Connecting and every request type, against a real embedded relay."""

from __future__ import annotations

import asyncio
import time

import pytest
from conftest import assert_no_message, recv_n

import zerorelay


async def test_connect_reports_session_user_and_connected_event(server: zerorelay.Server) -> None:
    seen: list[zerorelay.Event] = []
    async with zerorelay.connect(server.url, user="alice", on={"connected": seen.append}) as c:
        assert c.status == "connected"
        assert c.session is not None and c.session.startswith("s_")
        events = c.events()
        first = await asyncio.wait_for(events.__anext__(), 5)
        assert first.type == "connected"
        assert first.user == "alice" and first.session == c.session and not first.resumed
        assert [e.type for e in seen] == ["connected"]
        assert [s.user for s in server.sessions()] == ["alice"]
    # Closing ends the session on the server.
    for _ in range(100):
        if not server.sessions():
            break
        await asyncio.sleep(0.02)
    assert server.sessions() == []


async def test_client_name_is_sent_in_hello(server: zerorelay.Server) -> None:
    names: list[str] = []

    def auth(c: zerorelay.Credentials) -> str:
        names.append(c.client or "")
        return "alice"

    async with zerorelay.Server(auth=auth) as s, zerorelay.connect(s.url):
        pass
    assert names == [f"zerorelay-python/{zerorelay.__version__}"]


async def test_join_publish_leave(server: zerorelay.Server) -> None:
    async with (
        zerorelay.connect(server.url, user="a") as a,
        zerorelay.connect(server.url, user="b") as b,
    ):
        await b.join("room-1")
        assert [g.name for g in server.groups()] == ["room-1"]
        await a.publish("room-1", {"text": "hi", "n": [1, 2.5, None, True]})
        m = await b.recv(timeout=5)
        assert m.kind == "group" and m.group == "room-1" and m.sender == "a"
        assert m.sender_session == a.session
        assert m.data == {"text": "hi", "n": [1, 2.5, None, True]}
        assert m.seq == 1 and m.ts > 0
        await b.leave("room-1")
        await a.publish("room-1", "after leave")
        await assert_no_message(b)
        assert server.groups() == []


async def test_publish_echo_reaches_the_publisher(server: zerorelay.Server) -> None:
    async with zerorelay.connect(server.url, user="a") as a:
        await a.join("g")
        await a.publish("g", 1)
        await a.publish("g", 2, echo=True)
        assert (await a.recv(timeout=5)).data == 2


async def test_send_to_user_and_to_session(server: zerorelay.Server) -> None:
    async with (
        zerorelay.connect(server.url, user="a") as a,
        zerorelay.connect(server.url, user="b") as b,
    ):
        await a.send(to="b", data={"direct": True})
        await a.send({"by": "session"}, session=b.session)
        assert await recv_n(b, 2) == [{"direct": True}, {"by": "session"}]
        with pytest.raises(zerorelay.InvalidArgument):
            await a.send(1)
        with pytest.raises(zerorelay.InvalidArgument):
            await a.send(1, to="b", session=b.session)


async def test_broadcast_reaches_everyone_but_the_sender(server: zerorelay.Server) -> None:
    async with (
        zerorelay.connect(server.url, user="a") as a,
        zerorelay.connect(server.url, user="b") as b,
        zerorelay.connect(server.url, user="c") as c,
    ):
        await a.broadcast(["all"])
        for x in (b, c):
            m = await x.recv(timeout=5)
            assert m.kind == "broadcast" and m.data == ["all"]
        await assert_no_message(a, 0.2)


async def test_requests_keep_call_order(server: zerorelay.Server) -> None:
    async with (
        zerorelay.connect(server.url, user="a") as a,
        zerorelay.connect(server.url, user="b") as b,
    ):
        await b.join("g")
        # Started together, not awaited one by one: the engine keeps call order.
        await asyncio.gather(*(a.publish("g", i) for i in range(200)))
        assert await recv_n(b, 200) == list(range(200))


async def test_rpc_calls_a_python_method_and_unknown_is_not_found() -> None:
    def echo(ctx: zerorelay.RpcContext, arg: object) -> object:
        return {"arg": arg, "user": ctx.user, "session": ctx.session}

    async def add(ctx: zerorelay.RpcContext, arg: list[int]) -> int:
        await asyncio.sleep(0)
        return sum(arg)

    def missing(ctx: zerorelay.RpcContext, arg: object) -> object:
        raise zerorelay.NotFound(f"no item {arg}")

    def broken(ctx: zerorelay.RpcContext, arg: object) -> object:
        raise RuntimeError("boom")

    rpc = {"echo": echo, "math.add": add, "item.get": missing, "broken": broken}
    async with zerorelay.Server(rpc=rpc) as s, zerorelay.connect(s.url, user="a") as a:
        r = await a.rpc("echo", {"x": 1})
        assert r == {"arg": {"x": 1}, "user": "a", "session": a.session}
        assert await a.rpc("math.add", [1, 2, 3]) == 6
        assert await a.rpc("echo") == {"arg": None, "user": "a", "session": a.session}
        with pytest.raises(zerorelay.NotFound) as e:
            await a.rpc("item.get", 7)
        assert e.value.code == "not_found" and "no item 7" in str(e.value)
        with pytest.raises(zerorelay.InternalError):
            await a.rpc("broken")
        with pytest.raises(zerorelay.NotFound) as e:
            await a.rpc("no.such.method")
        assert e.value.code == "not_found"


async def test_host_sends_from_python(server: zerorelay.Server) -> None:
    async with zerorelay.connect(server.url, user="a") as a:
        await a.join("g")
        assert server.publish("g", {"from": "host"}) == 1
        assert server.send_to_user("a", "to user") == 1
        assert a.session is not None
        server.send_to_session(a.session, "to session")
        assert server.broadcast(None) == 1
        msgs = [await a.recv(timeout=5) for _ in range(4)]
        assert [m.data for m in msgs] == [{"from": "host"}, "to user", "to session", None]
        assert [m.kind for m in msgs] == ["group", "direct", "direct", "broadcast"]
        assert all(m.sender is None and m.sender_session is None for m in msgs)
        with pytest.raises(zerorelay.NotFound):
            server.send_to_user("nobody", 1)
        with pytest.raises(zerorelay.NotFound):
            server.send_to_session("s_nope", 1)
        with pytest.raises(zerorelay.BadRequest):
            server.publish("bad group!", 1)
        st = server.stats()
        assert st.connections_open == 1 and st.sessions == 1 and st.deliveries == 4


async def test_disconnect_ends_the_session_for_good(server: zerorelay.Server) -> None:
    async with zerorelay.connect(server.url, user="a") as a:
        closed = asyncio.get_running_loop().create_future()
        a.on("closed", lambda e: closed.done() or closed.set_result(e))
        assert a.session is not None
        assert server.disconnect(a.session)
        e = await asyncio.wait_for(closed, 5)
        assert e.type == "closed"
        with pytest.raises(zerorelay.Closed):
            await a.join("g")
        assert not server.disconnect("s_nope")


async def test_revoking_a_user_or_a_session_closes_its_clients_for_good(
    server: zerorelay.Server,
) -> None:
    loop = asyncio.get_running_loop()
    async with (
        zerorelay.connect(server.url, user="alice") as a1,
        zerorelay.connect(server.url, user="alice") as a2,
        zerorelay.connect(server.url, user="bob") as b,
    ):
        closed = []
        for c in (a1, a2, b):
            f: asyncio.Future[zerorelay.Event] = loop.create_future()
            c.on("closed", lambda e, f=f: f.done() or f.set_result(e))
            closed.append(f)
        assert b.session is not None
        assert server.revoke_user("alice") == 2
        assert server.revoke_session(b.session)
        for f in closed:
            e = await asyncio.wait_for(f, 5)
            assert e.type == "closed" and "revoked" in (e.reason or "")
        with pytest.raises(zerorelay.Closed):
            await a1.join("g")
        assert server.sessions() == []
        assert not server.revoke_session("s_nope")
        assert server.revoke_user("nobody") == 0


async def test_message_iteration_ends_when_the_client_closes(server: zerorelay.Server) -> None:
    c = await zerorelay.connect(server.url, user="a")
    await c.join("g")
    server.publish("g", 1)
    server.publish("g", 2)

    async def read() -> list[object]:
        return [m.data async for m in c]

    reader = asyncio.ensure_future(read())
    await asyncio.sleep(0.2)
    await c.close()
    assert await asyncio.wait_for(reader, 5) == [1, 2]
    with pytest.raises(zerorelay.Closed):
        await c.recv(timeout=1)
    await c.close()  # twice is fine


_FLOOD_CONFIG = {
    "session": {"outbox_messages": 100_000, "outbox_bytes": 1 << 26},
    "limits": {"slow_consumer_bytes": 1 << 30},
}


async def test_close_is_quick_when_nobody_reads_the_messages() -> None:
    # More messages than every buffer on the way holds: the engine's driver
    # is then blocked handing over events, and close must still get through.
    async with zerorelay.Server(_FLOOD_CONFIG) as server:
        c = await zerorelay.connect(server.url, user="a", message_buffer=2)
        await c.join("g")
        for i in range(20_000):
            server.publish("g", i)
        await asyncio.sleep(0.5)  # the buffers fill up; nobody reads
        t = asyncio.get_running_loop().time()
        await asyncio.wait_for(c.close(), 5)
        assert asyncio.get_running_loop().time() - t < 3
        # What was buffered is still readable, in order, then iteration ends.
        got = [m.data async for m in c]
        assert got == list(range(len(got))) and len(got) > 0


def test_sync_close_is_quick_when_nobody_reads_the_messages() -> None:
    with zerorelay.sync.Server(_FLOOD_CONFIG) as server:
        sc = zerorelay.sync.connect(server.url, user="b")
        sc.join("g")
        for i in range(20_000):
            server.publish("g", i)
        time.sleep(0.5)
        t = time.monotonic()
        sc.close()
        assert time.monotonic() - t < 3
