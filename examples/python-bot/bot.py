"""A Zerorelay bot: joins a room and answers "ping" with "pong".

    python bot.py ws://127.0.0.1:8080/ws --room lobby --user pongbot

In the room, a message whose data is "ping" (or {"text": "ping"}) gets
"pong" published back to the room; a direct "ping" gets a direct "pong" to
the session that sent it. The bot reconnects and resumes by itself; Ctrl-C
stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any, Optional

import zerorelay

log = logging.getLogger("pongbot")


def is_ping(data: Any) -> bool:
    return data == "ping" or (isinstance(data, dict) and data.get("text") == "ping")


async def run_bot(
    url: str,
    room: str = "lobby",
    user: str = "pongbot",
    token: Optional[str] = None,
    ready: Optional[asyncio.Event] = None,
) -> None:
    """Answers pings until the client is closed (or the task cancelled)."""
    async with zerorelay.connect(
        url,
        user=user,
        token=token,
        on={
            "disconnected": lambda e: log.warning("Disconnected (%s); retrying.", e.reason),
            "connected": lambda e: log.info("Connected as %s (resumed: %s).", e.user, e.resumed),
        },
    ) as client:
        await client.join(room)
        log.info("Joined %s.", room)
        if ready is not None:
            ready.set()
        async for msg in client:
            if not is_ping(msg.data):
                continue
            if msg.kind == "group" and msg.group == room:
                await client.publish(room, {"text": "pong", "to": msg.sender})
            elif msg.kind == "direct" and msg.sender_session:
                await client.send({"text": "pong"}, session=msg.sender_session)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("url", help="the relay, e.g. ws://127.0.0.1:8080/ws")
    p.add_argument("--room", default="lobby")
    p.add_argument("--user", default="pongbot")
    p.add_argument("--token", default=None)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        asyncio.run(run_bot(args.url, args.room, args.user, args.token))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
