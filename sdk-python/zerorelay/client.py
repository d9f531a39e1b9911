"""The asyncio client: `connect()` and `Client`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Generator, Mapping
from types import TracebackType
from typing import Any, Callable, Optional, TypeVar, Union, overload

from . import _common, _native
from ._common import EventCallback, TokenProvider, dumps, flag, text
from ._types import Event, Message, Presence
from .errors import Closed, ConnectionFailed

__all__ = ["Client", "connect"]

_F = TypeVar("_F", bound=EventCallback)


class Client:
    """A connection to a relay that reconnects, resumes and queues by itself.

    Made by `connect()`. Requests (`join`, `publish`, ...) return when the
    server answered; while disconnected they wait in the offline queue.
    ``async for msg in client`` yields each message exactly once, in order,
    until the client is closed. Lifecycle events go to callbacks registered
    with `on()` and to the `events()` iterator.
    """

    _is_server = False

    def __init__(
        self,
        native: _native.Client,
        loop: asyncio.AbstractEventLoop,
        message_buffer: int,
        on: Optional[Mapping[str, EventCallback]] = None,
    ) -> None:
        self._native = native
        self._loop = loop
        # Batches of messages (one crossing each), bounded: a full buffer
        # stops the pump, which lets the engine apply backpressure.
        self._batches: asyncio.Queue[Optional[list[Message]]] = asyncio.Queue(
            maxsize=max(1, message_buffer)
        )
        self._current: list[Message] = []
        self._pos = 0
        self._ended = False
        self._events: asyncio.Queue[Optional[Event]] = asyncio.Queue(maxsize=1024)
        self._dispatcher = _common.Dispatcher(loop)
        for event_type, fn in (on or {}).items():
            self._dispatcher.add(event_type, fn)
        self._closing = False
        self._welcome: asyncio.Future[None] = loop.create_future()
        self._welcome.add_done_callback(_retrieve)
        self._pump_task = loop.create_task(self._pump())
        _common.track(self)

    # --- requests ---------------------------------------------------------

    async def join(self, group: str, *, presence: bool = False) -> None:
        """Joins a group (re-joined automatically if the session is lost).
        With `presence`, ``presence_change`` and ``presence_summary`` events
        tell who joins and leaves it."""
        await self._native.join(text(group, "group"), bool(presence))

    async def presence(self, group: str) -> Presence:
        """Who is in a group: its users with their session counts."""
        answer = await self._native.presence(text(group, "group"))
        return Presence.from_json(json.loads(answer or "{}"))

    async def leave(self, group: str) -> None:
        """Leaves a group."""
        await self._native.leave(text(group, "group"))

    async def publish(
        self, group: str, data: Any, *, echo: bool = False, resend: bool = False
    ) -> None:
        """Publishes `data` (any JSON-serializable value) to a group's members
        (to this session too when `echo` and it is a member).

        If the relay loses the session after the request may have been
        routed, it fails with `UnknownOutcome` (it may or may not have been
        delivered); with `resend=True` it is sent again in the new session
        instead, for requests that are idempotent or whose duplicate is
        acceptable. `send`, `broadcast` and `rpc` take `resend` too."""
        await self._native.publish(
            text(group, "group"), dumps(data), flag(echo, "echo"), flag(resend, "resend")
        )

    async def send(
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
            await self._native.send_to_user(name, dumps(data), flag(resend, "resend"))
        else:
            await self._native.send_to_session(name, dumps(data), flag(resend, "resend"))

    async def broadcast(self, data: Any, *, echo: bool = False, resend: bool = False) -> None:
        """Sends `data` to every session on the server (`resend`: see
        `publish`)."""
        await self._native.broadcast(dumps(data), flag(echo, "echo"), flag(resend, "resend"))

    async def rpc(self, method: str, data: Any = None, *, resend: bool = False) -> Any:
        """Calls a method the host registered; returns its decoded result
        (`resend`: see `publish`; the handler may then see the call twice)."""
        result = await self._native.rpc(text(method, "method"), dumps(data), flag(resend, "resend"))
        return None if result is None else json.loads(result)

    # --- messages ---------------------------------------------------------

    async def _pump(self) -> None:
        native = self._native
        try:
            while True:
                text = native.try_batch(_common.BATCH)
                if text is None:
                    text = await native.next_batch(_common.BATCH)
                    if text is None:
                        break
                messages, events = _common.split_batch(text)
                for e in events:
                    self._on_event(e)
                if messages:
                    await self._batches.put(messages)
        except asyncio.CancelledError:
            pass
        except Exception:
            _common.log.exception("The zerorelay client's event pump failed.")
        finally:
            self._ended = True
            _common.untrack(self)
            if not self._welcome.done():
                self._welcome.set_exception(Closed("the client is closed", "closed"))
            for q in (self._batches, self._events):
                try:
                    q.put_nowait(None)
                except asyncio.QueueFull:
                    pass

    def _on_event(self, e: Event) -> None:
        if not self._welcome.done():
            if e.type == "connected":
                self._welcome.set_result(None)
            elif e.type == "closed":
                self._welcome.set_exception(_common.not_connected(e))
        self._dispatcher.dispatch(e)
        try:
            self._events.put_nowait(e)
        except asyncio.QueueFull:
            _common.log.debug("The zerorelay event queue is full; dropped a %s event.", e.type)

    def __aiter__(self) -> Client:
        return self

    async def __anext__(self) -> Message:
        pos = self._pos
        if pos < len(self._current):
            self._pos = pos + 1
            return self._current[pos]
        batch = await self._next_batch()
        if batch is None:
            raise StopAsyncIteration
        self._current = batch
        self._pos = 1
        return batch[0]

    async def _next_batch(self) -> Optional[list[Message]]:
        q = self._batches
        if q.empty() and self._ended and self._pump_task.done():
            return None
        batch = await q.get()
        if batch is None:
            # Leave the end marker for any other reader.
            try:
                q.put_nowait(None)
            except asyncio.QueueFull:
                pass
        return batch

    async def recv(self, timeout: Optional[float] = None) -> Message:
        """The next message; `Closed` once the client is closed and every
        message was read; `asyncio.TimeoutError` after `timeout` seconds."""
        try:
            if timeout is None:
                return await self.__anext__()
            return await asyncio.wait_for(self.__anext__(), timeout)
        except StopAsyncIteration:
            raise Closed("the client is closed", "closed") from None

    async def _wait_connected(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(asyncio.shield(self._welcome), timeout)
        except asyncio.TimeoutError:
            await self.close()
            raise ConnectionFailed(
                f"not connected within connect_timeout ({timeout} s)", "connection"
            ) from None
        except BaseException:
            await self.close()
            raise

    # --- events -----------------------------------------------------------

    @overload
    def on(self, event_type: str) -> Callable[[_F], _F]: ...
    @overload
    def on(self, event_type: str, callback: _F) -> _F: ...
    def on(self, event_type: str, callback: Optional[_F] = None) -> Any:
        """Registers `callback` for lifecycle events of `event_type`
        (``connected``, ``disconnected``, ``reconnecting``, ``loss``,
        ``error``, ``rejoined``, ``closed``, or ``*`` for all). Usable as a
        decorator: ``@client.on("disconnected")``."""
        if callback is None:

            def deco(fn: _F) -> _F:
                self._dispatcher.add(event_type, fn)
                return fn

            return deco
        self._dispatcher.add(event_type, callback)
        return callback

    async def events(self) -> AsyncIterator[Event]:
        """Lifecycle events, in order, until the client is closed (a
        best-effort feed: at most 1024 wait; later ones are dropped)."""
        while True:
            e = await self._events.get()
            if e is None:
                self._events.put_nowait(None)
                return
            yield e

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

    @property
    def closed(self) -> bool:
        """Whether the client is closed."""
        return self._closing or self._native.status()[0] == "closed"

    async def close(self) -> None:
        """Closes cleanly: the session ends on the server, queued requests
        fail with `Closed`, and iteration ends once buffered messages are read."""
        self._closing = True
        _common.untrack(self)
        await self._native.close()
        # Let the pump hand over the last events; when the buffer is full
        # (nobody reads), it would wait for ever: stop it. What is buffered
        # stays readable.
        for _ in range(100):
            if self._pump_task.done():
                return
            if self._batches.full():
                break
            await asyncio.wait({self._pump_task}, timeout=0.05)
        self._pump_task.cancel()

    def _close_at_exit(self, timeout_ms: int) -> None:
        self._native.close_blocking(timeout_ms)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        state, detail = self._native.status()
        return f"<zerorelay.Client {state}{' ' + detail if detail else ''}>"


def _retrieve(f: asyncio.Future[None]) -> None:
    # Nobody may wait for the welcome (wait=False): mark its error seen.
    if not f.cancelled():
        f.exception()


class _Connecting:
    """What `connect()` returns: awaitable (``client = await connect(...)``)
    and an async context manager (``async with connect(...) as client``)."""

    def __init__(self, make: Callable[[], Awaitable[Client]]) -> None:
        self._make = make
        self._client: Optional[Client] = None

    def __await__(self) -> Generator[Any, None, Client]:
        return self._make().__await__()

    async def __aenter__(self) -> Client:
        self._client = await self._make()
        return self._client

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        if self._client is not None:
            await self._client.close()


def connect(
    url: str,
    *,
    token: Optional[str] = None,
    user: Optional[str] = None,
    token_provider: Optional[TokenProvider] = None,
    headers: Optional[Mapping[str, str]] = None,
    reconnect: Union[bool, Mapping[str, Any]] = True,
    offline_queue: Union[int, Mapping[str, Any], None] = None,
    request_timeout: float = 10.0,
    connect_timeout: float = 10.0,
    ca_file: Optional[str] = None,
    persist_path: Optional[str] = None,
    wait: bool = True,
    on: Optional[Mapping[str, EventCallback]] = None,
    message_buffer: int = 16,
    options: Optional[Mapping[str, Any]] = None,
) -> _Connecting:
    """Connects to a relay (``ws://`` or ``wss://``, path ``/ws``).

    - `token` / `user`: sent in ``hello`` (`user` is honoured by servers in
      development mode only); `token_provider` (sync or async, returning a
      token or ``(token, valid_seconds)``) is asked before every connection
      attempt, before the expiry it gave, and when the relay asks for fresh
      credentials (``refresh_required``, ahead of the token's expiry).
    - `ca_file`: a PEM file of extra CA certificates trusted for ``wss://``.
    - `reconnect`: ``True``/``False`` or the engine's reconnect options
      (``{"base_ms": 250, "cap_ms": 30000, "max_attempts": None}``).
    - `offline_queue`: how many requests may wait while disconnected, or
      ``{"max_messages": n, "max_bytes": b, "full": "fail_fast" | "drop_oldest"}``.
    - `wait`: wait for the server's welcome (else return at once; requests
      wait in the offline queue until connected).
    - `on`: lifecycle callbacks by event type, registered before the client
      starts (so that they see the first ``connected``); see `Client.on`.
    - `message_buffer`: batches of received messages held for the reader.
    - `options`: any other engine option, by its engine name.

    Errors: `InvalidArgument` (a bad option; the message names it),
    `ConnectionFailed`, `Unauthorized`, ...
    """
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

    async def make() -> Client:
        loop = asyncio.get_running_loop()
        tokens = _common.wrap_token_provider(token_provider, loop)
        native = _native.Client.start(url, opts, _common.CLIENT_NAME, tokens)
        client = Client(native, loop, message_buffer, on)
        if wait:
            await client._wait_connected(connect_timeout)
        return client

    return _Connecting(make)
