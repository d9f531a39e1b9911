"""Cancelling an awaiting task cancels the request in the engine."""

from __future__ import annotations

import asyncio

import pytest
from conftest import FAST_RECONNECT, assert_no_message, free_port

import zerorelay


async def test_a_cancelled_queued_request_is_never_sent() -> None:
    port = free_port()
    c = await zerorelay.connect(
        f"ws://127.0.0.1:{port}/ws", user="a", wait=False, reconnect=FAST_RECONNECT
    )
    try:
        join = asyncio.ensure_future(c.join("g"))
        dropped = asyncio.ensure_future(c.publish("g", "cancelled", echo=True))
        kept = asyncio.ensure_future(c.publish("g", "kept", echo=True))
        await asyncio.sleep(0.1)
        dropped.cancel()
        with pytest.raises(asyncio.CancelledError):
            await dropped
        async with zerorelay.Server({"server": {"listen": f"127.0.0.1:{port}"}}):
            await asyncio.wait_for(asyncio.gather(join, kept), 10)
            assert (await c.recv(timeout=5)).data == "kept"
            await assert_no_message(c, 0.3)
    finally:
        await c.close()


async def test_cancelling_an_in_flight_request_leaves_the_client_usable() -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    async def slow(ctx: zerorelay.RpcContext, arg: object) -> str:
        started.set()
        await release.wait()
        return "late"

    async with zerorelay.Server(rpc={"slow": slow}) as s, zerorelay.connect(s.url) as c:
        call = asyncio.ensure_future(c.rpc("slow"))
        await asyncio.wait_for(started.wait(), 5)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        release.set()
        await c.join("g")
        await c.publish("g", "after", echo=True)
        assert (await c.recv(timeout=5)).data == "after"


async def test_wait_for_timeout_cancels_the_request() -> None:
    port = free_port()
    c = await zerorelay.connect(
        f"ws://127.0.0.1:{port}/ws", user="a", wait=False, reconnect=FAST_RECONNECT
    )
    try:
        join = asyncio.ensure_future(c.join("g"))
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(c.publish("g", "timed out", echo=True), 0.1)
        async with zerorelay.Server({"server": {"listen": f"127.0.0.1:{port}"}}):
            await asyncio.wait_for(join, 10)
            await c.publish("g", "sent", echo=True)
            assert (await c.recv(timeout=5)).data == "sent"
            await assert_no_message(c, 0.3)
    finally:
        await c.close()
