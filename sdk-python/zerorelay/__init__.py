"""Zerorelay for Python: an asyncio client, a blocking client
(`zerorelay.sync`) and an embedded relay server, over the shared Rust engine.

```python
import zerorelay

async with zerorelay.connect("ws://127.0.0.1:8080/ws", user="alice") as client:
    await client.join("room-1")
    await client.publish("room-1", {"text": "hi"})
    async for msg in client:
        print(msg.sender, msg.data)
```

Logs go to the standard `logging` module under the ``zerorelay`` logger.
"""

from __future__ import annotations

import logging

from . import (
    errors,
    sync,
)
from ._common import VERSION as __version__
from ._common import refresh_log_levels
from ._types import (
    Answer,
    AuthorizeRequest,
    Credentials,
    Event,
    GroupInfo,
    Message,
    Presence,
    PresenceMember,
    RpcContext,
    ServerEvent,
    SessionInfo,
    Stats,
    ValidateContext,
)
from .client import Client, connect
from .errors import (
    ERRORS_BY_CODE,
    BadFrame,
    BadRequest,
    Cancelled,
    Closed,
    ConnectionFailed,
    Forbidden,
    InternalError,
    InvalidArgument,
    LimitExceeded,
    NotFound,
    QueueFull,
    RateLimited,
    Timeout,
    TooLarge,
    Unauthorized,
    Undecodable,
    UnknownOutcome,
    Unsupported,
    ZerorelayError,
)
from .server import Server

logging.getLogger("zerorelay").addHandler(logging.NullHandler())

__all__ = [
    "ERRORS_BY_CODE",
    "Answer",
    "AuthorizeRequest",
    "BadFrame",
    "BadRequest",
    "Cancelled",
    "Client",
    "Closed",
    "ConnectionFailed",
    "Credentials",
    "Event",
    "Forbidden",
    "GroupInfo",
    "InternalError",
    "InvalidArgument",
    "LimitExceeded",
    "Message",
    "NotFound",
    "Presence",
    "PresenceMember",
    "QueueFull",
    "RateLimited",
    "RpcContext",
    "Server",
    "ServerEvent",
    "SessionInfo",
    "Stats",
    "Timeout",
    "TooLarge",
    "Unauthorized",
    "Undecodable",
    "UnknownOutcome",
    "Unsupported",
    "ValidateContext",
    "ZerorelayError",
    "__version__",
    "connect",
    "errors",
    "refresh_log_levels",
    "sync",
]
