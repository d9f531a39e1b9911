"""One relay, a client in each language: each sees the others' group and
direct messages exactly once, in each sender's order (see README.md)."""

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import zerorelay

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
N = 50


def commands(url: str, name: str, others: str) -> list[str]:
    args = [url, name, others, str(N)]
    return {
        "rust": [str(TARGET / "debug" / "examples" / "interop_peer"), *args],
        "go": [str(TARGET / "interop-go-peer"), *args],
        "node": ["node", str(HERE / "peer.mjs"), *args],
        "python": [sys.executable, str(HERE / "peer.py"), *args],
    }[name]


@pytest.fixture
def server() -> Iterator[zerorelay.sync.Server]:
    with zerorelay.sync.Server({"server": {"listen": "127.0.0.1:0"}}) as s:
        yield s


def test_every_language_sees_every_other_exactly_once_in_order(
    server: zerorelay.sync.Server,
) -> None:
    names = ["rust", "go", "node", "python"]
    peers = {}
    try:
        for name in names:
            others = ",".join(n for n in names if n != name)
            peers[name] = subprocess.Popen(
                commands(server.url, name, others),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        for name, p in peers.items():
            assert p.stdout is not None
            line = p.stdout.readline().strip()
            assert line == "ready", f"{name}: {line!r} {p.stderr.read() if p.stderr else ''}"
        for p in peers.values():
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        reports = {}
        started = time.monotonic()
        for name, p in peers.items():
            out, err = p.communicate(timeout=60)
            print(f"{name} finished after {time.monotonic() - started:.1f} s")
            assert p.returncode == 0, f"{name} exited {p.returncode}: {err}"
            reports[name] = json.loads(out.strip().splitlines()[-1])
    finally:
        for p in peers.values():
            if p.poll() is None:
                p.kill()
                p.wait()

    for name, report in reports.items():
        assert report["name"] == name
        want = {
            f"{o}:{kind}": list(range(N))
            for o in names
            if o != name
            for kind in ("group", "direct")
        }
        assert report["got"] == want, f"{name} received {report['got']}"
    assert server.stats().dropped == 0
