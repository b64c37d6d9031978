# tunnelswarm — the README's commands. `make demo` and `make test` work on a fresh
# machine: they create .venv, build the Rust extension (release, incremental) and go.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.deps-stamp
export PATH := $(HOME)/.cargo/bin:$(PATH)

.PHONY: demo demo-ocserv test lint fmt build venv peers cargo-test pytest stubtest bench bench-capacity fuzz clean

$(STAMP): pyproject.toml Cargo.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip "maturin>=1.5,<2"
	$(BIN)/maturin develop --release -q --extras dev,ray
	touch $(STAMP)

venv: $(STAMP)

# Release build of the extension, installed editable into .venv (cargo is incremental).
build: $(STAMP)
	$(BIN)/maturin develop --release -q

# Real peers for the interop tests and the demo (Debian packages; needs root).
peers:
	@if command -v ocserv >/dev/null && command -v openconnect >/dev/null && command -v tshark >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections 2>/dev/null || true; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ocserv openconnect tshark >/dev/null; \
	else echo "peers: ocserv/openconnect/tshark missing and cannot install them (not root or no apt-get); interop tests will skip"; fi

# The main job: emulated clients against the built-in mock ASA, in-process (no root needed).
demo: build
	$(BIN)/python -m tunnelswarm.demo

# One emulated client against a throwaway real ocserv in a network namespace (root).
demo-ocserv: build peers
	$(BIN)/python -m tunnelswarm.testing.demo

lint: $(STAMP)
	cargo fmt --all -- --check
	cargo clippy --all-targets --workspace -- -D warnings
	$(BIN)/ruff check python tests benches examples
	$(BIN)/ruff format --check python tests benches examples
	$(BIN)/mypy --strict python/tunnelswarm

stubtest: build
	$(BIN)/python -m mypy.stubtest tunnelswarm._core --allowlist .mypy-stubtest-allowlist

fmt: $(STAMP)
	cargo fmt --all
	$(BIN)/ruff format python tests benches examples
	$(BIN)/ruff check --fix python tests benches examples

cargo-test:
	cargo test --workspace --exclude tunnelswarm-py

# pytest exit 5 = nothing collected: always an error here (the suite is never empty).
pytest: build peers
	@set +e; $(BIN)/python -m pytest -q -p no:cacheprovider tests; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: treating as failure"; exit 1; fi; exit $$rc

test: lint stubtest cargo-test pytest

# Benchmarks print ratios against a peer measured in the same run; they assert nothing.
bench: build
	$(BIN)/python benches/bench_cstp_datapath.py
	$(BIN)/python benches/bench_dtls_vs_openssl.py
	$(BIN)/python benches/bench_mock_asa_capacity.py
	$(BIN)/python benches/bench_client_scale.py
	$(BIN)/python benches/bench_datapath_pps.py
	$(BIN)/python benches/bench_setup_cost.py

# One mock ASA process on one core holding 10,000 sessions (CSTP + DTLS, DPD/keepalive).
bench-capacity: build
	$(BIN)/python benches/bench_mock_asa_capacity.py --sessions $(SESSIONS)

# cargo-fuzz on every parser, bounded: FUZZ_SECONDS per target (stable toolchain via RUSTC_BOOTSTRAP).
FUZZ_SECONDS ?= 20
SESSIONS ?= 10000
FUZZ_TARGETS = $(shell sed -n 's/^name = "\(.*\)"/\1/p' rust/fuzz/Cargo.toml | grep -v tunnelswarm-fuzz)
fuzz:
	@command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz
	cd rust && for t in $(FUZZ_TARGETS); do \
		RUSTC_BOOTSTRAP=1 cargo fuzz run -O --fuzz-dir fuzz $$t -- -max_total_time=$(FUZZ_SECONDS) || exit 1; done

clean:
	cargo clean
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
