# Thin wrapper over CMake. `make` builds build/rqlited and build/rqlite,
# `make run` starts a node on localhost:4001, `make test` runs every test.

BUILD     ?= build
DATA      ?= $(HOME)/node.1
JOBS      ?= $(shell nproc)
PKGS       = build-essential cmake pkg-config libraft-dev libuv1-dev \
             libmicrohttpd-dev libjansson-dev libsqlite3-dev libedit-dev \
             libcurl4-openssl-dev libcmocka-dev zlib1g-dev \
             python3 python3-pytest python3-requests tmux sqlite3
PC_LIBS    = raft libuv libmicrohttpd jansson sqlite3 libedit libcurl cmocka zlib

.PHONY: all deps build run test unit system asan clean bench

all: build

# Install the Debian packages we build and test with (only when something is missing).
deps:
	@if pkg-config --exists $(PC_LIBS) 2>/dev/null && command -v cmake >/dev/null \
	    && command -v tmux >/dev/null && /usr/bin/python3 -c 'import pytest, requests' 2>/dev/null \
	    && command -v node >/dev/null && command -v npm >/dev/null; then \
	  echo "deps: all present"; \
	else \
	  SUDO=$$(if [ "$$(id -u)" != 0 ]; then echo sudo; fi); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(PKGS) && \
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

# bench/run compares with etcd: Debian's etcd-server, installed here only.
bench: build
	@command -v etcd >/dev/null || { SUDO=$$(if [ "$$(id -u)" != 0 ]; then echo sudo; fi); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq etcd-server; }
	RQ_BUILD=$(abspath $(BUILD)) bench/run $(BENCH_FLAGS)

unit: build
	cd $(BUILD) && ctest --output-on-failure

system: build
	RQ_BUILD=$(abspath $(BUILD)) /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/system

test: build
	cd $(BUILD) && ctest --output-on-failure
	RQ_BUILD=$(abspath $(BUILD)) /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/system

asan:
	$(MAKE) BUILD=build-asan CMAKE_FLAGS="-DRQ_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug" build

clean:
	rm -rf build build-asan
