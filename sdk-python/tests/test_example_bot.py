"""examples/python-bot: the bot, run as its own process, answers pings."""

from __future__ import annotations

import asyncio
import pathlib
import signal
import sys

import zerorelay

BOT = pathlib.Path(__file__).resolve().parents[2] / "examples" / "python-bot" / "bot.py"

# Bounds for the bot's own interpreter to start and to exit: generous, as a
# starved interpreter on a loaded machine takes seconds for either. The test
# waits for what the bot says, never for a fixed time.
START = 120.0
EXIT = 60.0


async def test_the_bot_answers_ping_in_the_room_and_directly() -> None:
    async with zerorelay.Server() as server:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(BOT), server.url, "--room", "lobby", "--user", "pongbot",
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert proc.stderr is not None
        stderr = proc.stderr
        said: list[str] = []

        async def joined() -> None:
            # The bot is ready once it says it joined the room.
            while True:
                line = await stderr.readline()
                if not line:
                    raise AssertionError("the bot ended before joining:\n" + "".join(said))
                said.append(line.decode())
                if b"Joined lobby." in line:
                    return

        try:
            await asyncio.wait_for(joined(), START)
            async with zerorelay.connect(server.url, user="alice") as alice:
                await alice.join("lobby")
                await alice.publish("lobby", "ping")
                m = await alice.recv(timeout=30)
                assert m.sender == "pongbot" and m.group == "lobby"
                assert m.data == {"text": "pong", "to": "alice"}
                await alice.send({"text": "ping"}, to="pongbot")
                m = await alice.recv(timeout=30)
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
            if proc.returncode is None:
                proc.send_signal(signal.SIGINT)
            rest = await asyncio.wait_for(stderr.read(), EXIT)
            await asyncio.wait_for(proc.wait(), EXIT)
        err = "".join(said) + rest.decode()
        assert proc.returncode == 0, err
        assert "Traceback" not in err, err
