"""`pip wheel ./sdk-python` makes an abi3 wheel that installs into a new
virtual environment and runs the quick start there."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import textwrap

SDK = pathlib.Path(__file__).resolve().parents[1]

QUICK_START = textwrap.dedent(
    """
    import asyncio, zerorelay

    async def main():
        async with zerorelay.Server() as server:
            async with zerorelay.connect(server.url, user="alice") as alice, \\
                    zerorelay.connect(server.url, user="bob") as bob:
                await bob.join("room-1")
                await alice.publish("room-1", {"text": "hi"})
                async for msg in bob:
                    print(msg.sender, msg.data["text"])
                    break

    asyncio.run(main())
    """
)


def test_pip_wheel_installs_into_a_fresh_venv(tmp_path: pathlib.Path) -> None:
    env = dict(os.environ)
    # A debug build keeps the test quick; release wheels differ only in speed.
    env["MATURIN_PEP517_ARGS"] = "--profile dev"
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(wheels), str(SDK)],
        check=True,
        env=env,
        timeout=900,
    )
    (wheel,) = wheels.glob("zerorelay-*.whl")
    assert "-cp39-abi3-" in wheel.name, wheel.name

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    subprocess.run(
        [str(py), "-m", "pip", "install", "--quiet", "--no-deps", str(wheel)],
        check=True,
        timeout=300,
    )
    # Run from an empty directory, so that only the installed package is seen.
    out = subprocess.run(
        [str(py), "-c", QUICK_START],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "alice hi"
    typed = subprocess.run(
        [str(py), "-c", "import zerorelay, pathlib; "
         "print(pathlib.Path(zerorelay.__file__).with_name('py.typed').exists(), "
         "pathlib.Path(zerorelay.__file__).with_name('_native.pyi').exists())"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert typed.stdout.split() == ["True", "True"]
