"""The values the SDK hands out: messages, lifecycle events, server views."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Optional

__all__ = [
    "Answer",
    "AuthorizeRequest",
    "Credentials",
    "Event",
    "GroupInfo",
    "Message",
    "Presence",
    "PresenceMember",
    "RpcContext",
    "SessionInfo",
    "Stats",
    "ValidateContext",
]

EVENT_TYPES = (
    "connected",
    "disconnected",
    "reconnecting",
    "loss",
    "error",
    "rejoined",
    "presence_change",
    "presence_summary",
    "closed",
)
"""Every lifecycle event type."""


class Message:
    """A delivered message. Each arrives exactly once, in order.

    `kind` is ``"direct"``, ``"group"`` or ``"broadcast"``; `sender` is the
    sending user (``None`` for anonymous senders and the host); `group` is set
    for group messages; `data` is the decoded JSON payload; `ts` is the
    server's routing time in Unix milliseconds.
    """

    __slots__ = ("data", "group", "kind", "sender", "sender_session", "seq", "ts")

    def __init__(
        self,
        seq: int,
        kind: str,
        sender: Optional[str],
        sender_session: Optional[str],
        group: Optional[str],
        data: Any,
        ts: int,
    ) -> None:
        self.seq = seq
        self.kind = kind
        self.sender = sender
        self.sender_session = sender_session
        self.group = group
        self.data = data
        self.ts = ts

    @classmethod
    def _from_frame(cls, d: dict[str, Any]) -> Message:
        return cls(
            d["seq"], d["kind"], d.get("from"), d.get("from_session"), d.get("group"),
            d.get("data"), d.get("ts", 0),
        )  # fmt: skip

    def __repr__(self) -> str:
        return (
            f"Message(seq={self.seq}, kind={self.kind!r}, sender={self.sender!r}, "
            f"group={self.group!r}, data={self.data!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        return all(getattr(self, a) == getattr(other, a) for a in Message.__slots__)

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True)
class Event:
    """A lifecycle event. `type` is one of ``connected``, ``disconnected``,
    ``reconnecting``, ``loss``, ``error``, ``rejoined``, ``presence_change``
    (a user joined or left a group joined with ``presence=True``),
    ``presence_summary`` (joins and leaves of a large group since the last
    summary), ``closed``; the other fields are set for the types noted beside
    them."""

    type: str
    session: Optional[str] = None  # connected
    user: Optional[str] = None  # connected
    resumed: bool = False  # connected
    lost_session: Optional[str] = None  # connected, when the server could not resume
    close_code: Optional[int] = None  # disconnected
    reason: Optional[str] = None  # disconnected, closed
    will_retry: bool = False  # disconnected
    attempt: int = 0  # reconnecting
    delay: float = 0.0  # reconnecting, seconds
    from_seq: int = 0  # loss
    to_seq: int = 0  # loss
    code: Optional[str] = None  # error; closed, when the relay refused the connection
    message: Optional[str] = None  # error
    groups: tuple[str, ...] = ()  # rejoined
    seq: Optional[int] = None  # error about one message (code "undecodable")
    group: Optional[str] = None  # presence_change, presence_summary
    change: Optional[str] = None  # presence_change: "join" or "leave"
    joined: int = 0  # presence_summary: users who joined
    left: int = 0  # presence_summary: users who left
    present: int = 0  # presence_summary: users present now

    @classmethod
    def _from_frame(cls, d: dict[str, Any]) -> Event:
        t = d.get("type", "")
        return cls(
            type=t,
            session=d.get("session"),
            user=d.get("user"),
            resumed=bool(d.get("resumed", False)),
            lost_session=d.get("lost_session"),
            close_code=d.get("code") if t == "disconnected" else None,
            reason=d.get("reason"),
            will_retry=bool(d.get("will_retry", False)),
            attempt=int(d.get("attempt", 0)),
            delay=float(d.get("delay_ms", 0)) / 1000.0,
            from_seq=int(d.get("from_seq", 0)),
            to_seq=int(d.get("to_seq", 0)),
            code=d.get("code") if t in ("error", "closed") else None,
            message=d.get("message"),
            groups=tuple(d.get("groups", ())),
            seq=d.get("seq") if t == "error" else None,
            group=d.get("group"),
            change=d.get("change"),
            joined=int(d.get("joined", 0)),
            left=int(d.get("left", 0)),
            present=int(d.get("present", 0)),
        )


@dataclass(frozen=True)
class Credentials:
    """What an auth callback is shown of a connection's `hello`."""

    token: Optional[str]
    user: Optional[str]  # a claim, not a proof
    remote: Optional[str]  # "ip:port"
    client: Optional[str]  # hello.client, e.g. "zerorelay-python/0.1.0"


