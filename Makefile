# Zerorelay: one command list. `make help` prints the targets.

CARGO ?= cargo
# One target directory for the workspace and (later) the bindings.
export CARGO_TARGET_DIR ?= $(CURDIR)/target

# promtool checks the /metrics exposition and docs/ops/alerts.yml in the
# Rust tests; `make promtool` unpacks it from Debian's prometheus package.
export PROMTOOL ?= $(CARGO_TARGET_DIR)/tools/usr/bin/promtool

GO ?= go
# What users install: `make dist` writes it here.
DIST := $(CURDIR)/dist
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
PY_VENV := $(CARGO_TARGET_DIR)/py-venv
GO_LIB_DIR := sdk-go/lib/$(shell $(GO) env GOOS 2>/dev/null)_$(shell $(GO) env GOARCH 2>/dev/null)

.PHONY: help run dist dist-node dist-python dist-go dist-crate test-install promtool bench-rbac bench-metrics test test-rust test-go test-node test-python go-lib node-addon bench bench-profile bench-build bench-go bench-node bench-python test-interop lint fmt gen check-gen

help: ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

run: ## Run the relay on 127.0.0.1:8080 (release build).
	$(CARGO) run --release -p zerorelay --features cli --bin zerorelay -- serve

test: test-rust test-go test-node test-python test-interop test-install ## Run every test in the repo.

test-rust: promtool ## Rust tests: unit, protocol vectors, integration, CLI, examples.
	$(CARGO) test --all-features

dist: ## Build what users install into dist/ (from scratch): npm tarballs, Python wheel and sdist, Go module proxy folder, the crate.
	rm -rf $(DIST)
	$(MAKE) dist-node dist-python dist-go dist-crate
	@ls -l $(DIST)

dist-node: ## dist/: zerorelay-<v>.tgz and zerorelay-linux-x64-gnu-<v>.tgz (napi-rs layout; the addon built with the dist profile).
	$(CARGO) build -p zerorelay-node --profile dist --lib
	node sdk-node/scripts/dist.js --addon $(CARGO_TARGET_DIR)/dist/libzerorelay_node.so --out $(DIST)

dist-python: ## dist/: the abi3 wheel (CPython >= 3.9, manylinux, checked by maturin's auditwheel) and the sdist.
	test -x $(PY_VENV)/bin/python || python3 -m venv $(PY_VENV)
	$(PY_VENV)/bin/pip install --quiet --disable-pip-version-check "maturin>=1.9,<2"
	cd sdk-python && $(PY_VENV)/bin/maturin build --profile dist --auditwheel check --out $(DIST)
	cd sdk-python && $(PY_VENV)/bin/maturin sdist --out $(DIST)

dist-go: ## dist/goproxy: sdk-go as the module proxy serves it (x/mod/zip), with the stripped static library in lib/linux_amd64/.
	$(CARGO) rustc -p zerorelay-c --profile dist --lib --crate-type staticlib
	rm -rf $(DIST)/.stage-go $(DIST)/goproxy && mkdir -p $(DIST)/.stage-go/lib/linux_amd64
	# The files git tracks (and new ones it does not ignore), without the
	# release tool's own module and any library a local build left.
	cd sdk-go && git ls-files -co --exclude-standard . | grep -v -e '^release/' -e '\.a$$' | tar -cf - -T - | tar -xf - -C $(DIST)/.stage-go
	cp $(CARGO_TARGET_DIR)/dist/libzerorelay_c.a $(DIST)/.stage-go/lib/linux_amd64/
	strip --strip-debug $(DIST)/.stage-go/lib/linux_amd64/libzerorelay_c.a
	cd sdk-go/release && $(GO) run . -src $(DIST)/.stage-go -version v$(VERSION) -out $(DIST)/goproxy -time $$(git log -1 --format=%cI)
	rm -rf $(DIST)/.stage-go

dist-crate: ## dist/zerorelay-<v>.crate: `cargo package` of the core crate (what crates.io would get), verified by building it.
	$(CARGO) package -p zerorelay --allow-dirty
	mkdir -p $(DIST) && cp $(CARGO_TARGET_DIR)/package/zerorelay-$(VERSION).crate $(DIST)/

test-install: dist ## Install each dist/ artifact into a fresh place with no Rust toolchain and run its quick start against a relay.
	$(CARGO) build -p zerorelay --all-features --bin zerorelay
	bash tests/install/run.sh

promtool: ## promtool for the metrics tests, unpacked from Debian's prometheus package into target/tools.
	@test -x $(PROMTOOL) || ( mkdir -p $(CARGO_TARGET_DIR)/tools && cd $(CARGO_TARGET_DIR)/tools \
	  && (apt-get download prometheus 2>/dev/null || (apt-get update -qq && apt-get download prometheus)) \
	  && dpkg -x prometheus_*.deb . && rm -f prometheus_*.deb && $(PROMTOOL) --version )

go-lib: ## Build the C ABI library for the Go SDK from source (debug; PROFILE=release for benchmarks).
	$(CARGO) build $(if $(filter release,$(PROFILE)),--release,) -p zerorelay-c --lib
	mkdir -p $(GO_LIB_DIR)
	cp $(CARGO_TARGET_DIR)/$(if $(filter release,$(PROFILE)),release,debug)/libzerorelay_c.a $(GO_LIB_DIR)/

