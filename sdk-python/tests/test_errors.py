"""Typed exceptions: every code has a class, and real refusals raise them."""

from __future__ import annotations

import json
import pathlib
import pickle

import pytest

import zerorelay
from zerorelay import _native

CODES_JSON = pathlib.Path(__file__).resolve().parents[2] / "tests" / "vectors" / "codes.json"


def test_every_code_in_codes_json_and_the_engine_has_a_class() -> None:
    table = json.loads(CODES_JSON.read_text())
    protocol = [c["code"] for c in table["error_codes"]]
    assert protocol == _native.protocol_codes(), "codes.json and the engine disagree"
    for code in [*protocol, *_native.client_codes()]:
        cls = zerorelay.ERRORS_BY_CODE.get(code)
        assert cls is not None, f"no exception class for code {code!r}"
        assert issubclass(cls, zerorelay.ZerorelayError)
        assert cls.code == code
        e = zerorelay.errors.error_for(code, "m")
        assert type(e) is cls and e.code == code and str(e) == "m"
    # Nothing stale either: every class is for a code that exists.
    assert set(zerorelay.ERRORS_BY_CODE) == {*protocol, *_native.client_codes()}


def test_an_unknown_code_is_the_base_class_with_that_code() -> None:
    e = zerorelay.errors.error_for("brand_new", "m")
    assert type(e) is zerorelay.ZerorelayError and e.code == "brand_new"


def test_exceptions_pickle_with_their_code() -> None:
    e = pickle.loads(pickle.dumps(zerorelay.NotFound("no such user", "not_found")))
    assert isinstance(e, zerorelay.NotFound) and e.code == "not_found"
    assert str(e) == "no such user"


async def test_forbidden_when_a_feature_is_off() -> None:
    config = {"features": {"client_broadcast": False, "send_to_session": False}}
    async with zerorelay.Server(config) as s, zerorelay.connect(s.url, user="a") as a:
        with pytest.raises(zerorelay.Forbidden) as e:
            await a.broadcast(1)
        assert e.value.code == "forbidden"
        assert a.session is not None
        with pytest.raises(zerorelay.Forbidden):
            await a.send(1, session=a.session)
        await a.join("still-works")


async def test_not_found_for_an_unknown_user(server: zerorelay.Server) -> None:
    async with zerorelay.connect(server.url, user="a") as a:
        with pytest.raises(zerorelay.NotFound) as e:
            await a.send("x", to="nobody")
        assert e.value.code == "not_found" and "nobody" in str(e.value)


async def test_bad_names_are_refused(server: zerorelay.Server) -> None:
    async with zerorelay.connect(server.url, user="a") as a:
        with pytest.raises((zerorelay.BadRequest, zerorelay.InvalidArgument)) as e:
            await a.join("not a valid group!")
        assert "group" in str(e.value)


async def test_limit_exceeded_past_max_groups() -> None:
    config = {"limits": {"max_groups_per_session": 1}}
    async with zerorelay.Server(config) as s, zerorelay.connect(s.url) as a:
        await a.join("one")
        with pytest.raises(zerorelay.LimitExceeded):
            await a.join("two")


async def test_unauthorized_with_a_wrong_static_token() -> None:
    config = {"auth": {"tokens": {"secret": "alice"}}}
    async with zerorelay.Server(config) as s:
        async with zerorelay.connect(s.url, token="secret") as ok:
            assert ok.status == "connected"
        with pytest.raises(zerorelay.Unauthorized) as e:
            await zerorelay.connect(s.url, token="wrong")
        assert e.value.code == "unauthorized"


async def test_timeout_when_the_server_does_not_answer_in_time() -> None:
    import asyncio

    release = asyncio.Event()

    async def slow(ctx: zerorelay.RpcContext, arg: object) -> str:
        await release.wait()
        return "late"

    async with (
        zerorelay.Server(rpc={"slow": slow}) as s,
        zerorelay.connect(s.url, request_timeout=0.3) as a,
    ):
        with pytest.raises(zerorelay.Timeout) as e:
            await a.rpc("slow")
        assert e.value.code == "timeout"
        release.set()


async def test_connection_failed_when_nothing_listens() -> None:
    from conftest import free_port

    url = f"ws://127.0.0.1:{free_port()}/ws"
    with pytest.raises(zerorelay.ConnectionFailed):
        await zerorelay.connect(url, reconnect=False, connect_timeout=2)
    with pytest.raises(zerorelay.ConnectionFailed) as e:
        await zerorelay.connect(url, reconnect={"base_ms": 20, "cap_ms": 50}, connect_timeout=0.3)
    assert "connect_timeout" in str(e.value)


async def test_invalid_argument_for_a_bad_url() -> None:
    with pytest.raises(zerorelay.InvalidArgument) as e:
        await zerorelay.connect("http://127.0.0.1:1/ws")
    assert "scheme" in str(e.value)
    assert isinstance(e.value, ValueError)
