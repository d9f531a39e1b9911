"""`limits.rpc_timeout_ms`: an RPC handler of the embedded relay that never
answers fails its call with `InternalError`, and nothing else waits for it."""

from __future__ import annotations

import asyncio

import pytest

import zerorelay


async def test_an_rpc_handler_that_never_answers_fails_with_internal_after_the_rpc_timeout() -> (
    None
):
    entered = 0
    never = asyncio.Event()

    async def hang(ctx: zerorelay.RpcContext, arg: object) -> None:
        nonlocal entered
        entered += 1
        await never.wait()

    def echo(ctx: zerorelay.RpcContext, arg: object) -> object:
        return arg

    async with (
        zerorelay.Server(
            {"limits": {"rpc_timeout_ms": 200}}, rpc={"hang": hang, "echo": echo}
        ) as s,
        zerorelay.connect(s.url, user="alice") as alice,
        zerorelay.connect(s.url, user="bob") as bob,
    ):
        hung = asyncio.ensure_future(alice.rpc("hang"))
        # While the call hangs, the same client's next call and another
        # client's are answered.
        assert await alice.rpc("echo", "a") == "a"
        assert await bob.rpc("echo", "b") == "b"

        with pytest.raises(zerorelay.InternalError) as e:
            await asyncio.wait_for(hung, 10)
        assert e.value.code == "internal"
        assert "limits.rpc_timeout_ms" in str(e.value)
        assert entered == 1
        # The connection is unharmed.
        assert await alice.rpc("echo", "again") == "again"
        never.set()
