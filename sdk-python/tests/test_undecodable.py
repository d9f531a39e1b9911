"""A message whose payload Python's `json` cannot decode is reported as an
`error` event for its seq; the messages around it still arrive, in order,
and the client stays connected (both facades)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from conftest import eventually
from websockets.sync.client import connect as ws_connect

import zerorelay

# Deeper than `json.loads` can go (RecursionError), and deeper than the
# relay's default limits.max_json_depth, which the test raises.
DEEP = "[" * 5_000 + "]" * 5_000
CONFIG: dict[str, Any] = {"limits": {"max_json_depth": 100_000}}


def send_raw(url: str, to: str, payloads: list[str]) -> None:
    """Sends each payload (raw JSON text) to user `to` from a plain WebSocket
    peer: the SDK itself cannot encode a payload this deep."""
    with ws_connect(url) as ws:
        ws.send(json.dumps({"type": "hello", "v": 1, "user": "alice"}))
        assert json.loads(ws.recv(timeout=5))["type"] == "welcome"
        for i, p in enumerate(payloads, 1):
            ws.send(f'{{"type":"send","id":{i},"to":{json.dumps(to)},"data":{p}}}')
        replies = [json.loads(ws.recv(timeout=5)) for _ in payloads]
        assert [r["type"] for r in replies] == ["ok"] * len(payloads), replies


def unacked(server: zerorelay.Server | zerorelay.sync.Server, user: str) -> int:
    return next(s.unacked for s in server.sessions() if s.user == user)


async def test_a_payload_too_deep_for_json_is_an_error_for_its_seq_and_the_rest_arrives() -> None:
    async with zerorelay.Server(CONFIG) as server:
        errors: list[zerorelay.Event] = []
        async with zerorelay.connect(server.url, user="bob", on={"error": errors.append}) as bob:
            await asyncio.to_thread(send_raw, server.url, "bob", ["1", DEEP, "3"])
            first = await bob.recv(timeout=5)
            third = await bob.recv(timeout=5)
            assert (first.seq, first.data, third.seq, third.data) == (1, 1, 3, 3)
            assert [(e.type, e.code, e.seq) for e in errors] == [("error", "undecodable", 2)]
            assert "message 2 could not be decoded" in (errors[0].message or "")

            # Still connected, still acknowledging (seq 2 included), still
            # sending and receiving.
            assert bob.status == "connected"
            await eventually(lambda: unacked(server, "bob") == 0, what="the ack of seq 3")
            await bob.join("g")
            await bob.publish("g", "after", echo=True)
            after = await bob.recv(timeout=5)
            assert (after.seq, after.data) == (4, "after")


def test_the_blocking_client_reports_the_payload_and_keeps_the_rest_of_the_batch() -> None:
    with zerorelay.sync.Server(CONFIG) as server:
        errors: list[zerorelay.Event] = []
        with zerorelay.sync.connect(server.url, user="bob", on={"error": errors.append}) as bob:
            send_raw(server.url, "bob", ["1", DEEP, "3"])
            got = [bob.recv(timeout=5), bob.recv(timeout=5)]
            assert [(m.seq, m.data) for m in got if m is not None] == [(1, 1), (3, 3)]
            assert [(e.code, e.seq) for e in errors] == [("undecodable", 2)]

            assert bob.status == "connected"
            bob.join("g")
            bob.publish("g", "after", echo=True)
            after = bob.recv(timeout=5)
            assert after is not None and (after.seq, after.data) == (4, "after")
