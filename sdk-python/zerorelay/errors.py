"""Exceptions: one class per stable error code, all under `ZerorelayError`.

The protocol's codes (docs/PROTOCOL.md section 17, `tests/vectors/codes.json`)
and the client's own (`timeout`, `closed`, `queue_full`, `cancelled`,
`invalid_argument`, `connection`, `undecodable`, `unknown_outcome`). Every exception
carries its code in `.code`; match on the class or the code, never on the message.
"""

from __future__ import annotations

from typing import Optional


class ZerorelayError(Exception):
    """Base class of every Zerorelay error. `code` is the stable code."""

    code: str = "unknown"

    def __init__(self, message: str = "", code: Optional[str] = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __reduce__(self) -> tuple[type[ZerorelayError], tuple[str, str]]:
        return (type(self), (self.message, self.code))


# Protocol codes.
class BadFrame(ZerorelayError):
    """A frame was not a JSON object with a string `type`."""

    code = "bad_frame"


class BadRequest(ZerorelayError):
    """A field is missing or invalid."""

    code = "bad_request"


class Unsupported(ZerorelayError):
    """Unknown frame type or protocol version."""

    code = "unsupported"


class Unauthorized(ZerorelayError):
    """Authentication failed or is missing."""

    code = "unauthorized"


class Forbidden(ZerorelayError):
    """The identity may not do this."""

    code = "forbidden"


class NotFound(ZerorelayError):
    """No such user, session or rpc method."""

    code = "not_found"


class TooLarge(ZerorelayError):
    """The frame is over the server's size limit."""

    code = "too_large"


class RateLimited(ZerorelayError):
    """Too many frames in too short a time."""

    code = "rate_limited"


class LimitExceeded(ZerorelayError):
    """A configured limit (groups, sessions, connections, ...) was reached."""

    code = "limit_exceeded"


class InternalError(ZerorelayError):
    """The server failed; the request may be retried."""

    code = "internal"


# Client codes.
class Timeout(ZerorelayError):
    """No answer within the request timeout."""

    code = "timeout"


class Closed(ZerorelayError):
    """The client (or server) is closed."""

    code = "closed"


class QueueFull(ZerorelayError):
    """The offline queue is full (or the request was dropped from it)."""

    code = "queue_full"


class Cancelled(ZerorelayError):
    """The request was cancelled."""

    code = "cancelled"


class InvalidArgument(ZerorelayError, ValueError):
    """An argument or option is invalid (the message names it)."""

    code = "invalid_argument"


class ConnectionFailed(ZerorelayError):
    """The connection could not be established."""

    code = "connection"


class Undecodable(ZerorelayError):
    """A delivered message could not be decoded (for example nested deeper
    than Python's `json` allows). Reported as an ``error`` event whose `seq`
    is that message's; the messages around it are delivered."""

    code = "undecodable"


class UnknownOutcome(ZerorelayError):
    """The session was lost (the relay could not resume it) after the request
    may have been routed and before its answer arrived: it may or may not
    have been delivered. It was not sent again, so as not to deliver it twice."""

    code = "unknown_outcome"


ERRORS_BY_CODE: dict[str, type[ZerorelayError]] = {
    cls.code: cls
    for cls in (
        BadFrame,
        BadRequest,
        Unsupported,
        Unauthorized,
        Forbidden,
        NotFound,
        TooLarge,
        RateLimited,
        LimitExceeded,
        InternalError,
        Timeout,
        Closed,
        QueueFull,
        Cancelled,
        InvalidArgument,
        ConnectionFailed,
        Undecodable,
        UnknownOutcome,
    )
}
"""Each stable code's exception class."""


def error_for(code: str, message: str = "") -> ZerorelayError:
    """The exception for `code` (the base class for a code it does not know)."""
    cls: type[ZerorelayError] = ERRORS_BY_CODE.get(code, ZerorelayError)
    return cls(message, code)
