#!/usr/bin/env bash
# Installs what `make dist` wrote to dist/ into fresh places, with no Rust
# toolchain reachable, and runs each SDK's quick start against a relay:
#
#   Node    a fresh `npm init` project, `npm install` of the two tarballs
#           (main + linux-x64-gnu), the quick start as ES module and CommonJS
#   Python  a fresh venv, `pip install --no-index` of the wheel
#   Go      a fresh module, `go get` from dist/goproxy, `go build`, run
#
# It also checks that a checkout's sdk-go without its native library fails
# with a message saying what to run. Prints the install time and the size of
# each artifact. `make test-install` runs it after `make dist`.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
dist="$repo/dist"
target="${CARGO_TARGET_DIR:-$repo/target}"
relay_bin="$target/debug/zerorelay"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/Cargo.toml" | head -1)"

[ -x "$relay_bin" ] || { echo "install test: $relay_bin is missing (make test-install builds it)"; exit 1; }
for f in "zerorelay-$version.tgz" "zerorelay-linux-x64-gnu-$version.tgz" "zerorelay-$version.tar.gz" "zerorelay-$version.crate" goproxy; do
    [ -e "$dist/$f" ] || { echo "install test: dist/$f is missing: run make dist"; exit 1; }
done

tmp="$(mktemp -d)"
relay_pid=""
cleanup() {
    if [ -n "$relay_pid" ]; then kill "$relay_pid" 2>/dev/null || true; wait "$relay_pid" 2>/dev/null || true; fi
    chmod -R u+w "$tmp" 2>/dev/null || true # the Go module cache is read-only
    rm -rf "$tmp"
}
trap cleanup EXIT

# No Rust: drop every PATH entry that holds cargo or rustc, and point
# CARGO_HOME and RUSTUP_HOME at empty folders.
clean_path=""
IFS=: read -r -a dirs <<< "$PATH"
for d in "${dirs[@]}"; do
    [ -z "$d" ] && continue
    if [ -e "$d/cargo" ] || [ -e "$d/rustc" ] || [ -d "$d/.cargo" ] || [[ "$d" == *"/.cargo/"* ]]; then continue; fi
    clean_path="${clean_path:+$clean_path:}$d"
done
export PATH="$clean_path"
mkdir -p "$tmp/cargo-home" "$tmp/rustup-home"
export CARGO_HOME="$tmp/cargo-home" RUSTUP_HOME="$tmp/rustup-home"
unset CARGO CARGO_TARGET_DIR RUSTC RUSTUP_TOOLCHAIN RUSTFLAGS
if command -v cargo >/dev/null || command -v rustc >/dev/null; then
    echo "install test: cargo or rustc is still on PATH ($PATH)"; exit 1
fi

# The relay every quick start talks through (the same binary `make run` runs).
"$relay_bin" serve --listen 127.0.0.1:0 > "$tmp/relay.out" 2> "$tmp/relay.err" &
relay_pid=$!
for _ in $(seq 1 100); do
    grep -q '^zerorelay listening on ' "$tmp/relay.out" 2>/dev/null && break
    kill -0 "$relay_pid" 2>/dev/null || { cat "$tmp/relay.err"; exit 1; }
    sleep 0.1
done
ZR_URL="$(sed -n 's/^zerorelay listening on //p' "$tmp/relay.out" | head -1)"
[ -n "$ZR_URL" ] || { echo "install test: the relay did not start"; cat "$tmp/relay.err"; exit 1; }
export ZR_URL

report="$tmp/report"
size() { du -b "$1" | cut -f1 | awk '{printf "%.2f MB", $1 / 1e6}'; }
now() { date +%s.%N; }
took() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }
expect_hello() { # name, output
    if ! grep -qx 'alice: hello' <<< "$2"; then echo "install test: $1 printed: $2"; exit 1; fi
    echo "ok: $1"
}

