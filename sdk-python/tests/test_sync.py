"""The blocking API: no event loop anywhere."""

from __future__ import annotations

import threading
import time

import pytest

import zerorelay
import zerorelay.sync


def test_sync_client_and_server_round_trip() -> None:
    with zerorelay.sync.Server({"features": {"client_broadcast": True}}) as server:
        events: list[str] = []
        with (
            zerorelay.sync.connect(
                server.url, user="a", on={"*": lambda e: events.append(e.type)}
            ) as a,
            zerorelay.sync.connect(server.url, user="b") as b,
        ):
            b.join("room")
            a.publish("room", {"text": "hi"})
            m = b.recv(timeout=5)
            assert m is not None and m.data == {"text": "hi"} and m.sender == "a"
            a.send({"n": 1}, to="b")
            a.send({"n": 2}, session=b.session)
            a.broadcast("all")
            got = [b.recv(timeout=5) for _ in range(3)]
            assert [x.data for x in got if x] == [{"n": 1}, {"n": 2}, "all"]
            assert b.recv(timeout=0.2) is None
            b.leave("room")
            with pytest.raises(zerorelay.NotFound):
                a.send(1, to="nobody")
            with pytest.raises(zerorelay.NotFound):
                a.rpc("nope")
            assert a.status == "connected"
        assert events[0] == "connected"


def test_sync_iteration_ends_when_closed_from_another_thread() -> None:
    server = zerorelay.sync.Server.start()
    try:
        c = zerorelay.sync.connect(server.url, user="a")
        c.join("g")
        for i in range(1000):
            server.publish("g", i)
        got: list[object] = []

        def read() -> None:
            for m in c:
                got.append(m.data)
                if len(got) == 1000:
                    break
            # Iteration stops after close.
            got.extend(m.data for m in c)

        t = threading.Thread(target=read)
        t.start()
        deadline = time.monotonic() + 5
        while len(got) < 1000 and time.monotonic() < deadline:
            time.sleep(0.01)
        c.close()
        t.join(5)
        assert not t.is_alive()
        assert got == list(range(1000))
        with pytest.raises(zerorelay.Closed):
            c.join("again")
    finally:
        server.close()


def test_sync_rpc_and_auth_callbacks() -> None:
    def auth(c: zerorelay.Credentials) -> str | None:
        return c.token

    async def double(ctx: zerorelay.RpcContext, arg: int) -> int:
        return arg * 2

    with zerorelay.sync.Server(auth=auth, rpc={"double": double}) as s:
        with zerorelay.sync.connect(s.url, token="erin") as c:
            assert c.rpc("double", 21) == 42
            assert [x.user for x in s.sessions()] == ["erin"]
        with pytest.raises(zerorelay.Unauthorized):
            zerorelay.sync.connect(s.url)


def test_sync_connect_failure_and_bad_options() -> None:
    from conftest import free_port

    with pytest.raises(zerorelay.ConnectionFailed):
        zerorelay.sync.connect(f"ws://127.0.0.1:{free_port()}/ws", connect_timeout=0.3)
    with pytest.raises(zerorelay.InvalidArgument) as e:
        zerorelay.sync.connect("ws://127.0.0.1:1/ws", options={"reconect": {}})
    assert "reconect" in str(e.value)
