"""What the async and blocking clients share: options, JSON, argument
checks, callbacks, and closing everything at interpreter exit. Requests are
the native client's typed methods: how they look on the wire is the
engine's business."""

from __future__ import annotations

import asyncio
import atexit
import inspect
import json
import logging
import threading
import time
import weakref
from collections.abc import Awaitable, Mapping
from typing import Any, Callable, Optional, Protocol, TypeVar, Union

from . import _native
from ._types import Event, Message
from .errors import ERRORS_BY_CODE, InvalidArgument, ZerorelayError, error_for

log = logging.getLogger("zerorelay")

VERSION = _native.__version__
CLIENT_NAME = f"zerorelay-python/{VERSION}"

BATCH = 512
"""Events taken per crossing of the native boundary."""

_native.register_errors(dict(ERRORS_BY_CODE), ZerorelayError)

T = TypeVar("T")

TokenResult = Union[str, tuple[str, Optional[float]]]
"""A token, or a token and how many seconds it stays valid (``None``: no expiry)."""

TokenProvider = Callable[[], Union[TokenResult, Awaitable[TokenResult]]]
"""Asked for a fresh token before every connection attempt, before the
expiry it gave, and when the relay sends ``refresh_required``."""

EventCallback = Callable[[Event], Optional[Awaitable[None]]]


def dumps(value: Any) -> str:
    """JSON text of a payload or options; a value JSON cannot represent is
    an `InvalidArgument` that names the problem."""
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as e:
        raise InvalidArgument(f"data is not JSON-serializable: {e}") from e


def ms(seconds: float, what: str) -> int:
    if seconds <= 0:
        raise InvalidArgument(f"{what} must be > 0 seconds, got {seconds!r}")
    return max(1, round(seconds * 1000))


def client_options(
    *,
    token: Optional[str],
    user: Optional[str],
    headers: Optional[Mapping[str, str]],
    reconnect: Union[bool, Mapping[str, Any]],
    offline_queue: Union[int, Mapping[str, Any], None],
    request_timeout: float,
    connect_timeout: float,
    ca_file: Optional[str],
    persist_path: Optional[str],
    options: Optional[Mapping[str, Any]],
) -> str:
    """The engine's options as JSON (keys as in the engine; unknown keys are
    refused by the engine with a message naming them)."""
    o: dict[str, Any] = {
        "request_timeout_ms": ms(request_timeout, "request_timeout"),
        "connect_timeout_ms": ms(connect_timeout, "connect_timeout"),
    }
    if token is not None:
        o["token"] = token
    if user is not None:
        o["user"] = user
    if headers:
        o["headers"] = dict(headers)
    if isinstance(reconnect, bool):
        o["reconnect"] = {"enabled": reconnect}
    else:
        o["reconnect"] = dict(reconnect)
    if isinstance(offline_queue, int):
        o["queue"] = {"max_messages": offline_queue}
    elif offline_queue is not None:
        o["queue"] = dict(offline_queue)
    if ca_file is not None:
        o["ca_file"] = ca_file
    if persist_path is not None:
        o["persist_path"] = persist_path
    if options:
        o.update(options)
    return dumps(o)


def text(value: object, what: str) -> str:
    """A name argument (group, user, session, method): another type is an
    `InvalidArgument`, like a bad name (the engine checks the names)."""
    if not isinstance(value, str):
        raise InvalidArgument(f"`{what}` must be a string")
    return value


def flag(value: object, what: str) -> bool:
    """A true-or-false argument (`echo`, `resend`): another type is an
    `InvalidArgument`."""
    if not isinstance(value, bool):
        raise InvalidArgument(f"`{what}` must be true or false")
    return value


def send_target(to: Optional[str], session: Optional[str]) -> tuple[bool, str]:
    """``(to_user, name)`` for `send`, which takes exactly one of `to` (a
    user) and `session`."""
    if (to is None) == (session is None):
        raise InvalidArgument("send needs exactly one of to= (a user) or session=")
    if to is not None:
        return True, text(to, "to")
    return False, text(session, "session")


def _decode_each(text: str) -> list[Union[dict[str, Any], Event]]:
    """A batch decoded event by event (the engine splits it, decoding no
    payload): a message whose payload `json` cannot decode (nested too deep,
    an integer with too many digits) becomes an ``undecodable`` error event
    with its seq, in its place."""
    out: list[Union[dict[str, Any], Event]] = []
    for kind, seq, element in _native.split_events(text):
        try:
            out.append(json.loads(element))
        except (RecursionError, ValueError) as e:
            if kind != "message" or seq is None:
                log.error("The zerorelay client could not decode a %s event: %s", kind, e)
                continue
            message = f"message {seq} could not be decoded: {e}"
            out.append(Event(type="error", code="undecodable", seq=seq, message=message))
    return out


