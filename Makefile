# Thin wrapper over CMake. `make` builds build/rqlited and build/rqlite,
# `make run` starts a node on localhost:4001, `make test` runs every test.

BUILD     ?= build
DATA      ?= $(HOME)/node.1
JOBS      ?= $(shell nproc)
PKGS       = build-essential cmake pkg-config libraft-dev libuv1-dev \
             libmicrohttpd-dev libjansson-dev libsqlite3-dev libedit-dev \
             libcurl4-openssl-dev libcmocka-dev zlib1g-dev liblz4-dev libgnutls28-dev libcrypt-dev libarchive-dev \
             python3 python3-pytest python3-requests tmux sqlite3 openssl \
             clang libclang-rt-14-dev
# What the console and metrics tests drive: a real browser and Prometheus.
TEST_PKGS  = chromium chromium-driver python3-selenium prometheus
# `make asan test` (or `make asan chaos`): the same, built with ASan+UBSan.
# (Before the rules: their targets name $(BUILD) when they are read.)
ifneq ($(filter asan,$(MAKECMDGOALS)),)
BUILD      := build-asan
CMAKE_FLAGS := -DRQ_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
export RQ_SANITIZED := 1
endif
PC_LIBS    = raft libuv libmicrohttpd gnutls jansson sqlite3 libedit libcurl cmocka zlib liblz4 libcrypt libarchive

.PHONY: all deps build run test unit system hostile asan clean bench chaos fuzz conformance

all: build

# Install the Debian packages we build and test with (only when something is missing).
deps:
	@if pkg-config --exists $(PC_LIBS) 2>/dev/null && command -v cmake >/dev/null \
	    && command -v clang >/dev/null && dpkg -s libclang-rt-14-dev >/dev/null 2>&1 \
	    && command -v tmux >/dev/null && command -v openssl >/dev/null && /usr/bin/python3 -c 'import pytest, requests' 2>/dev/null \
	    && command -v node >/dev/null && command -v npm >/dev/null \
	    && command -v chromedriver >/dev/null && command -v promtool >/dev/null \
	    && /usr/bin/python3 -c 'import selenium' 2>/dev/null; then \
	  echo "deps: all present"; \
	else \
	  SUDO=$$(if [ "$$(id -u)" != 0 ]; then echo sudo; fi); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(PKGS) $(TEST_PKGS) && \
	  { command -v node >/dev/null && command -v npm >/dev/null || \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq nodejs npm; }; \
	fi

$(BUILD)/Makefile: CMakeLists.txt
	@$(MAKE) --no-print-directory deps
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)

build: $(BUILD)/Makefile
	cmake --build $(BUILD) -j $(JOBS)

run: build
	$(BUILD)/rqlited -node-id 1 $(DATA)

# bench/run compares with etcd and dqlite: Debian's etcd-server and go-dqlite
# (dqlite-demo), installed here only; one that cannot be installed leaves its
# column of the table n/a, with the reason.
bench: build
	@SUDO=$$(if [ "$$(id -u)" != 0 ]; then echo sudo; fi); updated=; \
	for want in etcd:etcd-server dqlite-demo:go-dqlite; do \
	  command -v $${want%%:*} >/dev/null && continue; \
	  [ -n "$$updated" ] || { $$SUDO apt-get update -qq; updated=1; }; \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $${want#*:} || \
	    echo "bench: could not install $${want#*:}: bench/run will say n/a for it"; \
	done
	RQ_BUILD=$(abspath $(BUILD)) bench/run $(BENCH_FLAGS)

unit: build
	cd $(BUILD) && ctest --output-on-failure

system: build
	RQ_BUILD=$(abspath $(BUILD)) /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/system

# Hostile input (tests/hostile): each input of inputs.py to the leader and a
# follower of one 3-node cluster, which must stay up, consistent and writable.
hostile: build
	RQ_BUILD=$(abspath $(BUILD)) /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/hostile

# Fault injection: CHAOS_FLAGS="--duration 1200 --faults 150 --seed 7" for a long run.
CHAOS_FLAGS ?= --duration 120 --seed 1
chaos: build
	/usr/bin/python3 tests/chaos/linearizability.py
	/usr/bin/python3 tests/chaos/chaos.py --build $(abspath $(BUILD)) $(CHAOS_FLAGS)

# libFuzzer targets (tests/fuzz), built with clang into build-fuzz and run
# FUZZ_SECONDS each from the seed corpus; a finding fails with its input
# saved in build-fuzz/.
FUZZ_SECONDS ?= 60
# Each target's time within `make test` (keeps the whole run under 20 minutes).
TEST_FUZZ_SECONDS ?= 20
FUZZERS       = statements codec flags http replica
fuzz:
	@$(MAKE) --no-print-directory deps
	@test -f build-fuzz/Makefile || CC=clang cmake -S . -B build-fuzz -DRQ_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build build-fuzz -j $(JOBS) --target $(addprefix fuzz_,$(FUZZERS))
	@for f in $(FUZZERS); do \
	  mkdir -p build-fuzz/work-$$f; \
	  echo "fuzz_$$f: $(FUZZ_SECONDS) s"; \
	  build-fuzz/fuzz_$$f -max_total_time=$(FUZZ_SECONDS) -timeout=10 -close_fd_mask=3 \
	    -artifact_prefix=build-fuzz/ build-fuzz/work-$$f tests/fuzz/corpus/$$f \
	    > build-fuzz/fuzz_$$f.log 2>&1 || { tail -40 build-fuzz/fuzz_$$f.log; exit 1; }; \
	  grep -E '^Done' build-fuzz/fuzz_$$f.log; \
	done

# rqlite's own end-to-end suites (its system_test/e2e) against this build, through
# the shared runner beside the checkout and a bare mirror of rqlite (PEER_MIRROR,
# else .mirror beside shared/); SUITES="e2e-single e2e-joining" for some of them.
# Prints "SUITE: N passed, N failed, N skipped" per suite and exits 0 either way;
# without the runner or the mirror (a CI clone elsewhere) it says it skipped them.
# Not part of `make test`.
SHARED      ?= $(abspath ../shared)
PEER_MIRROR ?= $(abspath $(SHARED)/../.mirror)
SUITES      ?=
conformance: build
	@if [ ! -x "$(SHARED)/conformance/run.sh" ]; then \
	  echo "conformance: skipped: rqlite's e2e suites not run, no runner at $(SHARED)/conformance/run.sh (set SHARED=)"; \
	elif [ ! -d "$(PEER_MIRROR)/rqlite+rqlite/repo" ]; then \
	  echo "conformance: skipped: rqlite's e2e suites not run, no mirror of rqlite at $(PEER_MIRROR)/rqlite+rqlite (set PEER_MIRROR=)"; \
	else \
	  PEER_MIRROR="$(PEER_MIRROR)" "$(SHARED)/conformance/run.sh" $(BUILD) $(SUITES); \
	fi

test: build
	cd $(BUILD) && ctest --output-on-failure
	RQ_BUILD=$(abspath $(BUILD)) /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/system
	RQ_BUILD=$(abspath $(BUILD)) /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/hostile
	/usr/bin/python3 tests/chaos/linearizability.py
	/usr/bin/python3 tests/chaos/chaos.py --build $(abspath $(BUILD)) $(CHAOS_FLAGS)
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=$(TEST_FUZZ_SECONDS)

asan: build

clean:
	rm -rf build build-asan build-fuzz
