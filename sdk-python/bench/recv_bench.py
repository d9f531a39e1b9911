"""Receive rate: messages per second through the SDK (asyncio and blocking
APIs) against the `websockets` package reading the same stream.

A relay runs in a separate process (an embedded `zerorelay.Server`, so the
producer never competes with the reader for the GIL). Each reader connects,
joins `bench`, and calls the rpc method `bench.start`, whose handler
publishes N small messages to the group. Every reader does the same protocol
work: `hello`, `join`, decode each message's JSON, acknowledge every 256
messages (the SDK's engine does the last three itself). The rate is N over
the time from the `bench.start` call to the last message.

    python recv_bench.py [--messages 200000] [--runs 3]

(`scripts/bench.sh` builds a release wheel into its own venv and runs this.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import statistics
import threading
import time
from typing import Any

import websockets

import zerorelay
import zerorelay.sync

GROUP = "bench"
PRODUCER: list[float] = []  # the relay's publish rate, seen by the async reader
PAYLOAD = {"text": "hello, relay", "n": 12345, "ok": True}

SERVER_CONFIG = {
    # Hold the whole stream for a slow reader instead of dropping it.
    "session": {"outbox_messages": 2_000_000, "outbox_bytes": 1 << 30},
    "limits": {"slow_consumer_bytes": 1 << 40},
}


def serve(addr_out: Any, stop: Any) -> None:
    """The relay process: publishes N messages when a reader asks."""
    server: zerorelay.sync.Server

    def start(ctx: zerorelay.RpcContext, arg: dict[str, int]) -> float:
        # The payload is encoded once (the native call under
        # Server.publish), so that the producer outpaces every reader.
        native, text = server._n, json.dumps(PAYLOAD)
        t = time.perf_counter()
        for _ in range(arg["n"]):
            native.publish(GROUP, text)
        return time.perf_counter() - t

    server = zerorelay.sync.Server.start(SERVER_CONFIG, rpc={"bench.start": start})
    addr_out.send(server.url)
    stop.wait()
    server.close()


async def sdk_async(url: str, n: int) -> float:
    async with zerorelay.connect(url, user="sdk-async") as c:
        await c.join(GROUP)
        t0 = time.perf_counter()
        producer = asyncio.ensure_future(c.rpc("bench.start", {"n": n}))
        count = 0
        async for m in c:
            _ = m.data
            count += 1
            if count == n:
                break
        t1 = time.perf_counter()
        PRODUCER.append(n / await producer)
    return t1 - t0


def sdk_sync(url: str, n: int) -> float:
    with zerorelay.sync.connect(url, user="sdk-sync") as c:
        c.join(GROUP)
        t0 = time.perf_counter()
        # The rpc blocks until every message is published: run it aside.
        producer = threading.Thread(target=c.rpc, args=("bench.start", {"n": n}))
        producer.start()
        count = 0
        for m in c:
            _ = m.data
            count += 1
            if count == n:
                break
        t1 = time.perf_counter()
        producer.join()
    return t1 - t0


async def ws_baseline(url: str, n: int) -> float:
    async with websockets.connect(url, compression=None, max_size=None) as ws:
        await ws.send(json.dumps({"type": "hello", "v": 1, "user": "websockets"}))
        welcome = json.loads(await ws.recv())
        assert welcome["type"] == "welcome", welcome
        await ws.send(json.dumps({"type": "join", "id": 1, "group": GROUP}))
        while json.loads(await ws.recv()).get("id") != 1:
            pass
        t0 = time.perf_counter()
        await ws.send(
            json.dumps({"type": "rpc", "id": 2, "method": "bench.start", "data": {"n": n}})
        )
        count = 0
        async for raw in ws:
            d = json.loads(raw)
            if d["type"] != "message":
                continue
            _ = d["data"]
            count += 1
            if count % 256 == 0:
                await ws.send(json.dumps({"type": "ack", "seq": d["seq"]}))
            if count == n:
                await ws.send(json.dumps({"type": "ack", "seq": d["seq"]}))
                break
        t1 = time.perf_counter()
    return t1 - t0


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--messages", type=int, default=200_000)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    n = args.messages

    ctx = mp.get_context("spawn")
    addr_in, addr_out = ctx.Pipe(duplex=False)
    stop = ctx.Event()
    proc = ctx.Process(target=serve, args=(addr_out, stop), daemon=True)
    proc.start()
    url = addr_in.recv()

    readers = {
        "zerorelay (asyncio)": lambda: asyncio.run(sdk_async(url, n)),
        "zerorelay.sync": lambda: sdk_sync(url, n),
        f"websockets {websockets.__version__}": lambda: asyncio.run(ws_baseline(url, n)),
    }
    results: dict[str, list[float]] = {name: [] for name in readers}
    try:
        for run in range(args.runs):
            # Interleaved, so that drift affects every reader alike.
            for name, read in readers.items():
                secs = read()
                results[name].append(n / secs)
                print(f"run {run + 1}: {name:<22} {n / secs:>10,.0f} msg/s", flush=True)
    finally:
        stop.set()
        proc.join(10)

    print()
    if PRODUCER:
        print(
            f"producer (host publish loop in the relay process): "
            f"{statistics.median(PRODUCER):,.0f} msg/s median"
        )
    print(f"{n:,} messages of {len(json.dumps(PAYLOAD))}-byte payloads, {args.runs} runs")
    header = f"| {'reader':<22} | " + " | ".join(f"run {i + 1:<6}" for i in range(args.runs))
    print(header + " | median     |")
    print("|" + "-" * 24 + "|" + "------------|" * (args.runs + 1))
    for name, rates in results.items():
        cells = " | ".join(f"{r:>10,.0f}" for r in rates)
        print(f"| {name:<22} | {cells} | {statistics.median(rates):>10,.0f} |")


if __name__ == "__main__":
    main()
