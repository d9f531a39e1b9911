"""The Python peer of the interop test (see README.md)."""

import asyncio
import json
import sys
from collections import defaultdict

import zerorelay


async def main() -> None:
    url, name, others_csv, n_text = sys.argv[1:5]
    others = others_csv.split(",")
    n = int(n_text)
    expected = len(others) * n * 2
    got: dict[str, list[int]] = defaultdict(list)
    async with zerorelay.connect(url, user=name) as client:
        await client.join("interop")
        print("ready", flush=True)
        loop = asyncio.get_running_loop()
        line = await loop.run_in_executor(None, sys.stdin.readline)
        assert line.strip() == "go", line

        async def receive() -> None:
            count = 0
            async for m in client:
                got[f"{m.sender}:{m.kind}"].append(m.data["i"])
                count += 1
                if count == expected:
                    return

        reader = asyncio.create_task(receive())
        sends = []
        for i in range(n):
            sends.append(client.publish("interop", {"i": i}))
            sends.extend(client.send({"i": i}, to=other) for other in others)
        await asyncio.gather(*sends)
        try:
            await asyncio.wait_for(reader, 20)
        except asyncio.TimeoutError:
            pass
        # Anything delivered twice would arrive now.
        extra = asyncio.create_task(receive())
        await asyncio.sleep(0.3)
        extra.cancel()
        print(json.dumps({"name": name, "got": got}), flush=True)


asyncio.run(main())