@dataclass(frozen=True)
class Answer:
    """An auth callback's acceptance: the user the connection acts as
    (``None``: anonymous), optionally how long (seconds) the credentials
    stay valid (the relay sends ``refresh_required`` ahead of expiry and
    closes the connection at it unless the client refreshes), and
    optionally the roles, names under ``auth.roles`` in the configuration,
    that decide what the connection may do (``None``: ``auth.default_roles``)."""

    user: Optional[str] = None
    expires_in: Optional[float] = None
    roles: Optional[Sequence[str]] = None


@dataclass(frozen=True)
class AuthorizeRequest:
    """What an ``authorize`` hook is asked about: a request the roles allowed.

    `action` is ``"join"``, ``"publish"``, ``"send"``, ``"broadcast"`` or
    ``"rpc"``; `resource` is the group (join, publish), the recipient
    ``"user:<name>"`` or ``"session:<id>"`` (send), the method (rpc), or
    ``None`` (broadcast). `roles` are the roles the connection's credentials
    named (empty when ``auth.default_roles`` apply); `claims` are its token's
    claims (a JWT's payload), ``None`` when it has none."""

    action: str
    resource: Optional[str]
    user: Optional[str]
    roles: tuple[str, ...] = ()
    claims: Any = None


@dataclass(frozen=True)
class ValidateContext:
    """Who published the payload a ``validate`` hook is shown, and where:
    `group` is the group it was published to (one its pattern matches)."""

    group: str
    user: Optional[str]
    session: str
    claims: Any = None


@dataclass(frozen=True)
class RpcContext:
    """Who calls an rpc method."""

    session: str
    user: Optional[str]


@dataclass(frozen=True)
class SessionInfo:
    """A session as the server sees it."""

    id: str
    user: Optional[str]
    connected: bool
    groups: tuple[str, ...] = field(default_factory=tuple)
    last_seq: int = 0
    unacked: int = 0


@dataclass(frozen=True)
class GroupInfo:
    """A non-empty group."""

    name: str
    members: int


@dataclass(frozen=True)
class PresenceMember:
    """A user in a group, with how many of their sessions are members."""

    user: str
    sessions: int


@dataclass(frozen=True)
class Presence:
    """Who is in a group: users (sorted) and member sessions without a user."""

    group: str
    members: tuple[PresenceMember, ...] = ()
    anonymous: int = 0

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Presence:
        """From the server's answer."""
        return cls(
            group=str(d.get("group", "")),
            members=tuple(
                PresenceMember(user=m["user"], sessions=int(m["sessions"]))
                for m in d.get("members", ())
            ),
            anonymous=int(d.get("anonymous", 0)),
        )


@dataclass(frozen=True)
class Stats:
    """A running server's counters."""

    connections_accepted: int
    connections_open: int
    sessions: int
    deliveries: int
    dropped: int
    slow_consumers: int
    trimmed: int
    outbox_bytes: int


@dataclass(frozen=True)
class ServerEvent:
    """Something that happened on an embedded server.

    ``type`` is ``"connected"`` (a client was welcomed; ``resumed`` says
    whether it resumed an existing session, ``roles`` what its credentials
    carry), ``"disconnected"`` (a connection ended; the session stays
    resumable unless ``"ended"`` follows), ``"ended"`` (the session ended for
    good: closed by its client, by the host, or expired), ``"joined"`` and
    ``"left"`` (a session joined or left ``group``), ``"error"`` (the server
    refused a client's frame: ``code``, ``message``, ``frame_type``),
    ``"message"`` (with the ``hooks.messages`` setting: a client routed a
    message of ``kind`` to ``group`` or ``to``, ``bytes`` long) or
    ``"lagged"`` (the reader fell more than 1,024 events behind and
    ``missed`` were dropped)."""

    type: str
    session: Optional[str] = None
    user: Optional[str] = None
    resumed: bool = False
    remote: Optional[str] = None
    roles: Optional[list[str]] = None
    reason: Optional[str] = None
    group: Optional[str] = None
    kind: Optional[str] = None
    to: Optional[str] = None
    bytes: int = 0
    code: Optional[str] = None
    message: Optional[str] = None
    frame_type: Optional[str] = None
    missed: int = 0

    @classmethod
    def from_json(cls, e: dict[str, Any]) -> ServerEvent:
        """An event from the server's JSON (fields a newer server adds are
        left out)."""
        return cls(**{k: v for k, v in e.items() if k in _SERVER_EVENT_FIELDS})


_SERVER_EVENT_FIELDS = frozenset(f.name for f in fields(ServerEvent))
