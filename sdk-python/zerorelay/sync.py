"""The blocking API, for scripts: ``zerorelay.sync.connect(...)``.

No event loop is involved: each call blocks in Rust with the GIL released
(Ctrl-C still interrupts it). Lifecycle callbacks registered with `on()` run
in the thread that reads messages (`recv()` or iteration).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any, Callable, Optional, TypeVar, Union, overload

from . import _common, _native
from ._common import EventCallback, TokenProvider, dumps, flag, text
from ._types import Event, Message, Presence
from .errors import Closed, ConnectionFailed
from .server import Server as _AsyncServer

__all__ = ["Client", "Server", "connect"]

_F = TypeVar("_F", bound=EventCallback)


class Client:
    """A blocking client. Made by `connect()`; the same behaviour as the
    asyncio `zerorelay.Client` (reconnect, resume, offline queue)."""

    _is_server = False

    def __init__(
        self, native: _native.Client, on: Optional[Mapping[str, EventCallback]] = None
    ) -> None:
        self._native = native
        self._messages: list[Message] = []
        self._pos = 0
        self._ended = False
        self._lock = threading.Lock()
        self._dispatcher = _common.Dispatcher(None)
        for event_type, fn in (on or {}).items():
            self._dispatcher.add(event_type, fn)
        self._connected = False
        self._refused: Optional[Event] = None
        _common.track(self)

    # --- requests ---------------------------------------------------------

    def join(self, group: str, *, presence: bool = False) -> None:
        """Joins a group (with `presence`, also tells who joins and leaves)."""
        self._native.join_blocking(text(group, "group"), bool(presence))

    def presence(self, group: str) -> Presence:
        """Who is in a group: its users with their session counts."""
        answer = self._native.presence_blocking(text(group, "group"))
        return Presence.from_json(json.loads(answer or "{}"))

    def leave(self, group: str) -> None:
        """Leaves a group."""
        self._native.leave_blocking(text(group, "group"))

    def publish(self, group: str, data: Any, *, echo: bool = False, resend: bool = False) -> None:
        """Publishes `data` to a group's members (`resend`: re-sent after a
        lost session instead of failing with `UnknownOutcome`; see
        `zerorelay.Client.publish`)."""
        self._native.publish_blocking(
            text(group, "group"), dumps(data), flag(echo, "echo"), flag(resend, "resend")
        )

    def send(
        self,
        data: Any = None,
        *,
        to: Optional[str] = None,
        session: Optional[str] = None,
        resend: bool = False,
    ) -> None:
        """Sends `data` to every session of user `to`, or to one `session`
        (`resend`: see `publish`)."""
        to_user, name = _common.send_target(to, session)
        if to_user:
            self._native.send_to_user_blocking(name, dumps(data), flag(resend, "resend"))
        else:
            self._native.send_to_session_blocking(name, dumps(data), flag(resend, "resend"))

    def broadcast(self, data: Any, *, echo: bool = False, resend: bool = False) -> None:
        """Sends `data` to every session on the server (`resend`: see
        `publish`)."""
        self._native.broadcast_blocking(dumps(data), flag(echo, "echo"), flag(resend, "resend"))

    def rpc(self, method: str, data: Any = None, *, resend: bool = False) -> Any:
        """Calls a host method; returns its decoded result (`resend`: see
        `publish`)."""
        result = self._native.rpc_blocking(
            text(method, "method"), dumps(data), flag(resend, "resend")
        )
        return None if result is None else json.loads(result)

    # --- messages and events ----------------------------------------------

    def _fill(self, timeout: Optional[float]) -> bool:
        """Pulls one batch (waiting up to `timeout` seconds; ``None``: for
        ever); False once the client is closed and drained."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._ended:
                return False
            wait = 1.0 if deadline is None else max(0.0, deadline - time.monotonic())
            text = self._native.next_batch_blocking(_common.BATCH, int(wait * 1000))
            if text is None:
                self._ended = True
                _common.untrack(self)
                return False
            messages, events = _common.split_batch(text)
            for e in events:
                self._on_event(e)
            if messages:
                self._messages = messages
                self._pos = 0
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return True

    def _on_event(self, e: Event) -> None:
        if e.type == "connected":
            self._connected = True
        elif e.type == "closed" and not self._connected:
            self._refused = e
        self._dispatcher.dispatch(e)

    def recv(self, timeout: Optional[float] = None) -> Optional[Message]:
        """The next message, waiting up to `timeout` seconds (``None``: until
        one comes); ``None`` on timeout. `Closed` once the client is closed
        and every message was read."""
        with self._lock:
            deadline = None if timeout is None else time.monotonic() + timeout
            while self._pos >= len(self._messages):
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                if not self._fill(left):
                    raise Closed("the client is closed", "closed")
            m = self._messages[self._pos]
            self._pos += 1
            return m

    def __iter__(self) -> Iterator[Message]:
        """Messages until the client is closed (a batch at a time)."""
        while True:
            with self._lock:
                if self._pos >= len(self._messages) and not self._fill(None):
                    return
                batch = self._messages[self._pos :]
                self._pos = len(self._messages)
            yield from batch

    @overload
    def on(self, event_type: str) -> Callable[[_F], _F]: ...
    @overload
    def on(self, event_type: str, callback: _F) -> _F: ...
    def on(self, event_type: str, callback: Optional[_F] = None) -> Any:
        """Registers a lifecycle callback (see `zerorelay.Client.on`); it runs
        in the thread that reads messages."""
        if callback is None:

            def deco(fn: _F) -> _F:
                self._dispatcher.add(event_type, fn)
                return fn

            return deco
        self._dispatcher.add(event_type, callback)
        return callback

    def _wait_connected(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._lock:
            while not self._connected:
                if self._refused is not None:
                    self.close()
                    raise _common.not_connected(self._refused)
                left = deadline - time.monotonic()
                if left <= 0:
                    self.close()
                    raise ConnectionFailed(
                        f"not connected within connect_timeout ({timeout} s)", "connection"
                    )
                text = self._native.next_batch_blocking(_common.BATCH, int(left * 1000) + 1)
                if text is None:
                    self._ended = True
                    raise _common.not_connected(self._refused or Event("closed", reason="closed"))
                messages, events = _common.split_batch(text)
                for e in events:
                    self._on_event(e)
                self._messages.extend(messages)

    # --- state ------------------------------------------------------------

    @property
    def status(self) -> str:
        """``"connecting"``, ``"connected"`` or ``"closed"``."""
        return self._native.status()[0]

    @property
    def session(self) -> Optional[str]:
        """The current session id while connected."""
        state, detail = self._native.status()
        return detail if state == "connected" else None

    def close(self, timeout: float = 5.0) -> None:
        """Closes cleanly (the session ends on the server)."""
        _common.untrack(self)
        self._native.close_blocking(_common.ms(timeout, "timeout"))

    def _close_at_exit(self, timeout_ms: int) -> None:
        self._native.close_blocking(timeout_ms)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state, detail = self._native.status()
        return f"<zerorelay.sync.Client {state}{' ' + detail if detail else ''}>"


def connect(
    url: str,
    *,
    token: Optional[str] = None,
    user: Optional[str] = None,
    token_provider: Optional[Callable[[], _common.TokenResult]] = None,
    headers: Optional[Mapping[str, str]] = None,
    reconnect: Union[bool, Mapping[str, Any]] = True,
    offline_queue: Union[int, Mapping[str, Any], None] = None,
    request_timeout: float = 10.0,
    connect_timeout: float = 10.0,
    ca_file: Optional[str] = None,
    persist_path: Optional[str] = None,
    wait: bool = True,
    on: Optional[Mapping[str, EventCallback]] = None,
    options: Optional[Mapping[str, Any]] = None,
) -> Client:
    """Connects, blocking until the server's welcome (unless ``wait=False``).
    Arguments as for `zerorelay.connect`. Use as ``with zerorelay.sync.connect(url) as c:``."""
    opts = _common.client_options(
        token=token,
        user=user,
        headers=headers,
        reconnect=reconnect,
        offline_queue=offline_queue,
        request_timeout=request_timeout,
        connect_timeout=connect_timeout,
        ca_file=ca_file,
        persist_path=persist_path,
        options=options,
    )
    provider: Optional[TokenProvider] = token_provider
    tokens = _common.wrap_token_provider(provider, None)
    client = Client(_native.Client.start(url, opts, _common.CLIENT_NAME, tokens), on)
    if wait:
        client._wait_connected(connect_timeout)
    return client


class Server(_AsyncServer):
    """`zerorelay.Server` whose `close()` blocks (no event loop needed)."""

    def close(self) -> None:  # type: ignore[override]
        """Graceful shutdown, blocking."""
        self.close_blocking()
