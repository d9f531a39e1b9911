"""Interpreter exit with clients and servers still open neither hangs nor
crashes (each case runs in a fresh interpreter)."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import pytest

CASES = {
    "async_open_client_and_server": """
        import asyncio, zerorelay

        async def main():
            server = zerorelay.Server.start()
            a = await zerorelay.connect(server.url, user="a")
            b = await zerorelay.connect(server.url, user="b")
            await b.join("g")
            await a.publish("g", "hello")
            print((await b.recv(timeout=5)).data)
            # A request still waiting when the loop ends.
            asyncio.ensure_future(a.rpc("nothing.here"))
            # Leave everything open.

        asyncio.run(main())
    """,
    "sync_open_client_and_server": """
        import zerorelay.sync

        server = zerorelay.sync.Server.start()
        c = zerorelay.sync.connect(server.url, user="a")
        c.join("g")
        server.publish("g", "hello")
        print(c.recv(timeout=5).data)
    """,
    "sync_reader_thread_blocked_at_exit": """
        import threading, zerorelay.sync

        server = zerorelay.sync.Server.start()
        c = zerorelay.sync.connect(server.url, user="a")
        c.join("g")
        server.publish("g", "hello")
        first = threading.Event()

        def read():
            for m in c:
                print(m.data, flush=True)
                first.set()

        threading.Thread(target=read, daemon=True).start()
        first.wait(5)
    """,
    "client_to_an_unreachable_server": """
        import asyncio, zerorelay

        async def main():
            c = await zerorelay.connect("ws://127.0.0.1:9/ws", wait=False,
                                        reconnect={"base_ms": 20, "cap_ms": 50})
            asyncio.ensure_future(c.publish("g", 1))
            await asyncio.sleep(0.2)
            print("hello")

        asyncio.run(main())
    """,
    "fork_child_gets_a_fresh_runtime": """
        import os, zerorelay, zerorelay.sync

        server = zerorelay.sync.Server.start()
        parent = zerorelay.sync.connect(server.url, user="parent")
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                try:
                    parent.join("x")
                    code = 2  # the parent's client must not be usable here
                except zerorelay.Closed:
                    with zerorelay.sync.Server() as s2:
                        with zerorelay.sync.connect(s2.url, user="child") as c2:
                            c2.join("g")
                            s2.publish("g", "child ok")
                            print(c2.recv(timeout=5).data, flush=True)
                    code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, status
        parent.join("g")
        server.publish("g", "hello")
        print(parent.recv(timeout=5).data)
    """,
    "exception_with_objects_open": """
        import zerorelay.sync

        server = zerorelay.sync.Server.start()
        c = zerorelay.sync.connect(server.url, user="a")
        print("hello", flush=True)
        raise SystemExit(3)
    """,
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_interpreter_exit_with_open_objects_is_clean(name: str) -> None:
    code = textwrap.dedent(CASES[name])
    r = subprocess.run(
        [sys.executable, "-X", "dev", "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
    )
    want = 3 if name == "exception_with_objects_open" else 0
    assert r.returncode == want, f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    assert "hello" in r.stdout
    for bad in ("Fatal Python error", "panicked", "Traceback", "was never awaited"):
        assert bad not in r.stderr, r.stderr


def test_ctrl_c_interrupts_a_blocking_call() -> None:
    code = textwrap.dedent(
        """
        import zerorelay.sync

        server = zerorelay.sync.Server.start()
        c = zerorelay.sync.connect(server.url, user="a")
        print("ready", flush=True)
        try:
            c.recv()  # nothing ever comes
        except KeyboardInterrupt:
            print("interrupted", flush=True)
        """
    )
    p = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert p.stdout is not None
        assert p.stdout.readline().strip() == "ready"
        time.sleep(0.2)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=10)
    finally:
        p.kill()
    assert p.returncode == 0, err
    assert out.strip() == "interrupted"
