"""The offline queue: requests made while unreachable are sent after
connecting, in order; a full queue fails fast (or drops the oldest)."""

from __future__ import annotations

import asyncio

import pytest
from conftest import FAST_RECONNECT, assert_no_message, free_port, recv_n

import zerorelay


async def test_requests_made_while_unreachable_are_flushed_after_connect() -> None:
    port = free_port()
    c = await zerorelay.connect(
        f"ws://127.0.0.1:{port}/ws", user="a", wait=False, reconnect=FAST_RECONNECT
    )
    try:
        assert c.status == "connecting"
        queued = [asyncio.ensure_future(c.join("g"))]
        queued += [asyncio.ensure_future(c.publish("g", i, echo=True)) for i in range(5)]
        await asyncio.sleep(0.3)
        assert not any(t.done() for t in queued), "answered while no server runs"
        async with zerorelay.Server({"server": {"listen": f"127.0.0.1:{port}"}}):
            await asyncio.wait_for(asyncio.gather(*queued), 10)
            assert await recv_n(c, 5) == [0, 1, 2, 3, 4]
    finally:
        await c.close()


async def test_requests_made_before_the_welcome_are_sent_after_it(
    server: zerorelay.Server,
) -> None:
    async with zerorelay.connect(server.url, user="a", wait=False) as c:
        await c.join("g")
        await c.publish("g", "first", echo=True)
        assert (await c.recv(timeout=5)).data == "first"


async def test_a_full_queue_fails_fast() -> None:
    c = await zerorelay.connect(
        f"ws://127.0.0.1:{free_port()}/ws",
        wait=False,
        reconnect=FAST_RECONNECT,
        offline_queue=2,
    )
    try:
        held = [asyncio.ensure_future(c.publish("g", i)) for i in range(2)]
        await asyncio.sleep(0.05)
        with pytest.raises(zerorelay.QueueFull) as e:
            await c.publish("g", "third")
        assert e.value.code == "queue_full"
        assert not any(t.done() for t in held)
    finally:
        await c.close()
    for t in held:
        with pytest.raises(zerorelay.Closed):
            await t


async def test_drop_oldest_fails_the_oldest_request() -> None:
    port = free_port()
    c = await zerorelay.connect(
        f"ws://127.0.0.1:{port}/ws",
        wait=False,
        reconnect=FAST_RECONNECT,
        offline_queue={"max_messages": 2, "full": "drop_oldest"},
    )
    try:
        first = asyncio.ensure_future(c.join("g"))
        rest = [asyncio.ensure_future(c.publish("g", i, echo=True)) for i in range(2)]
        with pytest.raises(zerorelay.QueueFull):
            await asyncio.wait_for(first, 5)
        async with zerorelay.Server({"server": {"listen": f"127.0.0.1:{port}"}}):
            await asyncio.wait_for(asyncio.gather(*rest), 10)
            # The join was dropped, so the echoes had no member to reach.
            await assert_no_message(c, 0.3)
    finally:
        await c.close()
