"""Interpreter exit with clients and servers still open neither hangs nor
crashes (each case runs in a fresh interpreter)."""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import textwrap
import threading

import pytest

import zerorelay
import zerorelay.sync

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


LOADED = 60.0
"""Bound on a child's step (start, exit) on a loaded machine: generous, as a
starved interpreter takes seconds for either; the tests wait for what the
child says, never for a fixed time."""


class _Child:
    """A Python child whose stdout lines and stderr are read in threads, so
    that every wait on it is bounded; killed (if still running) on exit."""

    def __init__(self, code: str, *flags: str) -> None:
        self.p = subprocess.Popen(
            [sys.executable, *flags, "-c", textwrap.dedent(code)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._lines: queue.Queue[str] = queue.Queue()
        self._err: list[str] = []
        self._readers = [
            threading.Thread(target=self._read_lines, daemon=True),
            threading.Thread(target=self._read_err, daemon=True),
        ]
        for t in self._readers:
            t.start()

    def _read_lines(self) -> None:
        assert self.p.stdout is not None
        for line in self.p.stdout:
            self._lines.put(line.strip())
        self._lines.put("")

    def _read_err(self) -> None:
        assert self.p.stderr is not None
        for line in self.p.stderr:
            self._err.append(line)

    @property
    def stderr(self) -> str:
        return "".join(self._err)

    def line(self) -> str:
        """The next line the child prints ("" once it ended)."""
        try:
            return self._lines.get(timeout=LOADED)
        except queue.Empty:
            raise AssertionError(f"the child said nothing more; stderr:\n{self.stderr}") from None

    def say(self, text: str) -> None:
        assert self.p.stdin is not None
        self.p.stdin.write(text + "\n")
        self.p.stdin.flush()

    def exit_code(self) -> int:
        """Waits for the child to end. The bound covers a whole interpreter
        teardown, which takes seconds when starved on a loaded machine."""
        return self.p.wait(timeout=LOADED)

    def __enter__(self) -> _Child:
        return self

    def __exit__(self, *exc: object) -> None:
        self.p.kill()
        self.p.wait()
        for t in self._readers:
            t.join(LOADED)
        for f in (self.p.stdin, self.p.stdout, self.p.stderr):
            if f is not None:
                f.close()


@pytest.mark.parametrize("name", sorted(CASES))
def test_interpreter_exit_with_open_objects_is_clean(name: str) -> None:
    code = textwrap.dedent(CASES[name])
    r = subprocess.run(
        [sys.executable, "-X", "dev", "-c", code],
        capture_output=True,
        text=True,
        timeout=LOADED,
    )
    want = 3 if name == "exception_with_objects_open" else 0
    assert r.returncode == want, f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    assert "hello" in r.stdout
    for bad in ("Fatal Python error", "panicked", "Traceback", "was never awaited"):
        assert bad not in r.stderr, r.stderr


def test_ctrl_c_interrupts_a_blocking_call() -> None:
    # The child says "blocking" from a profile hook as the blocking native
    # call starts, and the SIGINT goes out only then (no sleep hoping the
    # child got there). Landing a moment early (still in the hook) is told
    # apart by the line the interrupt came out of, and tried again.
    code = """
        import linecache, sys
        import zerorelay.sync

        server = zerorelay.sync.Server.start()
        c = zerorelay.sync.connect(server.url, user="a")

        def announce(frame, event, arg):
            if event == "c_call" and getattr(arg, "__name__", "") == "next_batch_blocking":
                sys.setprofile(None)
                print("blocking", flush=True)

        for _ in range(20):
            try:
                sys.setprofile(announce)
                c.recv()  # nothing ever comes
            except KeyboardInterrupt as e:
                tb = e.__traceback__
                while tb.tb_next is not None:
                    tb = tb.tb_next
                line = linecache.getline(tb.tb_frame.f_code.co_filename, tb.tb_lineno)
                if "next_batch_blocking" in line:
                    print("interrupted", flush=True)
                    break
                print("early", flush=True)
    """
    with _Child(code) as child:
        said = ""
        for _ in range(20):
            assert child.line() == "blocking", child.stderr
            child.p.send_signal(signal.SIGINT)
            said = child.line()
            if said != "early":
                break
        assert said == "interrupted", child.stderr
        assert child.exit_code() == 0, child.stderr


def test_exit_stops_an_open_server_without_waiting_for_its_drain() -> None:
    # A connection from another process stays open, and the drain grace is
    # ten minutes: exit must wait for neither.
    code = """
        import sys
        import zerorelay.sync

        server = zerorelay.sync.Server.start({"server": {"shutdown_grace_ms": 600000}})
        print(server.url, flush=True)
        sys.stdin.readline()  # the test's client is connected
        print("exiting", flush=True)
    """
    with _Child(code, "-X", "dev") as child:
        url = child.line()
        assert url.startswith("ws://"), child.stderr
        ended = threading.Event()
        with zerorelay.sync.connect(
            url, user="remote", reconnect=False, on={"closed": lambda e: ended.set()}
        ) as c:
            c.join("g")
            child.say("go")
            assert child.line() == "exiting", child.stderr
            assert child.exit_code() == 0, child.stderr
            # The relay is gone: reading ends the client.
            with pytest.raises(zerorelay.Closed):
                for _ in range(600):
                    c.recv(timeout=0.1)
            assert ended.is_set()
        for bad in ("Fatal Python error", "panicked", "Traceback"):
            assert bad not in child.stderr, child.stderr
