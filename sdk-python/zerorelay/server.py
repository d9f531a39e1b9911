"""The embedded relay: `Server`."""

from __future__ import annotations

import asyncio
import copy
import inspect
import json
import traceback
from collections.abc import AsyncIterator, Awaitable, Iterator, Mapping
from types import TracebackType
from typing import Any, Callable, Optional, TypeVar, Union

from . import _common, _native
from ._common import dumps
from ._types import (
    Answer,
    AuthorizeRequest,
    Credentials,
    GroupInfo,
    Presence,
    RpcContext,
    ServerEvent,
    SessionInfo,
    Stats,
    ValidateContext,
)
from .errors import Closed, InvalidArgument

__all__ = [
    "AuthCallback",
    "AuthResult",
    "AuthorizeHook",
    "AuthorizeResult",
    "RpcHandler",
    "Server",
    "ValidateHook",
    "ValidateResult",
]

_S = TypeVar("_S", bound="Server")

AuthResult = Union[None, bool, str, Answer, Mapping[str, Any]]
"""What an auth callback returns: ``None``/``False`` refuses (the client gets
`Unauthorized`); ``True`` accepts anonymously; a user name, an `Answer` or a
mapping ``{"user": ..., "expires_in_ms": ..., "roles": [...]}`` accepts as
that user. Roles name ``auth.roles`` entries of the configuration; without
them the connection gets ``auth.default_roles``."""

AuthCallback = Callable[[Credentials], Union[AuthResult, Awaitable[AuthResult]]]
"""Decides who a connection is; sync or async."""

RpcHandler = Callable[[RpcContext, Any], Any]
"""An rpc method: gets the caller and the decoded argument, returns any
JSON-serializable value (or an awaitable of one). Raising a `ZerorelayError`
(say `NotFound`) answers the caller with that code; any other exception is
``internal``, and so is no answer within ``limits.rpc_timeout_ms`` (30000 by
default)."""

AuthorizeResult = Union[None, bool, str]
"""What an ``authorize`` hook returns: ``None`` or ``True`` lets the request
go ahead; ``False`` refuses it (the client gets `Forbidden`); a string
refuses it with that message."""

AuthorizeHook = Callable[[AuthorizeRequest], Union[AuthorizeResult, Awaitable[AuthorizeResult]]]
"""Asked about every join, publish, send, broadcast and rpc that the roles
allowed; sync or async. An exception (any, `ZerorelayError` included), another
answer, or no answer within ``limits.authorize_timeout_ms`` fails that request
with ``internal``."""

ValidateResult = Union[None, bool, str, Mapping[str, Any]]
"""What a ``validate`` hook returns: ``None`` or ``True`` accepts the payload;
``False`` rejects it with ``bad_request``; a string rejects it with
``bad_request`` and that message; ``{"reject": {"code": ..., "message": ...}}``
rejects it with that protocol code (default ``bad_request``);
``{"rewrite": data}`` routes `data` instead (not ``None``)."""

ValidateHook = Callable[[ValidateContext, Any], Union[ValidateResult, Awaitable[ValidateResult]]]
"""Runs on every client publish to a group its pattern matches: gets the
sender and the decoded payload; sync or async. An exception, another answer,
or no answer within ``limits.validate_timeout_ms`` fails that publish with
``internal``."""


def _answer_json(r: AuthResult) -> Optional[str]:
    if r is None or r is False:
        return None
    if r is True:
        return "{}"
    if isinstance(r, str):
        return dumps({"user": r})
    if isinstance(r, Answer):
        a: dict[str, Any] = {"user": r.user}
        if r.expires_in is not None:
            a["expires_in_ms"] = max(1, round(r.expires_in * 1000))
        if r.roles is not None:
            if isinstance(r.roles, str):
                raise TypeError("Answer.roles is a list of role names, not a string")
            a["roles"] = list(r.roles)
        return dumps(a)
    if isinstance(r, Mapping):
        return dumps(dict(r))
    raise TypeError(f"an auth callback returned {type(r).__name__}, not a user, Answer or None")


