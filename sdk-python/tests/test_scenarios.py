"""The scenario suite (tests/scenarios/scenarios.json) run with the Python SDK:
each row is one test against a fresh embedded relay. The step vocabulary is
in tests/scenarios/README.md; a step this runner does not implement fails
its row."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import math
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, Callable, Optional

import pytest
from conftest import Proxy

import zerorelay

SUITE = json.loads(
    (Path(__file__).resolve().parents[2] / "tests" / "scenarios" / "scenarios.json").read_text()
)
WAIT = SUITE["wait_ms"] / 1000


def hs256(secret: str, claims: dict[str, Any]) -> str:
    """A JWT signed with HMAC-SHA256."""

    def b64(b: bytes) -> str:
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

    signed = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "."
    signed += b64(json.dumps(claims).encode())
    return f"{signed}.{b64(hmac.new(secret.encode(), signed.encode(), hashlib.sha256).digest())}"


async def until(what: str, check: Callable[[], Any], timeout: float = WAIT) -> Any:
    """Polls `check` until it returns something other than None."""
    deadline = time.monotonic() + timeout
    while True:
        v = check()
        if v is not None:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout} s")
        await asyncio.sleep(0.01)


async def outcome(aw: Awaitable[Any]) -> dict[str, Any]:
    """A request's outcome: ``{"result": ...}`` or ``{"error": code}``."""
    try:
        return {"result": await aw}
    except zerorelay.ZerorelayError as e:
        return {"error": e.code}


def check(step: dict[str, Any], out: dict[str, Any]) -> None:
    """Checks an outcome against a step's ``error`` / ``result``."""
    if "error" in step:
        assert out.get("error") == step["error"], f"expected error {step['error']}, got {out}"
    else:
        assert "error" not in out, f"expected success, got error {out['error']}"
        if "result" in step:
            assert out["result"] == step["result"]


class Peer:
    """A client of the scenario and what it saw."""

    def __init__(self) -> None:
        self.client: Optional[zerorelay.Client] = None
        self.net: Optional[Proxy] = None
        self.tokens: list[Optional[int]] = []
        self.events: list[dict[str, Any]] = []
        self.messages: list[zerorelay.Message] = []
        self.cursor = 0
        self.read = 0
        self.reader: Optional[asyncio.Task[None]] = None

    @property
    def c(self) -> zerorelay.Client:
        assert self.client is not None
        return self.client

    def on_event(self, e: zerorelay.Event) -> None:
        if e.type == "connected":
            self.events.append(
                {"type": e.type, "session": e.session, "user": e.user, "resumed": e.resumed}
            )
        elif e.type == "disconnected":
            self.events.append({"type": e.type, "code": e.close_code, "will_retry": e.will_retry})
        elif e.type == "error":
            self.events.append({"type": e.type, "code": e.code})
        elif e.type == "closed":
            self.events.append({"type": e.type})

    async def read_messages(self) -> None:
        async for m in self.c:
            self.messages.append(m)


