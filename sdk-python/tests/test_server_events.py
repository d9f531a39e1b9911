"""The embedded server tells Python what happens to sessions."""

import asyncio
import threading

import pytest

import zerorelay


async def test_connect_resume_and_end_reach_the_event_iterator() -> None:
    async with zerorelay.Server() as server:
        seen: list[zerorelay.ServerEvent] = []

        async def watch() -> None:
            async for e in server.events():
                seen.append(e)

        watcher = asyncio.create_task(watch())
        await asyncio.sleep(0.05)
        async with zerorelay.connect(server.url, user="alice") as client:
            session = client.session
            assert session is not None
            server.drop_connection(session)
            for _ in range(200):
                if sum(e.type == "connected" for e in seen) == 2:
                    break
                await asyncio.sleep(0.02)
        for _ in range(200):
            if any(e.type == "ended" for e in seen):
                break
            await asyncio.sleep(0.02)
        types = [e.type for e in seen]
        assert types == ["connected", "disconnected", "connected", "disconnected", "ended"]
        assert seen[0].user == "alice" and seen[0].resumed is False
        assert seen[0].remote is not None and seen[0].remote.startswith("127.0.0.1:")
        assert seen[2].resumed is True and seen[2].session == session
        assert seen[4].reason == "session closed"
    # The iterator ends when the server closes.
    await asyncio.wait_for(watcher, 5)


async def test_joins_leaves_and_refused_frames_reach_the_event_iterator() -> None:
    async with zerorelay.Server() as server:
        seen: list[zerorelay.ServerEvent] = []

        async def watch() -> None:
            async for e in server.events():
                seen.append(e)

        watcher = asyncio.create_task(watch())
        await asyncio.sleep(0.05)
        async with zerorelay.connect(server.url, user="alice") as client:
            await client.join("room")
            await client.leave("room")
            try:
                await client.send(1, to="nobody")
            except zerorelay.ZerorelayError:
                pass
            for _ in range(200):
                if any(e.type == "error" for e in seen):
                    break
                await asyncio.sleep(0.02)
        types = [e.type for e in seen]
        assert types[:4] == ["connected", "joined", "left", "error"], types
        assert seen[0].roles == []
        assert (seen[1].group, seen[1].user) == ("room", "alice")
        assert seen[2].group == "room"
        assert (seen[3].code, seen[3].frame_type) == ("not_found", "send")
        assert seen[3].message
    await asyncio.wait_for(watcher, 5)


def test_the_blocking_iterator_ends_when_the_server_closes() -> None:
    with zerorelay.sync.Server() as server:
        seen: list[str] = []

        def watch() -> None:
            for e in server.events_blocking():
                seen.append(e.type)

        t = threading.Thread(target=watch)
        t.start()
        with zerorelay.sync.connect(server.url, user="bob"):
            pass
    t.join(5)
    assert not t.is_alive()
    assert seen[0] == "connected"


async def test_presence_tells_a_watcher_of_users_and_answers_who_is_in_a_group() -> None:
    async with zerorelay.Server() as server:
        async with zerorelay.connect(server.url, user="watcher") as w:
            await w.join("room", presence=True)
            seen: list[zerorelay.Event] = []
            w.on("presence_change", seen.append)
            async with zerorelay.connect(server.url, user="alice") as a1:
                async with zerorelay.connect(server.url, user="alice") as a2:
                    await a1.join("room")
                    await a2.join("room")
                    for _ in range(200):
                        if seen:
                            break
                        await asyncio.sleep(0.02)
                    who = await a2.presence("room")
                    assert server.presence("room") == who
                    with pytest.raises(zerorelay.BadRequest):
                        server.presence("not a name")
                    assert who == zerorelay.Presence(
                        group="room",
                        members=(
                            zerorelay.PresenceMember("alice", 2),
                            zerorelay.PresenceMember("watcher", 1),
                        ),
                        anonymous=0,
                    )
            for _ in range(200):
                if len(seen) == 2:
                    break
                await asyncio.sleep(0.02)
            assert [(e.type, e.group, e.user, e.change) for e in seen] == [
                ("presence_change", "room", "alice", "join"),
                ("presence_change", "room", "alice", "leave"),
            ]


def test_the_blocking_client_joins_with_presence_and_asks_who_is_there() -> None:
    with zerorelay.sync.Server() as server:
        with zerorelay.sync.connect(server.url, user="alice") as c:
            c.join("room", presence=True)
            who = c.presence("room")
            assert who.members == (zerorelay.PresenceMember("alice", 1),)