def _wrap_auth(
    fn: AuthCallback, loop: Optional[asyncio.AbstractEventLoop]
) -> Callable[[str], Optional[str]]:
    def decide(credentials_json: str) -> Optional[str]:
        creds = Credentials(**json.loads(credentials_json))
        r = fn(creds)
        if inspect.isawaitable(r):
            r = _common.run_awaitable(r, loop)
        return _answer_json(r)

    return decide


def _authorize_json(r: AuthorizeResult) -> str:
    if r is None or r is True:
        return '{"allow":true}'
    if r is False:
        return '{"allow":false}'
    if isinstance(r, str):
        return dumps({"allow": False, "message": r})
    raise TypeError(
        f"an authorize hook returned {type(r).__name__}; return None or True to allow, "
        "False or a message to refuse"
    )


def _verdict_json(r: ValidateResult) -> str:
    if r is None or r is True:
        return '{"accept":true}'
    if r is False:
        return '{"accept":false}'
    if isinstance(r, str):
        return dumps({"reject": {"code": "bad_request", "message": r}})
    if isinstance(r, Mapping) and len(r) == 1:
        if "rewrite" in r:
            return dumps({"rewrite": r["rewrite"]})
        reject = r.get("reject")
        if (
            isinstance(reject, Mapping)
            and set(reject) <= {"code", "message"}
            and isinstance(reject.get("message"), str)
            and isinstance(reject.get("code", ""), str)
        ):
            code = reject.get("code", "bad_request")
            return dumps({"reject": {"code": code, "message": reject["message"]}})
    raise TypeError(
        f"a validate hook returned {r!r:.100}; return None or True to accept, False or a "
        'message to reject, {"reject": {"code": ..., "message": ...}} or {"rewrite": data}'
    )


class _HookFailed(Exception):
    """A host hook raised; the relay logs this (with the traceback) and fails
    the request with ``internal``."""


def _call_hook(
    what: str, fn: Callable[..., Any], loop: Optional[asyncio.AbstractEventLoop], *args: Any
) -> Any:
    try:
        r = fn(*args)
        if inspect.isawaitable(r):
            r = _common.run_awaitable(r, loop)
        return r
    except Exception as e:
        tb = "".join(traceback.format_exception(type(e), e, e.__traceback__))
        raise _HookFailed(f"{what} raised {tb}") from e


def _wrap_authorize(
    fn: AuthorizeHook, loop: Optional[asyncio.AbstractEventLoop]
) -> Callable[[str], str]:
    def authorize(call_json: str) -> str:
        c = json.loads(call_json)
        request = AuthorizeRequest(
            action=c["action"],
            resource=c.get("resource"),
            user=c.get("user"),
            roles=tuple(c.get("roles", ())),
            claims=c.get("claims"),
        )
        return _authorize_json(_call_hook("authorize", fn, loop, request))

    return authorize


def _wrap_validate(
    pattern: str, fn: ValidateHook, loop: Optional[asyncio.AbstractEventLoop]
) -> Callable[[str], str]:
    def validate(call_json: str) -> str:
        c = json.loads(call_json)
        ctx = ValidateContext(
            group=c["group"], user=c.get("user"), session=c["session"], claims=c.get("claims")
        )
        return _verdict_json(_call_hook(f"validate {pattern}", fn, loop, ctx, c["data"]))

    return validate


def _wrap_rpc(
    fn: RpcHandler, loop: Optional[asyncio.AbstractEventLoop]
) -> Callable[[str, Optional[str], str], str]:
    def call(session: str, user: Optional[str], arg_json: str) -> str:
        r = fn(RpcContext(session, user), json.loads(arg_json))
        if inspect.isawaitable(r):
            r = _common.run_awaitable(r, loop)
        return dumps(r)

    return call


