"""Resume across a forced disconnect: nothing lost, nothing twice."""

from __future__ import annotations

import asyncio

from conftest import assert_no_message, eventually, recv_n

import zerorelay


async def test_messages_published_while_down_arrive_exactly_once_after_resume(
    server: zerorelay.Server,
) -> None:
    events: list[zerorelay.Event] = []
    reconnect = {"base_ms": 300, "cap_ms": 300}
    async with zerorelay.connect(
        server.url, user="b", reconnect=reconnect, on={"*": events.append}
    ) as b:
        await b.join("g")
        # Delivered before the cut and probably not yet acknowledged (acks
        # are batched): the server redelivers them on resume, and the
        # engine must drop the copies.
        for i in range(10):
            server.publish("g", i)
        assert await recv_n(b, 10) == list(range(10))
        session = b.session
        assert session is not None

        assert server.drop_connection(session)
        await eventually(lambda: not server.sessions()[0].connected, what="the connection to drop")
        for i in range(10, 60):
            server.publish("g", i)
        assert not server.sessions()[0].connected, "reconnected before the test published"

        assert await recv_n(b, 50) == list(range(10, 60))
        await assert_no_message(b, 0.5)
        assert b.session == session

    types = [e.type for e in events]
    assert "disconnected" in types and "reconnecting" in types
    resumed = [e for e in events if e.type == "connected" and e.resumed]
    assert len(resumed) == 1 and resumed[0].session == session
    down = next(e for e in events if e.type == "disconnected")
    assert down.will_retry and down.close_code == 1001


async def test_group_membership_survives_the_reconnect(server: zerorelay.Server) -> None:
    async with zerorelay.connect(
        server.url, user="b", reconnect={"base_ms": 20, "cap_ms": 50}
    ) as b:
        await b.join("g")
        assert b.session is not None
        server.drop_connection(b.session)
        await asyncio.sleep(0.3)
        await eventually(lambda: b.status == "connected", what="reconnect")
        server.publish("g", "after")
        assert (await b.recv(timeout=5)).data == "after"
