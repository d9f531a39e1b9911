"""A Python auth callback (sync or async) decides who connects."""

from __future__ import annotations

import asyncio

import pytest

import zerorelay


async def test_a_sync_callback_accepts_with_a_user_and_sees_the_credentials() -> None:
    seen: list[zerorelay.Credentials] = []

    def auth(c: zerorelay.Credentials) -> str | None:
        seen.append(c)
        return "alice" if c.token == "good" else None

    async with zerorelay.Server(auth=auth) as s:
        async with zerorelay.connect(s.url, token="good", user="mallory") as c:
            assert [x.user for x in s.sessions()] == ["alice"]
            assert c.status == "connected"
        with pytest.raises(zerorelay.Unauthorized) as e:
            await zerorelay.connect(s.url, token="bad")
        assert e.value.code == "unauthorized"
    assert seen[0].token == "good" and seen[0].user == "mallory"
    assert seen[0].remote is not None and seen[0].remote.startswith("127.0.0.1:")


async def test_an_async_callback_runs_on_the_servers_loop() -> None:
    loop = asyncio.get_running_loop()
    loops: list[asyncio.AbstractEventLoop] = []

    async def auth(c: zerorelay.Credentials) -> zerorelay.Answer | None:
        loops.append(asyncio.get_running_loop())
        await asyncio.sleep(0.01)
        if c.token == "t":
            return zerorelay.Answer(user="bob", expires_in=3600)
        return None

    async with zerorelay.Server(auth=auth) as s:
        async with zerorelay.connect(s.url, token="t"):
            assert [x.user for x in s.sessions()] == ["bob"]
        with pytest.raises(zerorelay.Unauthorized):
            await zerorelay.connect(s.url, token="nope")
    assert loops and all(x is loop for x in loops)


async def test_other_answers_true_mapping_and_exceptions() -> None:
    def auth(c: zerorelay.Credentials) -> object:
        if c.token == "anon":
            return True
        if c.token == "map":
            return {"user": "carol"}
        if c.token == "bad-user":
            return "not a valid user!"
        raise RuntimeError("the callback broke")

    async with zerorelay.Server(auth=auth) as s:  # type: ignore[arg-type]
        async with zerorelay.connect(s.url, token="anon"):
            assert [x.user for x in s.sessions()] == [None]
        async with zerorelay.connect(s.url, token="map"):
            assert [x.user for x in s.sessions()] == ["carol"]
        for token in ("bad-user", "boom"):
            with pytest.raises(zerorelay.Unauthorized):
                await zerorelay.connect(s.url, token=token)


async def test_a_token_provider_is_asked_for_each_connection() -> None:
    calls = 0

    async def provider() -> tuple[str, float | None]:
        nonlocal calls
        calls += 1
        return ("good", None)

    async with zerorelay.Server(auth=lambda c: "dave" if c.token == "good" else None) as s:
        async with zerorelay.connect(
            s.url, token_provider=provider, reconnect={"base_ms": 20, "cap_ms": 50}
        ) as c:
            assert [x.user for x in s.sessions()] == ["dave"]
            assert c.session is not None
            s.drop_connection(c.session)
            for _ in range(200):
                if calls >= 2 and c.status == "connected":
                    break
                await asyncio.sleep(0.02)
    assert calls >= 2
