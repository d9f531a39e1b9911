#!/usr/bin/env bash
# Receive-rate benchmark of the Python SDK (not a test): builds a release
# wheel into its own virtual environment ($CARGO_TARGET_DIR/py-bench-venv,
# so the test venv keeps its debug build) and runs bench/recv_bench.py.
# Extra arguments go to the benchmark (e.g. --messages 100000 --runs 5).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
sdk="$(cd "$here/.." && pwd)"
repo="$(cd "$sdk/.." && pwd)"
cd "$repo"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target}"
mkdir -p "$CARGO_TARGET_DIR"
export CARGO_TARGET_DIR="$(cd "$CARGO_TARGET_DIR" && pwd)"
venv="$CARGO_TARGET_DIR/py-bench-venv"
py="$venv/bin/python"
export PATH="$venv/bin:$PATH"

[ -x "$py" ] || python3 -m venv "$venv"
"$py" -m pip install --quiet --disable-pip-version-check "maturin>=1.9,<2" "websockets>=13,<18"
echo "== building the release wheel"
"$py" -m pip install --quiet --disable-pip-version-check --no-build-isolation \
    --force-reinstall --no-deps ./sdk-python
echo "== benchmark"
cd "$sdk/bench" && "$py" recv_bench.py "$@"
