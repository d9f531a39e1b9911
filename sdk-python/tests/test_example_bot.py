"""examples/python-bot: the bot, run as its own process, answers pings."""

from __future__ import annotations

import asyncio
import pathlib
import signal
import sys

import zerorelay

BOT = pathlib.Path(__file__).resolve().parents[2] / "examples" / "python-bot" / "bot.py"


async def test_the_bot_answers_ping_in_the_room_and_directly() -> None:
    async with zerorelay.Server() as server:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(BOT), server.url, "--room", "lobby", "--user", "pongbot",
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            # The bot is ready once it is in the room.
            for _ in range(500):
                if any(g.name == "lobby" for g in server.groups()):
                    break
                await asyncio.sleep(0.02)
            async with zerorelay.connect(server.url, user="alice") as alice:
                await alice.join("lobby")
                await alice.publish("lobby", "ping")
                m = await alice.recv(timeout=10)
                assert m.sender == "pongbot" and m.group == "lobby"
                assert m.data == {"text": "pong", "to": "alice"}
                await alice.send({"text": "ping"}, to="pongbot")
                m = await alice.recv(timeout=10)
                assert m.kind == "direct" and m.data == {"text": "pong"}
                await alice.publish("lobby", "not a ping")
                await alice.send("hello", to="pongbot")
                try:
                    extra = await alice.recv(timeout=0.3)
                    raise AssertionError(f"unexpected {extra!r}")
                except asyncio.TimeoutError:
                    pass
        finally:
            # Ctrl-C: the bot stops cleanly.
            proc.send_signal(signal.SIGINT)
            _, err = await asyncio.wait_for(proc.communicate(), 10)
        assert proc.returncode == 0, err.decode()
        assert b"Joined lobby." in err, err.decode()
        assert b"Traceback" not in err, err.decode()