def split_batch(text: str) -> tuple[list[Message], list[Event]]:
    """Decodes one crossing's JSON array into messages and events."""
    messages: list[Message] = []
    events: list[Event] = []
    mk = Message._from_frame
    try:
        decoded = json.loads(text)
    except (RecursionError, ValueError):
        # One payload is beyond `json`: the others must still get through.
        decoded = _decode_each(text)
    for d in decoded:
        if isinstance(d, Event):
            events.append(d)
        elif d["type"] == "message":
            messages.append(mk(d))
        else:
            events.append(Event._from_frame(d))
    return messages, events


def not_connected(closed: Event) -> ZerorelayError:
    """Why a client closed before its first welcome: the relay's refusal
    (`Unauthorized`, ...), the code the engine put on the ``closed`` event,
    else `ConnectionFailed`."""
    if closed.code:
        return error_for(closed.code, closed.reason or "")
    return error_for("connection", closed.reason or "the client closed before connecting")


def run_awaitable(aw: Awaitable[T], loop: Optional[asyncio.AbstractEventLoop]) -> T:
    """Runs an awaitable from a non-asyncio thread: on `loop` when it is
    running, else on a fresh loop in this thread."""

    async def wrap() -> T:
        return await aw

    if loop is not None and loop.is_running():
        return asyncio.run_coroutine_threadsafe(wrap(), loop).result()
    return asyncio.run(wrap())


def wrap_token_provider(
    provider: Optional[TokenProvider], loop: Optional[asyncio.AbstractEventLoop]
) -> Optional[Callable[[], tuple[str, Optional[int]]]]:
    """The provider as the native side calls it (in a worker thread):
    returns ``(token, valid_ms or None)``."""
    if provider is None:
        return None

    def call() -> tuple[str, Optional[int]]:
        r = provider()
        if inspect.isawaitable(r):
            r = run_awaitable(r, loop)
        if isinstance(r, str):
            return (r, None)
        token, valid = r
        return (token, None if valid is None else max(1, round(valid * 1000)))

    return call


class Dispatcher:
    """Lifecycle event callbacks, registered with `on(type, fn)`; ``"*"``
    receives every event. A callback may be a coroutine function (it is then
    scheduled on the client's loop). A callback that raises is logged."""

    def __init__(self, loop: Optional[asyncio.AbstractEventLoop]) -> None:
        self._loop = loop
        self._callbacks: dict[str, list[EventCallback]] = {}
        self._tasks: set[asyncio.Future[Any]] = set()

    def add(self, event_type: str, fn: EventCallback) -> None:
        from ._types import EVENT_TYPES

        if event_type != "*" and event_type not in EVENT_TYPES:
            raise InvalidArgument(
                f"unknown event type {event_type!r}; expected one of {', '.join(EVENT_TYPES)} or *"
            )
        self._callbacks.setdefault(event_type, []).append(fn)

    def dispatch(self, e: Event) -> None:
        for fn in (*self._callbacks.get(e.type, ()), *self._callbacks.get("*", ())):
            try:
                r = fn(e)
                if r is not None and inspect.isawaitable(r):
                    if self._loop is None:
                        run_awaitable(r, None)
                    else:
                        t = asyncio.ensure_future(r, loop=self._loop)
                        self._tasks.add(t)
                        t.add_done_callback(self._done)
            except Exception:
                log.exception("A zerorelay %s event callback raised an exception.", e.type)

    def _done(self, t: asyncio.Future[Any]) -> None:
        self._tasks.discard(t)
        if not t.cancelled() and t.exception() is not None:
            log.error("A zerorelay event callback raised an exception.", exc_info=t.exception())


class _Closable(Protocol):
    def _close_at_exit(self, timeout_ms: int) -> None: ...


_open: weakref.WeakSet[Any] = weakref.WeakSet()
_open_lock = threading.Lock()

EXIT_CLOSE_SECONDS = 2.0
"""How long interpreter exit waits, at most, for the clients still open to
close (all of them together)."""


def track(obj: _Closable) -> None:
    with _open_lock:
        _open.add(obj)


def untrack(obj: _Closable) -> None:
    with _open_lock:
        _open.discard(obj)


@atexit.register
def _close_everything() -> None:
    """At interpreter exit, close what is still open, then keep Rust threads
    away from the exiting interpreter.

    Clients first, so that their sessions end cleanly, on an embedded server
    of this process too; together they wait at most `EXIT_CLOSE_SECONDS`.
    Then servers, stopped at once: a server still open at exit does not
    drain (that is `close()`), its remaining connections end with the
    process."""
    with _open_lock:
        objs = list(_open)
    clients = [o for o in objs if not getattr(o, "_is_server", False)]
    servers = [o for o in objs if getattr(o, "_is_server", False)]
    deadline = time.monotonic() + EXIT_CLOSE_SECONDS
    for o in [*clients, *servers]:
        try:
            o._close_at_exit(max(1, round((deadline - time.monotonic()) * 1000)))
        except BaseException:
            pass
    _native.at_exit()


def refresh_log_levels() -> None:
    """Re-read the levels of the ``zerorelay`` loggers. The native side caches
    a logger's level at its first record; call this after changing them."""
    _native.reset_log_cache()
