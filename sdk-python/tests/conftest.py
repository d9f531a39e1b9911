"""Shared fixtures: a real embedded relay on 127.0.0.1:0 and helpers."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable
from typing import Any, Callable, Optional, TypeVar

import pytest

import zerorelay

T = TypeVar("T")

FAST_RECONNECT = {"base_ms": 20, "cap_ms": 100}


@pytest.fixture
async def server() -> AsyncIterator[zerorelay.Server]:
    # Client broadcast is off by default; the suite exercises it.
    async with zerorelay.Server({"features": {"client_broadcast": True}}) as s:
        yield s


async def eventually(
    check: Callable[[], Any], timeout: float = 5.0, what: str = "condition"
) -> Any:
    """Polls `check` until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        v = check()
        if v:
            return v
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def recv_n(client: zerorelay.Client, n: int, timeout: float = 5.0) -> list[Any]:
    """The data of the next `n` messages."""
    out = []
    for _ in range(n):
        m = await client.recv(timeout=timeout)
        out.append(m.data)
    return out


async def assert_no_message(client: zerorelay.Client, wait: float = 0.3) -> None:
    with pytest.raises(asyncio.TimeoutError):
        m = await client.recv(timeout=wait)
        raise AssertionError(f"unexpected message {m!r}")


def free_port() -> int:
    """A port nothing listens on (for 'server unreachable' tests)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def with_timeout(aw: Awaitable[T], timeout: float = 5.0) -> T:
    return await asyncio.wait_for(aw, timeout)


def session_of(server: zerorelay.Server, user: str) -> Optional[str]:
    for s in server.sessions():
        if s.user == user:
            return s.id
    return None


class Proxy:
    """Forwards loopback TCP connections to the relay; `set_down(True)` cuts
    the open ones and refuses new ones until `set_down(False)`."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.rsplit(":", 1)
        self._upstream = (host, int(port))
        self._down = False
        self._open: set[asyncio.StreamWriter] = set()
        self._server: Optional[asyncio.AbstractServer] = None
        self.url = ""

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"ws://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/ws"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._down:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            writer.transport.abort()
            return
        self._open.update((writer, up_writer))

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()
            except OSError:
                pass
            finally:
                for x in (writer, up_writer):
                    x.transport.abort()
                    self._open.discard(x)

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def set_down(self, down: bool) -> None:
        self._down = down
        if down:
            for w in list(self._open):
                w.transport.abort()
            self._open.clear()

    def close(self) -> None:
        self.set_down(True)
        if self._server is not None:
            self._server.close()
