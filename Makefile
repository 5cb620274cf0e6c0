# Entry points for people and CI. `make test` is what .ci/run runs.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

# helm v4 and kubectl 1.34 unpacked by hack/deps.sh; tests find them on PATH.
TOOLS_BIN := $(CURDIR)/.cache/tools/bin
export PATH := $(TOOLS_BIN):$(PATH)

# Benchmarks are examples named bench_*; add one and `make bench` runs it
# (the judge's own in crates/judge/examples, built without the operator).
BENCHES ?= $(sort $(basename $(notdir $(wildcard examples/bench_*.rs))) \
                  $(notdir $(patsubst %/,%,$(wildcard examples/bench_*/))))
JUDGE_BENCHES ?= $(sort $(basename $(notdir $(wildcard crates/judge/examples/bench_*.rs))))

.PHONY: help deps test lint fmt nextest chart demo crds bench fuzz test-repeat faults chaos

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

deps: ## Install missing tools (prometheus, chromium, lua5.1, helm, kubectl, scipy, nextest)
	@hack/deps.sh >/dev/null

test: ## Everything CI checks: deps, fmt, clippy, all tests (incl. chart checks)
	@hack/deps.sh >/dev/null
	@$(MAKE) --no-print-directory lint
	@$(MAKE) --no-print-directory nextest

lint: ## cargo fmt --check, clippy with warnings as errors (also the operator-only build), crate layering, shellcheck (if installed)
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy -p redblack --no-default-features -- -D warnings
	hack/check-layers.sh
	@if command -v shellcheck >/dev/null; then shellcheck hack/*.sh .ci/run; fi

fmt: ## Format the code
	cargo fmt --all

nextest: ## All tests with nextest (tests/chart.rs runs helm lint/template and kubectl kustomize)
	cargo nextest run --workspace --no-fail-fast

chart: deps ## Only the Helm chart and kustomize checks
	cargo nextest run --no-fail-fast --test chart

demo: deps ## Build and run the demo against the sandbox (a SIMULATOR)
	hack/demo.sh

crds: ## Regenerate crds/*.yaml from the Rust types and copy them into the chart
	hack/crds.sh

bench: ## Run every examples/bench_* in release mode (see docs/benchmarks.md)
	@if [[ -z "$(strip $(BENCHES))" ]]; then echo "no examples/bench_* yet"; fi
	@for b in $(BENCHES); do \
	  echo "== $$b"; \
	  cargo run --release --quiet --example "$$b" || exit 1; \
	done
	@for b in $(JUDGE_BENCHES); do \
	  echo "== $$b (redblack-judge)"; \
	  cargo run --release --quiet -p redblack-judge --example "$$b" || exit 1; \
	done

fuzz: ## The fuzz properties at 20,000 cases each (make test runs a few hundred; docs/reliability.md)
	PROPTEST_CASES=$${PROPTEST_CASES:-20000} cargo nextest run --workspace --no-fail-fast \
	  --test spec_fuzz --test sandbox_patch_fuzz --test judge_properties --test template_fuzz

faults: ## API faults with more Rollouts (FAULTS_ROLLOUTS, default 10) and the Prometheus-down Rollout end to end
	FAULTS_ROLLOUTS=$${FAULTS_ROLLOUTS:-10} cargo nextest run --no-fail-fast --no-capture \
	  --run-ignored all --test api_faults --test prometheus_faults

test-repeat: ## make test RUNS (5) times in a row on a fresh clone beside a CPU burner per core (docs/reliability.md)
	hack/test-repeat.sh $${RUNS:-5} $${BURNERS:-$$(nproc)}

chaos: ## The chaos harness at >= 500 kill points (make test runs ~30; CHAOS_SEED=N replays one; docs/reliability.md)
	CHAOS_POINTS=all cargo test --test chaos killed_at_any_point -- --nocapture
