"""The README's Python quick start, against the relay at ZR_URL."""

import asyncio
import os

import zerorelay


async def main() -> None:
    url = os.environ["ZR_URL"]
    async with zerorelay.connect(url, user="alice") as alice:
        async with zerorelay.connect(url, user="bob") as bob:
            await bob.join("room")
            await alice.publish("room", {"text": "hello"})
            async for msg in bob:
                print(f"{msg.sender}: {msg.data['text']}")  # alice: hello
                break


asyncio.run(main())