class Run:
    def __init__(self, server: zerorelay.Server) -> None:
        self.server = server
        self.stopped = False
        self.peers: dict[str, Peer] = {}
        self.pending: dict[str, asyncio.Task[dict[str, Any]]] = {}

    def peer(self, name: str) -> Peer:
        if name not in self.peers:
            raise AssertionError(f"no client {name!r} in this scenario")
        return self.peers[name]

    async def session(self, name: str) -> str:
        """The session of a client's latest welcome."""
        p = self.peer(name)

        def latest() -> Optional[str]:
            s = [e["session"] for e in p.events if e["type"] == "connected"]
            return s[-1] if s else None

        session: str = await until(f"session of {name}", latest)
        return session

    async def expect_event(self, step: dict[str, Any], type_: str, fields: list[str]) -> None:
        """Waits for the next event after the last one matched with the step's fields."""
        p = self.peer(step["client"])

        def find() -> Optional[int]:
            for i in range(p.cursor, len(p.events)):
                e = p.events[i]
                if e["type"] == type_ and all(e[f] == step[f] for f in fields if f in step):
                    return i
            return None

        p.cursor = await until(f"{type_} event on {step['client']} like {step}", find) + 1

    async def call(self, step: dict[str, Any]) -> Any:
        c = self.peer(step["client"]).c
        kind = step["do"]
        if kind == "join":
            return await c.join(step["group"])
        if kind == "leave":
            return await c.leave(step["group"])
        if kind == "publish":
            return await c.publish(step["group"], step["data"], echo=step.get("echo", False))
        if kind == "send":
            if "to" in step:
                return await c.send(step["data"], to=step["to"])
            return await c.send(step["data"], session=await self.session(step["session_of"]))
        if kind == "broadcast":
            return await c.broadcast(step["data"])
        return await c.rpc(step["method"], step.get("data"))

    async def request(self, step: dict[str, Any]) -> None:
        # Resolve a session before the call, so that the request is made at
        # once: pending requests are queued in step order.
        if "session_of" in step:
            await self.session(step["session_of"])
        if "pending" in step:
            self.pending[step["pending"]] = asyncio.ensure_future(outcome(self.call(step)))
            # One turn of the loop runs the task up to its first wait, which
            # is after the client queued the request.
            await asyncio.sleep(0)
            return
        check(step, await asyncio.wait_for(outcome(self.call(step)), WAIT))

    async def connect(self, step: dict[str, Any]) -> None:
        p = Peer()
        provider = None
        if "token_provider" in step:
            spec = step["token_provider"]

            def provider() -> str:
                call = len(p.tokens) + 1
                if call in spec.get("fail_calls", []):
                    p.tokens.append(None)
                    raise RuntimeError(f"the scenario fails call {call}")
                p.tokens.append(math.ceil(time.time()) + spec["ttl_s"])
                return hs256(spec["jwt_secret"], {"sub": spec["sub"], "exp": p.tokens[-1]})

        if step.get("proxy"):
            p.net = Proxy(self.server.address)
            await p.net.start()
        queue = step.get("queue")
        connecting = zerorelay.connect(
            p.net.url if p.net else self.server.url,
            user=step.get("user"),
            token=step.get("token"),
            token_provider=provider,
            reconnect={"base_ms": 20, "cap_ms": 200},
            offline_queue=None if queue is None else {"max_messages": queue["max_messages"]},
            on={"*": p.on_event},
        )
        if "error" in step:
            # A connect that must fail: no client is kept.
            out = await outcome(connecting)
            if "result" in out:
                await out["result"].close()
            if p.net:
                p.net.close()
            check(step, out)
            return
        p.client = await connecting
        p.reader = asyncio.ensure_future(p.read_messages())
        self.peers[step["as"]] = p

    async def step(self, step: dict[str, Any]) -> None:
        kind = step["do"]
        p = self.peer(step["client"]) if "client" in step else None
        s = self.server
        if kind == "connect":
            await self.connect(step)
        elif kind == "close":
            assert p is not None
            await asyncio.wait_for(p.c.close(), WAIT)
        elif kind in ("join", "leave", "publish", "send", "broadcast", "rpc"):
            await self.request(step)
        elif kind == "await":
            check(step, await asyncio.wait_for(self.pending[step["pending"]], WAIT))
        elif kind == "expect_message":
            assert p is not None
            m = await until(
                f"message on {step['client']}",
                lambda: p.messages[p.read] if len(p.messages) > p.read else None,
            )
            p.read += 1
            got = {"from": m.sender, "kind": m.kind, "group": m.group, "data": m.data}
            for f in ("from", "kind", "group", "data"):
                if f in step:
                    assert got[f] == step[f], f"message {got} should have {f} {step[f]!r}"
        elif kind == "expect_no_message":
            assert p is not None
            await asyncio.sleep(step["within_ms"] / 1000)
            assert p.messages[p.read :] == [], "no message should have arrived"
        elif kind == "expect_connected":
            await self.expect_event(step, "connected", ["user", "resumed"])
        elif kind == "expect_disconnect":
            await self.expect_event(step, "disconnected", ["code", "will_retry"])
        elif kind == "expect_error":
            await self.expect_event(step, "error", ["code"])
        elif kind == "expect_closed":
            await self.expect_event(step, "closed", [])
        elif kind == "expect_no_event":
            assert p is not None
            assert [e for e in p.events if e["type"] == step["event"]] == []
        elif kind == "expect_sessions":

            def counted() -> Optional[bool]:
                n = len([x for x in s.sessions() if x.user == step["user"]])
                return True if n == step["count"] else None

            await until(f"{step['count']} sessions of {step['user']}", counted)
        elif kind == "outlive_token":
            # Token n+1 was issued (the relay asked before n expired) and
            # n's expiry has passed.
            assert p is not None
            tokens, n = p.tokens, step["token"]

            def expired() -> Optional[bool]:
                exp = tokens[n - 1] if len(tokens) > n else None
                return True if exp is not None and time.time() > exp else None

            await until(f"the expiry of token {n} of {step['client']}", expired)
        elif kind == "cut":
            assert s.drop_connection(await self.session(step["client"]))
        elif kind == "kick":
            assert s.disconnect(await self.session(step["client"]))
        elif kind == "revoke":
            assert s.revoke_session(await self.session(step["client"]))
        elif kind in ("offline", "online"):
            assert p is not None
            if p.net is None:
                raise AssertionError(f'{kind} needs a client connected with "proxy": true')
            p.net.set_down(kind == "offline")
        elif kind == "stop_server":
            self.stopped = True
            await asyncio.wait_for(s.close(), WAIT)
        elif kind == "host_publish":
            s.publish(step["group"], step["data"])
        elif kind == "host_send":
            if "to" in step:
                s.send_to_user(step["to"], step["data"])
            else:
                s.send_to_session(await self.session(step["session_of"]), step["data"])
        elif kind == "host_broadcast":
            s.broadcast(step["data"])
        else:
            raise AssertionError(f"the Python runner does not implement step {kind!r}")

    async def close(self) -> None:
        for p in self.peers.values():
            await p.c.close()
            if p.reader is not None:
                p.reader.cancel()
            if p.net is not None:
                p.net.close()
        for t in self.pending.values():
            t.cancel()
        if not self.stopped:
            await self.server.close()


@pytest.mark.parametrize("row", SUITE["scenarios"], ids=[r["name"] for r in SUITE["scenarios"]])
async def test_scenario(row: dict[str, Any]) -> None:
    config = dict(row["config"])
    config["server"] = {"listen": "127.0.0.1:0", **config.get("server", {})}
    server = zerorelay.Server.start(
        config, rpc={"echo": lambda ctx, data: {"data": data, "user": ctx.user}}
    )
    run = Run(server)
    try:
        for i, step in enumerate(row["steps"], 1):
            allowed = SUITE["vocabulary"].get(step["do"])
            assert allowed is not None, f"step {i}: unknown step {step['do']!r}"
            extra = [k for k in step if k != "do" and k not in allowed]
            assert not extra, f"step {i} ({step['do']}): unknown keys {extra}"
            try:
                await run.step(step)
            except (AssertionError, asyncio.TimeoutError, zerorelay.ZerorelayError) as e:
                raise AssertionError(f"step {i} {json.dumps(step)}: {e!r}") from e
    finally:
        await run.close()