class Server:
    """An embedded relay.

    `config` has the sections and keys of the TOML configuration file
    (``{"server": {"listen": "127.0.0.1:0"}, "auth": {"tokens": {...}}}``);
    unknown keys are refused. ``server.listen`` defaults to ``127.0.0.1:0``
    (a free port; see `address` and `url`). With ``tls.cert_file`` and
    ``tls.key_file`` the relay serves ``wss://``. `auth` replaces the
    configured authentication with a Python callback (its answer may carry
    roles, checked against ``auth.roles``); `rpc` registers methods clients
    call with `Client.rpc`. `authorize` (an `AuthorizeHook`) is asked about
    every join, publish, send, broadcast and rpc the roles allowed;
    `validate` maps group patterns (``"chat-*"``) to `ValidateHook` functions
    that accept, reject or rewrite each client publish to a matching group
    (see `AuthorizeResult` and `ValidateResult`). A hook that raises, returns
    something else or takes longer than ``limits.authorize_timeout_ms`` /
    ``limits.validate_timeout_ms`` (1000 by default) fails that one request
    with ``internal``; the connection carries on. Callbacks and hooks run in
    worker threads; async ones run on the event loop that started the server
    (or, if none, on a fresh loop in the worker thread).

    Use ``async with Server(config) as server:`` (or ``with``), or
    `Server.start(...)` and `close()`. A server still open at interpreter
    exit is stopped at once, without the drain of `close()`: its remaining
    connections end with the process.
    """

    _is_server = True

    def __init__(
        self,
        config: Optional[Mapping[str, Any]] = None,
        *,
        auth: Optional[AuthCallback] = None,
        rpc: Optional[Mapping[str, RpcHandler]] = None,
        authorize: Optional[AuthorizeHook] = None,
        validate: Optional[Mapping[str, ValidateHook]] = None,
    ) -> None:
        cfg: dict[str, Any] = copy.deepcopy(dict(config or {}))
        server = cfg.setdefault("server", {})
        if not isinstance(server, dict):
            raise InvalidArgument("config: `server` must be a mapping")
        server.setdefault("listen", "127.0.0.1:0")
        self._config_json = dumps(cfg)
        # The relay serves wss:// when `[tls]` names a certificate (the
        # configuration refuses a cert_file without a key_file).
        tls = cfg.get("tls")
        self._scheme = "wss" if isinstance(tls, dict) and tls.get("cert_file") else "ws"
        self._auth = auth
        self._rpc = dict(rpc or {})
        self._authorize = authorize
        self._validate = dict(validate or {})
        self._native: Optional[_native.Server] = None

    @classmethod
    def start(
        cls: type[_S],
        config: Optional[Mapping[str, Any]] = None,
        *,
        auth: Optional[AuthCallback] = None,
        rpc: Optional[Mapping[str, RpcHandler]] = None,
        authorize: Optional[AuthorizeHook] = None,
        validate: Optional[Mapping[str, ValidateHook]] = None,
    ) -> _S:
        """Makes and starts a server (binding its port before returning)."""
        s = cls(config, auth=auth, rpc=rpc, authorize=authorize, validate=validate)
        s._start()
        return s

    def _start(self) -> None:
        if self._native is not None:
            return
        try:
            loop: Optional[asyncio.AbstractEventLoop] = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        auth = None if self._auth is None else _wrap_auth(self._auth, loop)
        rpc = {name: _wrap_rpc(fn, loop) for name, fn in self._rpc.items()}
        authorize = None if self._authorize is None else _wrap_authorize(self._authorize, loop)
        validate = {p: _wrap_validate(p, fn, loop) for p, fn in self._validate.items()}
        self._native = _native.Server.start(
            self._config_json, auth, rpc or None, authorize, validate or None
        )
        _common.track(self)

    @property
    def _n(self) -> _native.Server:
        if self._native is None:
            raise Closed("the server is not started", "closed")
        return self._native

    # --- where ------------------------------------------------------------

    @property
    def address(self) -> str:
        """The bound address, ``host:port``."""
        return self._n.address

    @property
    def host(self) -> str:
        return self.address.rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        return int(self.address.rsplit(":", 1)[1])

    @property
    def url(self) -> str:
        """The WebSocket URL clients connect to: ``ws://host:port/ws``, or
        ``wss://`` when the relay serves TLS."""
        return f"{self._scheme}://{self.address}/ws"

    # --- from the host ----------------------------------------------------

    def publish(self, group: str, data: Any) -> int:
        """Publishes to a group's members; returns the sessions reached."""
        return self._n.publish(group, dumps(data))

    def send_to_user(self, user: str, data: Any) -> int:
        """Sends to every session of `user` (`NotFound` when it has none)."""
        return self._n.send_to_user(user, dumps(data))

    def send_to_session(self, session: str, data: Any) -> None:
        """Sends to one session (`NotFound` when it does not exist)."""
        self._n.send_to_session(session, dumps(data))

    def broadcast(self, data: Any) -> int:
        """Sends to every session; returns the sessions reached."""
        return self._n.broadcast(dumps(data))

    def disconnect(self, session: str) -> bool:
        """Ends a session (close 4005; it cannot resume). Whether it existed."""
        return self._n.disconnect(session)

    def revoke_session(self, session: str) -> bool:
        """Revokes a session (close 4006; it cannot resume). Whether it existed."""
        return self._n.revoke_session(session)

    def revoke_user(self, user: str) -> int:
        """Revokes every session of a user (close 4006); how many were ended."""
        return self._n.revoke_user(user)

    def drop_connection(self, session: str) -> bool:
        """Cuts a session's connection as a network failure would; the client
        reconnects and resumes. Whether a connection was attached."""
        return self._n.drop_connection(session)

    def sessions(self) -> list[SessionInfo]:
        """Every session, live or resumable."""
        return [
            SessionInfo(
                id=s["id"],
                user=s["user"],
                connected=s["connected"],
                groups=tuple(s["groups"]),
                last_seq=s["last_seq"],
                unacked=s["unacked"],
            )
            for s in json.loads(self._n.sessions())
        ]

    def groups(self) -> list[GroupInfo]:
        """Every non-empty group."""
        return [GroupInfo(**g) for g in json.loads(self._n.groups())]

    def presence(self, group: str) -> Presence:
        """Who is in a group: its users with their session counts."""
        return Presence.from_json(json.loads(self._n.presence(group)))

    def stats(self) -> Stats:
        """The counters."""
        return Stats(**json.loads(self._n.stats()))

    # --- session events ---------------------------------------------------

    async def events(self) -> AsyncIterator[ServerEvent]:
        """What happens to sessions from now on (`ServerEvent`), until the
        server closes::

            async for e in server.events():
                if e.type == "connected":
                    print(e.user, "is here")
        """
        subscription = self._n.events()
        while True:
            batch = await subscription.next_batch()
            if batch is None:
                return
            for e in json.loads(batch):
                yield ServerEvent.from_json(e)

    def events_blocking(self) -> Iterator[ServerEvent]:
        """`events()` for code without an event loop (blocks between events)."""
        subscription = self._n.events()
        while True:
            # Short waits, so that Ctrl-C gets through.
            done, batch = subscription.next_batch_blocking(100)
            if done:
                return
            if batch is not None:
                for e in json.loads(batch):
                    yield ServerEvent.from_json(e)

    # --- lifecycle --------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._native is None or self._native.closed

    async def close(self) -> None:
        """Graceful shutdown: stops accepting, writes what each connection has
        queued, closes clients (1001) and waits for them."""
        if self._native is not None:
            _common.untrack(self)
            await self._native.close()

    def close_blocking(self) -> None:
        """`close()` for code without an event loop."""
        if self._native is not None:
            _common.untrack(self)
            self._native.close_blocking()

    def _close_at_exit(self, timeout_ms: int) -> None:
        # The process is ending: no drain (see `_common._close_everything`).
        if self._native is not None:
            self._native.stop_now()

    async def __aenter__(self: _S) -> _S:
        self._start()
        return self

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.close()

    def __enter__(self: _S) -> _S:
        self._start()
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close_blocking()

    def __repr__(self) -> str:
        where = self._native.address if self._native is not None else "not started"
        return f"<zerorelay.Server {where}>"
