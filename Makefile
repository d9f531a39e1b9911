# Zerorelay: one command list. `make help` prints the targets.

CARGO ?= cargo
# One target directory for the workspace and (later) the bindings.
export CARGO_TARGET_DIR ?= $(CURDIR)/target

.PHONY: help run test test-rust lint fmt gen check-gen

help: ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

run: ## Run the relay on 127.0.0.1:8080 (release build).
	$(CARGO) run --release -p zerorelay --features cli --bin zerorelay -- serve

test: test-rust ## Run every test in the repo.

test-rust: ## Rust tests: unit, protocol vectors, integration, CLI, examples.
	$(CARGO) test --workspace --all-features

lint: ## Check formatting and clippy (warnings are errors).
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --all-features -- -D warnings

fmt: ## Format the Rust code.
	$(CARGO) fmt --all

gen: ## Regenerate bindings/c/include/zerorelay.h from the source.
	ZERORELAY_UPDATE_HEADER=1 $(CARGO) test -q -p zerorelay-c --test header

check-gen: ## Fail when a generated file is stale.
	$(CARGO) test -q -p zerorelay-c --test header
