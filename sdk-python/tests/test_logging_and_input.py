"""Logs reach the `zerorelay` logger; bad input gets clear errors and does
not disturb other clients."""

from __future__ import annotations

import logging
import math
import pathlib
import re
from collections.abc import Awaitable
from typing import Any, Callable

import pytest

import zerorelay
import zerorelay.sync


async def test_core_logs_reach_the_zerorelay_logger(
    caplog: pytest.LogCaptureFixture, server: zerorelay.Server
) -> None:
    caplog.set_level(logging.INFO, logger="zerorelay")
    zerorelay.refresh_log_levels()
    async with zerorelay.connect(server.url, user="a") as c:
        session = c.session
    records = [r for r in caplog.records if r.name.startswith("zerorelay.")]
    connected = [r for r in records if "The client is connected." in r.getMessage()]
    assert connected, [r.getMessage() for r in records]
    assert connected[0].levelno == logging.INFO
    assert connected[0].name == "zerorelay.client.driver"
    assert session is not None and session in connected[0].getMessage()


async def test_a_bad_option_key_is_named(server: zerorelay.Server) -> None:
    with pytest.raises(zerorelay.InvalidArgument) as e:
        await zerorelay.connect(server.url, options={"request_timeot_ms": 5})
    assert "request_timeot_ms" in str(e.value)
    with pytest.raises(zerorelay.InvalidArgument) as e:
        await zerorelay.connect(server.url, reconnect={"base": 5})
    assert "base" in str(e.value)
    with pytest.raises(zerorelay.InvalidArgument) as e:
        await zerorelay.connect(server.url, offline_queue={"full": "sometimes"})
    assert "sometimes" in str(e.value)
    with pytest.raises(zerorelay.InvalidArgument) as e:
        await zerorelay.connect(server.url, request_timeout=0)
    assert "request_timeout" in str(e.value)
    with pytest.raises(TypeError):
        await zerorelay.connect(server.url, reconect=True)  # type: ignore[call-arg]


def test_a_bad_server_config_key_is_named() -> None:
    with pytest.raises(zerorelay.InvalidArgument) as e:
        zerorelay.Server.start({"limits": {"max_frame": 1}})
    assert "max_frame" in str(e.value)
    with pytest.raises(zerorelay.InvalidArgument) as e:
        zerorelay.Server.start({"limits": {"max_frame_bytes": 1}})
    assert "limits.max_frame_bytes" in str(e.value)
    with pytest.raises(OSError):
        with zerorelay.sync.Server() as s:
            zerorelay.Server.start({"server": {"listen": s.address}})


async def test_unserializable_payloads_fail_clearly_and_others_are_unaffected(
    server: zerorelay.Server,
) -> None:
    async with (
        zerorelay.connect(server.url, user="a") as a,
        zerorelay.connect(server.url, user="b") as b,
    ):
        await b.join("g")
        for bad in ({1, 2}, object(), math.nan, {"k": b"bytes"}):
            with pytest.raises(zerorelay.InvalidArgument) as e:
                await a.publish("g", bad)
            assert "not JSON-serializable" in str(e.value)
        with pytest.raises(zerorelay.InvalidArgument):
            server.publish("g", {1, 2})
        # The client that sent garbage still works, and so does the other one.
        await a.publish("g", {"ok": True})
        assert (await b.recv(timeout=5)).data == {"ok": True}


async def test_a_frame_over_the_limit_is_reported_and_the_client_goes_on() -> None:
    # The server does not parse an oversized frame, so it answers with an
    # `error` event (no request id): the request itself times out.
    errors: list[zerorelay.Event] = []
    async with (
        zerorelay.Server({"limits": {"max_frame_bytes": 1024}}) as s,
        zerorelay.connect(s.url, request_timeout=0.5, on={"error": errors.append}) as a,
    ):
        with pytest.raises(zerorelay.Timeout):
            await a.publish("g", "x" * 2000)
        assert [e.code for e in errors] == ["too_large"]
        await a.join("g")
        await a.publish("g", "small", echo=True)
        assert (await a.recv(timeout=5)).data == "small"


async def test_unknown_event_types_are_refused(server: zerorelay.Server) -> None:
    async with zerorelay.connect(server.url) as a:
        with pytest.raises(zerorelay.InvalidArgument):
            a.on("conected", print)


async def test_arguments_of_the_wrong_type_are_invalid_arguments(
    server: zerorelay.Server,
) -> None:
    bad_calls: list[Callable[[zerorelay.Client], Awaitable[Any]]] = [
        lambda c: c.join(5),  # type: ignore[arg-type]
        lambda c: c.leave(None),  # type: ignore[arg-type]
        lambda c: c.presence(["g"]),  # type: ignore[arg-type]
        lambda c: c.publish("g", 1, echo="yes"),  # type: ignore[arg-type]
        lambda c: c.broadcast(1, echo=1),  # type: ignore[arg-type]
        lambda c: c.send(1, to=7),  # type: ignore[arg-type]
        lambda c: c.send(1, session=b"s_1"),  # type: ignore[arg-type]
        lambda c: c.rpc(None),  # type: ignore[arg-type]
    ]
    async with zerorelay.connect(server.url, user="a") as a:
        for call in bad_calls:
            with pytest.raises(zerorelay.InvalidArgument):
                await call(a)
        await a.join("g", presence=True)
        await a.publish("g", "still fine", echo=True)
        assert (await a.recv(timeout=5)).data == "still fine"


def test_the_blocking_client_refuses_wrong_types_the_same_way() -> None:
    with (
        zerorelay.sync.Server() as server,
        zerorelay.sync.connect(server.url, user="a") as a,
    ):
        with pytest.raises(zerorelay.InvalidArgument):
            a.join(5)  # type: ignore[arg-type]
        with pytest.raises(zerorelay.InvalidArgument):
            a.publish("g", 1, echo="yes")  # type: ignore[arg-type]
        with pytest.raises(zerorelay.InvalidArgument):
            a.send(1, to=7)  # type: ignore[arg-type]
        with pytest.raises(zerorelay.InvalidArgument):
            a.rpc(None)  # type: ignore[arg-type]
        a.join("g")
        assert a.presence("g").members[0].user == "a"


def test_the_package_builds_no_protocol_frames() -> None:
    # The engine owns the wire format: requests go through the native
    # client's typed methods, so a new encoding needs no change here.
    frame = re.compile(
        r"""["']type["']\s*:\s*["'](hello|join|leave|publish|send|broadcast|rpc|presence|ack|ping|refresh)["']"""
    )
    package = pathlib.Path(zerorelay.__file__).parent
    sources = sorted(package.glob("*.py"))
    assert sources
    for source in sources:
        found = frame.findall(source.read_text())
        assert not found, f"{source.name} builds {found} frames itself"
