"""Identity from the relay's own configuration: short-lived JWTs kept fresh
by the token provider, and roles answered by a Python auth callback."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import time
from typing import Any

import pytest
from conftest import eventually

import zerorelay
from zerorelay.server import AuthResult

SECRET = "a-test-secret-that-is-long-enough-for-hs256"


def hs256(secret: str, claims: dict[str, Any]) -> str:
    """A JWT signed with HMAC-SHA256, from the standard library alone."""

    def b64(b: bytes) -> str:
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

    signed = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "."
    signed += b64(json.dumps(claims).encode())
    sig = hmac.new(secret.encode(), signed.encode(), hashlib.sha256).digest()
    return f"{signed}.{b64(sig)}"


async def test_a_token_provider_keeps_one_session_alive_across_expiring_jwts() -> None:
    expiries: list[int] = []

    def provider() -> str:
        # A plain token: it does not say how long it is valid, so only the
        # relay's refresh_required makes the client ask again. `exp` is whole
        # seconds, rounded up so that each token lives two seconds or more:
        # the relay's notice comes a tenth of the lifetime ahead of expiry,
        # and rounding down would leave tokens of barely one second and a
        # notice only ~110 ms ahead: a stall that long would let one lapse.
        expiries.append(math.ceil(time.time()) + 2)
        return hs256(SECRET, {"sub": "alice", "exp": expiries[-1]})

    trouble: list[zerorelay.Event] = []
    connected: list[zerorelay.Event] = []
    on = {
        "connected": connected.append,
        "disconnected": trouble.append,
        "reconnecting": trouble.append,
        "error": trouble.append,
    }
    async with zerorelay.Server({"auth": {"jwt": {"secret": SECRET, "leeway_s": 0}}}) as s:
        async with zerorelay.connect(s.url, token_provider=provider, on=on) as c:
            session = c.session
            assert session is not None
            assert [(x.id, x.user) for x in s.sessions()] == [(session, "alice")]
            # Three expiries: the first three tokens each replaced by the
            # next one before it ran out (about 6.5 s).
            await eventually(lambda: len(expiries) >= 4, timeout=20, what="a fourth token")
            await eventually(lambda: time.time() > expiries[2], timeout=5, what="the third expiry")
            await c.join("room")
            await c.publish("room", "still here", echo=True)
            m = await c.recv(timeout=5)
            assert (m.data, m.sender) == ("still here", "alice")
            assert trouble == []
            assert [e.session for e in connected] == [session]
            assert c.status == "connected" and c.session == session
            assert [(x.id, x.connected) for x in s.sessions()] == [(session, True)]


async def test_roles_answered_by_the_auth_callback_decide_what_a_connection_may_join() -> None:
    def auth(c: zerorelay.Credentials) -> AuthResult:
        if c.token == "member":
            return zerorelay.Answer(user="alice", roles=["member"])
        if c.token == "member-map":
            return {"user": "bob", "roles": ["member"]}
        if c.token == "nobody":
            return "carol"
        return None

    config = {"auth": {"roles": {"member": {"allow": ["join:room-*"]}}}}
    async with zerorelay.Server(config, auth=auth) as s:
        for token in ("member", "member-map"):
            async with zerorelay.connect(s.url, token=token) as c:
                await c.join("room-1")
                with pytest.raises(zerorelay.Forbidden) as e:
                    await c.join("lobby")
                assert e.value.code == "forbidden"
        # Without roles in the answer nothing is allowed: the role above
        # came from the callback.
        async with zerorelay.connect(s.url, token="nobody") as c:
            with pytest.raises(zerorelay.Forbidden):
                await c.join("room-1")
