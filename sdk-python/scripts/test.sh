#!/usr/bin/env bash
# The Python SDK's single test entry point (`make test` calls it).
#
# Creates a virtual environment at $CARGO_TARGET_DIR/py-venv (or
# target/py-venv) when missing, installs the tools, builds and installs the
# package from source (debug profile), then runs ruff, mypy (package and a
# typed usage file) and pytest. Works from a fresh clone: nothing is
# expected to be installed by hand besides python3 (with venv) and Rust.

set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
sdk="$(cd "$here/.." && pwd)"
repo="$(cd "$sdk/.." && pwd)"
cd "$repo"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target}"
mkdir -p "$CARGO_TARGET_DIR"
export CARGO_TARGET_DIR="$(cd "$CARGO_TARGET_DIR" && pwd)"
venv="$CARGO_TARGET_DIR/py-venv"
py="$venv/bin/python"
# The maturin build backend runs `maturin` from PATH.
export PATH="$venv/bin:$PATH"

if [ ! -x "$py" ]; then
    echo "== creating $venv"
    python3 -m venv "$venv"
fi
# The tools, pinned to major versions; a no-op when already installed.
"$py" -m pip install --quiet --disable-pip-version-check \
    "maturin>=1.9,<2" "pytest>=8,<10" "pytest-asyncio>=0.24,<2" \
    "mypy>=1.10,<2" "ruff>=0.6,<1" "websockets>=13,<18" "trustme>=1.1,<2"

echo "== building and installing ./sdk-python (dev profile)"
# No build isolation: maturin is in the venv already, so nothing is fetched
# per build; cargo's incremental build in the shared target dir makes an
# unchanged tree a quick relink-free check.
MATURIN_PEP517_ARGS="--profile dev" "$py" -m pip install --quiet --disable-pip-version-check \
    --no-build-isolation --force-reinstall --no-deps ./sdk-python

echo "== ruff"
# One configuration (sdk-python/pyproject.toml) for the package and the example.
"$venv/bin/ruff" check --config sdk-python/pyproject.toml sdk-python examples/python-bot
"$venv/bin/ruff" format --check --config sdk-python/pyproject.toml sdk-python examples/python-bot

echo "== mypy"
# The package's sources with the native module's stubs (`_native.pyi`),
# and a small typed program that uses the public API.
(cd "$sdk" && "$venv/bin/mypy" zerorelay tests/typed_usage.py)
# The stubs match the compiled module (every name, signature and type).
(cd "$sdk/tests" && "$py" -m mypy.stubtest zerorelay._native)

echo "== pytest"
"$py" -m pytest -q sdk-python/tests "$@"
