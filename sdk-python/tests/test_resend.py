"""The per-request `resend` keyword across a lost session: an rpc the relay
has routed (its handler holds it) is pending when the connection is cut and
the session ended on the relay; the client's reconnect gets a new session.
Without `resend` the call fails with `UnknownOutcome` and is not called
again; with it, it is sent again (the handler sees it twice) and answered."""

from __future__ import annotations

import asyncio
import collections
from typing import Any, Optional

import pytest
from conftest import FAST_RECONNECT, Proxy, eventually, recv_n, with_timeout

import zerorelay
import zerorelay.sync


async def test_a_lost_session_fails_a_pending_rpc_with_unknown_outcome_unless_resent() -> None:
    seen: collections.Counter[Any] = collections.Counter()
    release = asyncio.Event()

    async def hold(_ctx: zerorelay.RpcContext, data: Any) -> Any:
        seen[data] += 1
        # The first call of each (but the marker) is held until the test
        # ends: its answer never reaches the client.
        if seen[data] == 1 and data != "marker":
            await release.wait()
        return data

    async with zerorelay.Server(rpc={"hold": hold}) as server:
        proxy = Proxy(server.address)
        await proxy.start()
        events: list[zerorelay.Event] = []
        try:
            async with zerorelay.connect(
                proxy.url,
                user="alice",
                reconnect=FAST_RECONNECT,
                request_timeout=60,
                on={"*": events.append},
            ) as c:
                old = c.session
                lost = asyncio.ensure_future(c.rpc("hold", "lost"))
                kept = asyncio.ensure_future(c.rpc("hold", "kept", resend=True))
                await eventually(
                    lambda: seen["lost"] == 1 and seen["kept"] == 1,
                    timeout=10,
                    what="both calls reaching the handler",
                )

                # Both were routed. Cut the connection, then end the session
                # on the relay (as when it expires): the reconnect cannot
                # resume it.
                proxy.set_down(True)
                await eventually(
                    lambda: any(e.type == "disconnected" for e in events),
                    timeout=10,
                    what="the disconnect",
                )
                assert server.disconnect(old) is True
                await eventually(lambda: not server.sessions(), timeout=10, what="the session end")
                proxy.set_down(False)
                connected = await eventually(
                    lambda: [e for e in events if e.type == "connected" and e.session != old],
                    timeout=10,
                    what="a new session",
                )
                assert connected[0].resumed is False and connected[0].lost_session == old

                with pytest.raises(zerorelay.UnknownOutcome) as err:
                    await with_timeout(lost, 10)
                assert err.value.code == "unknown_outcome"
                assert await with_timeout(kept, 10) == "kept"
                # A marker after everything the reconnect re-sent.
                assert await with_timeout(c.rpc("hold", "marker"), 10) == "marker"
                assert dict(seen) == {"lost": 1, "kept": 2, "marker": 1}
        finally:
            release.set()
            proxy.close()


BAD_FLAGS = [1, "yes", None, [True]]
RESEND_REFUSED = r"^`resend` must be true or false$"


def requests(session: Optional[str]) -> list[tuple[str, tuple[Any, ...], dict[str, Any]]]:
    """Every request that takes `resend`: (method, args, keyword args)."""
    return [
        ("publish", ("room", "x"), {}),
        ("send", ("x",), {"to": "b"}),
        ("send", ("x",), {"session": session}),
        ("broadcast", ("x",), {}),
        ("rpc", ("echo", "x"), {}),
    ]


async def test_resend_must_be_true_or_false_and_is_accepted_by_every_request_that_takes_it() -> (
    None
):
    config = {"features": {"client_broadcast": True}, "limits": {"broadcast_per_sec": 100}}
    async with (
        zerorelay.Server(config, rpc={"echo": lambda _ctx, d: d}) as server,
        zerorelay.connect(server.url, user="a") as a,
        zerorelay.connect(server.url, user="b") as b,
    ):
        await b.join("room")
        for bad in BAD_FLAGS:
            for name, args, kwargs in requests(b.session):
                with pytest.raises(zerorelay.InvalidArgument, match=RESEND_REFUSED):
                    await getattr(a, name)(*args, **kwargs, resend=bad)
        for resend in (True, False):
            await a.publish("room", "p", resend=resend)
            await a.send("u", to="b", resend=resend)
            await a.send("s", session=b.session, resend=resend)
            await a.broadcast("b", resend=resend)
            assert await recv_n(b, 4) == ["p", "u", "s", "b"]
            assert await a.rpc("echo", "r", resend=resend) == "r"


def test_the_blocking_client_takes_resend_too() -> None:
    with zerorelay.sync.Server(
        {"features": {"client_broadcast": True}, "limits": {"broadcast_per_sec": 100}},
        rpc={"echo": lambda _ctx, d: d},
    ) as server:
        with (
            zerorelay.sync.connect(server.url, user="a") as a,
            zerorelay.sync.connect(server.url, user="b") as b,
        ):
            b.join("room")
            for bad in BAD_FLAGS:
                for name, args, kwargs in requests(b.session):
                    with pytest.raises(zerorelay.InvalidArgument, match=RESEND_REFUSED):
                        getattr(a, name)(*args, **kwargs, resend=bad)
            for resend in (True, False):
                a.publish("room", "p", resend=resend)
                a.send("u", to="b", resend=resend)
                a.send("s", session=b.session, resend=resend)
                a.broadcast("b", resend=resend)
                got = [b.recv(timeout=10) for _ in range(4)]
                assert [m.data for m in got if m] == ["p", "u", "s", "b"]
                assert a.rpc("echo", "r", resend=resend) == "r"
