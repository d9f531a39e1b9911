# Zerorelay: one command list. `make help` prints the targets.

CARGO ?= cargo
# One target directory for the workspace and (later) the bindings.
export CARGO_TARGET_DIR ?= $(CURDIR)/target

GO ?= go
GO_LIB_DIR := sdk-go/lib/$(shell $(GO) env GOOS 2>/dev/null)_$(shell $(GO) env GOARCH 2>/dev/null)

.PHONY: help run test test-rust test-go go-lib bench bench-go lint fmt gen check-gen

help: ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

run: ## Run the relay on 127.0.0.1:8080 (release build).
	$(CARGO) run --release -p zerorelay --features cli --bin zerorelay -- serve

test: test-rust test-go ## Run every test in the repo.

test-rust: ## Rust tests: unit, protocol vectors, integration, CLI, examples.
	$(CARGO) test --all-features

go-lib: ## Build the C ABI library for the Go SDK from source (debug; PROFILE=release for benchmarks).
	$(CARGO) build $(if $(filter release,$(PROFILE)),--release,) -p zerorelay-c --lib
	mkdir -p $(GO_LIB_DIR)
	cp $(CARGO_TARGET_DIR)/$(if $(filter release,$(PROFILE)),release,debug)/libzerorelay_c.a $(GO_LIB_DIR)/

test-go: go-lib ## Go SDK tests (with -race) and the Go example, on a library built from current code.
	cd sdk-go && $(GO) vet ./... && $(GO) test -race -count=1 ./...
	cd examples/go-chat && $(GO) vet ./... && $(GO) test -race -count=1 ./...

bench: ## Benchmark suite (not part of test): writes docs/BENCHMARKS.md and docs/benchmarks.png.
	$(CARGO) build --release -p zerorelay --features cli --bin zerorelay -p zerorelay-bench
	cd bench/node && npm ci --no-audit --no-fund
	test -x $(CARGO_TARGET_DIR)/bench-venv/bin/python || python3 -m venv $(CARGO_TARGET_DIR)/bench-venv
	$(CARGO_TARGET_DIR)/bench-venv/bin/pip install --quiet matplotlib
	$(CARGO_TARGET_DIR)/bench-venv/bin/python bench/run.py

bench-go: ## Go SDK receive rate against gorilla/websocket (release library).
	$(MAKE) go-lib PROFILE=release
	cd sdk-go && $(GO) test -run '^$$' -bench Receive -benchtime 200000x -count 3 .
	$(MAKE) go-lib

lint: ## Check formatting, clippy (warnings are errors), gofmt and go vet.
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --all-features -- -D warnings
	test -z "$$(gofmt -l sdk-go examples/go-chat)" || (gofmt -l sdk-go examples/go-chat; exit 1)

fmt: ## Format the Rust code.
	$(CARGO) fmt --all

gen: ## Regenerate the C header (bindings/c/include and its copy in sdk-go/include).
	ZERORELAY_UPDATE_HEADER=1 $(CARGO) test -q -p zerorelay-c --test header

check-gen: ## Fail when a generated file is stale.
	$(CARGO) test -q -p zerorelay-c --test header