echo "== Node: npm install of the two tarballs into a fresh project"
mkdir "$tmp/node-app"
(
    cd "$tmp/node-app"
    export npm_config_cache="$tmp/npm-cache" npm_config_update_notifier=false
    npm init -y > /dev/null
    t0="$(now)"
    npm install --no-audit --no-fund --offline \
        "$dist/zerorelay-$version.tgz" "$dist/zerorelay-linux-x64-gnu-$version.tgz" > "$tmp/npm.log" 2>&1 \
        || { cat "$tmp/npm.log"; exit 1; }
    echo "Node: npm install took $(took "$t0")" >> "$report"
    # The addon must come from the platform package, not a build.
    ls node_modules/zerorelay/native | grep -q '\.node$' && { echo "install test: the main package carries an addon"; exit 1; }
    node -e "require.resolve('zerorelay-linux-x64-gnu')" || exit 1
    cp "$here/quickstart.mjs" "$here/quickstart.cjs" .
    expect_hello "Node quick start (ES module)" "$(timeout 60 node quickstart.mjs)"
    expect_hello "Node quick start (CommonJS)" "$(timeout 60 node quickstart.cjs)"
)
echo "== Node: the main package without its platform package says what is missing"
mkdir "$tmp/node-noaddon"
(
    cd "$tmp/node-noaddon"
    export npm_config_cache="$tmp/npm-cache" npm_config_update_notifier=false
    npm init -y > /dev/null
    npm install --no-audit --no-fund --offline --omit=optional "$dist/zerorelay-$version.tgz" > "$tmp/npm2.log" 2>&1 \
        || { cat "$tmp/npm2.log"; exit 1; }
    if node -e "require('zerorelay')" 2> "$tmp/noaddon.err"; then echo "install test: loaded without an addon"; exit 1; fi
    grep -q 'zerorelay-linux-x64-gnu' "$tmp/noaddon.err" || { echo "install test: the error does not name the platform package:"; cat "$tmp/noaddon.err"; exit 1; }
    echo "ok: loading without the platform package names zerorelay-linux-x64-gnu"
)
echo "Node: zerorelay-$version.tgz $(size "$dist/zerorelay-$version.tgz"), zerorelay-linux-x64-gnu-$version.tgz $(size "$dist/zerorelay-linux-x64-gnu-$version.tgz"), addon $(size "$tmp/node-app/node_modules/zerorelay-linux-x64-gnu/zerorelay.linux-x64-gnu.node")" >> "$report"

echo "== Python: pip install of the wheel into a fresh venv"
wheel="$(ls "$dist"/zerorelay-"$version"-*.whl)"
python3 -m venv "$tmp/venv"
t0="$(now)"
"$tmp/venv/bin/pip" install --quiet --disable-pip-version-check --no-index "$wheel"
echo "Python: pip install took $(took "$t0")" >> "$report"
expect_hello "Python quick start" "$(cd "$tmp" && timeout 60 "$tmp/venv/bin/python" "$here/quickstart.py")"
ext="$(ls "$tmp"/venv/lib/python3*/site-packages/zerorelay/_native*.so)"
echo "Python: $(basename "$wheel") $(size "$wheel"), extension $(size "$ext")" >> "$report"

echo "== Go: go get from dist/goproxy into a fresh module"
mkdir "$tmp/go-app"
(
    cd "$tmp/go-app"
    export GOPROXY="file://$dist/goproxy" GOFLAGS=-mod=mod GONOSUMDB='*' \
        GOMODCACHE="$tmp/gomodcache" GOPATH="$tmp/gopath" GOTOOLCHAIN=local
    go mod init example.com/quickstart > /dev/null 2>&1
    cp "$here/go/main.go" .
    t0="$(now)"
    go get "github.com/zerorelay/zerorelay/sdk-go@v$version" > "$tmp/goget.log" 2>&1 || { cat "$tmp/goget.log"; exit 1; }
    echo "Go: go get took $(took "$t0")" >> "$report"
    t0="$(now)"
    go build -o quickstart . 2> "$tmp/gobuild.log" || { cat "$tmp/gobuild.log"; exit 1; }
    echo "Go: go build of the quick start took $(took "$t0")" >> "$report"
    expect_hello "Go quick start" "$(timeout 60 ./quickstart)"
    lib="$(ls "$tmp"/gomodcache/github.com/zerorelay/zerorelay/sdk-go@v"$version"/lib/linux_amd64/libzerorelay_c.a)"
    CGO_LDFLAGS=-Wl,--gc-sections go build -ldflags='-s -w' -o quickstart-small .
    expect_hello "Go quick start (built with --gc-sections, -s -w)" "$(timeout 60 ./quickstart-small)"
    echo "Go: module zip $(size "$dist/goproxy/github.com/zerorelay/zerorelay/sdk-go/@v/v$version.zip"), static library $(size "$lib"), quick start binary $(size quickstart) ($(size quickstart-small) with CGO_LDFLAGS=-Wl,--gc-sections and -ldflags='-s -w')" >> "$report"
)

echo "== Go: a checkout without the native library says what to run"
mkdir "$tmp/go-nolib"
(cd "$repo/sdk-go" && git ls-files -co --exclude-standard . | grep -v '^release/' | grep -v '\.a$' | tar -cf - -T -) | tar -xf - -C "$tmp/go-nolib"
if (cd "$tmp/go-nolib" && GOFLAGS=-mod=mod GOMODCACHE="$tmp/gomodcache" GOPROXY="file://$dist/goproxy" GONOSUMDB='*' go build . > "$tmp/nolib.log" 2>&1); then
    echo "install test: sdk-go built without its native library"; exit 1
fi
grep -q 'make go-lib' "$tmp/nolib.log" || { echo "install test: the missing-library error does not say what to run:"; cat "$tmp/nolib.log"; exit 1; }
echo "ok: a missing library names make go-lib"

echo "Python: sdist zerorelay-$version.tar.gz $(size "$dist/zerorelay-$version.tar.gz"); Rust: zerorelay-$version.crate $(size "$dist/zerorelay-$version.crate")" >> "$report"

echo "== install times and sizes (no Rust toolchain on PATH)"
cat "$report"