test-go: go-lib ## Go SDK tests (with -race) and the Go example, on a library built from current code.
	cd sdk-go && $(GO) vet ./... && $(GO) test -race -count=1 ./...
	cd examples/go-chat && $(GO) vet ./... && $(GO) test -race -count=1 ./...

node-addon: ## Install the Node SDK's npm packages and build its addon from source (debug; PROFILE=release for benchmarks).
	cd sdk-node && npm ci --ignore-scripts --no-audit --no-fund
	cd sdk-node && ZERORELAY_BUILD_PROFILE=$(if $(filter release,$(PROFILE)),release,debug) node scripts/build.js --force

test-node: node-addon ## Node SDK: node --test suites, tsc on the declarations, the packed tarball, the example.
	git diff --exit-code -- sdk-node/native/index.js sdk-node/native/index.d.ts || (echo "sdk-node/native is stale: commit the regenerated files"; exit 1)
	$(CARGO) test -q -p zerorelay-node --test options || (echo "sdk-node's option table is stale: run make gen and commit"; exit 1)
	cd sdk-node && npx tsc -p test/tsconfig.json
	cd sdk-node && node --test test/*.test.js
	cd examples/node-chat && npm install --no-audit --no-fund --offline --ignore-scripts && node --test

test-python: ## Python SDK: debug build into target/py-venv; ruff, mypy, stubtest, pytest (incl. a wheel into a fresh venv).
	bash sdk-python/scripts/test.sh

test-interop: ## One relay, a client in each language through its SDK (after the other test targets built them).
	$(CARGO) build --all-features -p zerorelay --example interop_peer
	cd tests/interop/go && $(GO) vet ./... && $(GO) build -o $(CARGO_TARGET_DIR)/interop-go-peer .
	$(CARGO_TARGET_DIR)/py-venv/bin/ruff check --config sdk-python/pyproject.toml tests/interop
	$(CARGO_TARGET_DIR)/py-venv/bin/ruff format --check --config sdk-python/pyproject.toml tests/interop
	$(CARGO_TARGET_DIR)/py-venv/bin/python -m pytest -q tests/interop

bench: bench-build ## Benchmark suite (not part of test): writes docs/BENCHMARKS.md and docs/benchmarks.png.
	$(CARGO_TARGET_DIR)/bench-venv/bin/python bench/run.py

bench-profile: bench-build ## Only the benchmark profile (callgrind, perf stat), then docs/BENCHMARKS.md again.
	$(CARGO_TARGET_DIR)/bench-venv/bin/python bench/run.py --profile

bench-rbac: bench-build ## Permission checks: ns and allocations per check (200 patterns), and fan-out with 20 roles against none.
	$(CARGO_TARGET_DIR)/release/rbac_check
	$(CARGO_TARGET_DIR)/bench-venv/bin/python bench/run.py --rbac

bench-metrics: bench-build ## Fan-out with metrics on against off (and the bare relay), in one run.
	$(CARGO_TARGET_DIR)/bench-venv/bin/python bench/run.py --metrics

bench-build:
	$(CARGO) build --release -p zerorelay --features cli --bin zerorelay
	$(CARGO) build --release -p zerorelay-bench
	cd bench/node && npm ci --no-audit --no-fund
	test -x $(CARGO_TARGET_DIR)/bench-venv/bin/python || python3 -m venv $(CARGO_TARGET_DIR)/bench-venv
	$(CARGO_TARGET_DIR)/bench-venv/bin/pip install --quiet matplotlib
	# The profile's tools, from the OS packages (Debian: perf is linux-perf).
	command -v valgrind >/dev/null || (apt-get update && apt-get install -y valgrind)
	command -v perf >/dev/null || (apt-get update && apt-get install -y linux-perf)

bench-go: ## Go SDK receive rate against gorilla/websocket (release library).
	$(MAKE) go-lib PROFILE=release
	cd sdk-go && $(GO) test -run '^$$' -bench Receive -benchtime 200000x -count 3 .
	$(MAKE) go-lib

bench-node: ## Node SDK receive rate against the ws package (release addon).
	$(MAKE) node-addon PROFILE=release
	cd sdk-node && node bench/recv.js
	$(MAKE) node-addon

bench-python: ## Python SDK receive rate against the websockets package (release build).
	bash sdk-python/scripts/bench.sh

lint: ## Check formatting, clippy (warnings are errors), gofmt and go vet.
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --all-features -- -D warnings
	test -z "$$(gofmt -l sdk-go examples/go-chat tests/interop/go)" || (gofmt -l sdk-go examples/go-chat tests/interop/go; exit 1)

fmt: ## Format the Rust code.
	$(CARGO) fmt --all

gen: ## Regenerate the C header (and its copy in sdk-go/include) and the Node SDK's option table and ClientOptions declarations.
	ZERORELAY_UPDATE_HEADER=1 $(CARGO) test -q -p zerorelay-c --test header
	ZERORELAY_UPDATE_OPTIONS=1 $(CARGO) test -q -p zerorelay-node --test options

check-gen: ## Fail when a generated file is stale.
	$(CARGO) test -q -p zerorelay-c --test header
	$(CARGO) test -q -p zerorelay-node --test options
