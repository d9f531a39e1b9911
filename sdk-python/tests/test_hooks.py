"""The embedded relay's host hooks: `authorize` (asked about what the roles
allowed) and `validate` (per group pattern: accept, reject or rewrite a
publish), against real clients."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from conftest import assert_no_message, recv_n

import zerorelay
from zerorelay.server import AuthorizeResult, ValidateResult

MEMBER = {"allow": ["join:room-*", "publish:room-*", "send:*", "broadcast", "rpc:*"]}


async def test_authorize_refuses_what_the_roles_allow_with_its_message_and_allows_the_rest() -> (
    None
):
    asked: list[zerorelay.AuthorizeRequest] = []

    def authorize(req: zerorelay.AuthorizeRequest) -> AuthorizeResult:
        asked.append(req)
        if req.resource == "room-secret":
            return "room-secret is invite-only"
        if req.action == "rpc" and req.user == "bob":
            return False
        return None if req.action != "join" else True

    config = {"auth": {"roles": {"member": MEMBER}}, "features": {"client_broadcast": True}}
    async with zerorelay.Server(
        config,
        auth=lambda c: zerorelay.Answer(user=c.token, roles=["member"]),
        rpc={"echo": lambda ctx, arg: arg},
        authorize=authorize,
    ) as s:
        async with (
            zerorelay.connect(s.url, token="alice") as alice,
            zerorelay.connect(s.url, token="bob") as bob,
        ):
            with pytest.raises(zerorelay.Forbidden) as e:
                await alice.join("room-secret")
            assert e.value.message == "room-secret is invite-only"
            # The roles refuse this one themselves: authorize is not asked.
            with pytest.raises(zerorelay.Forbidden):
                await alice.join("lobby")
            await bob.join("room-1")
            await alice.publish("room-1", "hi")
            await alice.send("psst", to="bob")
            await alice.broadcast("everyone")
            assert await alice.rpc("echo", 7) == 7
            with pytest.raises(zerorelay.Forbidden):
                await bob.rpc("echo", 1)

            assert await recv_n(bob, 3) == ["hi", "psst", "everyone"]
            assert [g.name for g in s.groups()] == ["room-1"]
    assert [(r.user, r.action, r.resource) for r in asked] == [
        ("alice", "join", "room-secret"),
        ("bob", "join", "room-1"),
        ("alice", "publish", "room-1"),
        ("alice", "send", "user:bob"),
        ("alice", "broadcast", None),
        ("alice", "rpc", "echo"),
        ("bob", "rpc", "echo"),
    ]
    assert asked[0].roles == ("member",) and asked[0].claims is None


async def test_an_authorize_hook_that_raises_fails_only_that_request_with_internal() -> None:
    async def authorize(req: zerorelay.AuthorizeRequest) -> AuthorizeResult:
        await asyncio.sleep(0)
        if req.resource == "room-boom":
            raise RuntimeError("the policy store is down")
        if req.resource == "room-forbidden":
            # An exception is a failure, whatever its class: refuse by
            # returning a message.
            raise zerorelay.Forbidden("not like this")
        if req.resource == "room-odd":
            return 42  # type: ignore[return-value]
        return True

    async with zerorelay.Server(authorize=authorize, rpc={"ping": lambda ctx, arg: "pong"}) as s:
        async with (
            zerorelay.connect(s.url, user="alice") as alice,
            zerorelay.connect(s.url, user="bob") as bob,
        ):
            session = alice.session
            drops: list[zerorelay.Event] = []
            alice.on("disconnected", drops.append)
            await bob.join("room-1")

            for group in ("room-boom", "room-forbidden"):
                with pytest.raises(zerorelay.InternalError):
                    await alice.publish(group, 1)
            with pytest.raises(zerorelay.InternalError):
                await alice.join("room-odd")
            assert await alice.rpc("ping") == "pong"
            await alice.publish("room-1", "still here")

            assert await recv_n(bob, 1) == ["still here"]
            assert alice.status == "connected" and alice.session == session
            assert drops == []


async def test_validate_rewrites_for_the_subscribers_and_rejects_with_the_hooks_codes() -> None:
    seen: list[zerorelay.ValidateContext] = []

    async def chat(ctx: zerorelay.ValidateContext, data: Any) -> ValidateResult:
        seen.append(ctx)
        text = data["text"]
        if text == "spam":
            return "no spam here"
        if text == "nope":
            return False
        if text == "secret":
            return {"reject": {"code": "forbidden", "message": "not in this room"}}
        if "<" in text:
            return {"rewrite": {"text": re.sub(r"<[^>]*>", "", text)}}
        return None

    async with zerorelay.Server(validate={"chat-*": chat}) as s:
        async with (
            zerorelay.connect(s.url, user="alice") as alice,
            zerorelay.connect(s.url, user="bob") as bob,
        ):
            await bob.join("chat-1")
            await bob.join("room-1")

            await alice.publish("chat-1", {"text": "<b>hi</b>"})
            with pytest.raises(zerorelay.BadRequest) as e:
                await alice.publish("chat-1", {"text": "spam"})
            assert e.value.message == "no spam here"
            with pytest.raises(zerorelay.BadRequest):
                await alice.publish("chat-1", {"text": "nope"})
            with pytest.raises(zerorelay.Forbidden) as f:
                await alice.publish("chat-1", {"text": "secret"})
            assert f.value.message == "not in this room"
            await alice.publish("chat-1", {"text": "plain"})
            # No pattern matches room-1: its payloads are not validated.
            await alice.publish("room-1", {"text": "<i>as sent</i>"})

            assert await recv_n(bob, 3) == [
                {"text": "hi"},
                {"text": "plain"},
                {"text": "<i>as sent</i>"},
            ]
            assert len(seen) == 5
            assert seen[0] == zerorelay.ValidateContext(
                group="chat-1", user="alice", session=alice.session or "", claims=None
            )


async def test_a_validate_hook_slower_than_the_timeout_fails_only_that_publish() -> None:
    gate = asyncio.Event()

    async def slow(ctx: zerorelay.ValidateContext, data: Any) -> ValidateResult:
        if data == "slow":
            await gate.wait()
        return True

    config = {"limits": {"validate_timeout_ms": 200}}
    async with zerorelay.Server(config, validate={"chat-*": slow}) as s:
        async with (
            zerorelay.connect(s.url, user="alice") as alice,
            zerorelay.connect(s.url, user="bob") as bob,
        ):
            await bob.join("chat-1")
            try:
                with pytest.raises(zerorelay.InternalError):
                    await alice.publish("chat-1", "slow")
                await alice.publish("chat-1", "quick")
            finally:
                gate.set()
            # The late answer changes nothing: the slow payload never arrives.
            await alice.publish("chat-1", "last")

            assert await recv_n(bob, 2) == ["quick", "last"]
            await assert_no_message(bob, 0.05)
            assert alice.status == "connected"


def test_sync_hooks_work_without_an_event_loop() -> None:
    def no_caps(ctx: zerorelay.ValidateContext, data: Any) -> ValidateResult:
        return {"rewrite": str(data).lower()} if isinstance(data, str) else "text only"

    with zerorelay.Server(
        authorize=lambda req: "read-only" if req.action == "send" else None,
        validate={"*": no_caps},
    ) as s:
        with (
            zerorelay.sync.connect(s.url, user="alice") as alice,
            zerorelay.sync.connect(s.url, user="bob") as bob,
        ):
            bob.join("g")
            alice.publish("g", "HELLO")
            with pytest.raises(zerorelay.BadRequest):
                alice.publish("g", 42)
            with pytest.raises(zerorelay.Forbidden):
                alice.send("hi", to="bob")
            m = bob.recv(timeout=5)
            assert m is not None and m.data == "hello"


def test_a_bad_validate_pattern_is_refused_at_start() -> None:
    with pytest.raises(zerorelay.InvalidArgument, match="validator pattern"):
        zerorelay.Server.start(validate={"chat-{room}": lambda ctx, data: True})
