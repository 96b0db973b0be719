# tickline's two set-up commands (see README):
#   make demo   build, then run the trading pipeline demo (tickline demo: ~10 s, then counts and latency)
#   make test   build, then run the tests
# Both create .venv with python3 and install tickline into it (editable).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test install system-deps bench bench-micro clean sanitize

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Build requirements go in first so the editable build can reuse its CMake
# build directory (build/) without build isolation: rebuilds take seconds.
# setuptools >= 70.1 has bdist_wheel built in: pip >= 25.3 prepares the
# metadata of sdists without a pyproject.toml (quickfix, fetched at build time)
# through it, and the venv's bundled setuptools 65 fails with "invalid command
# 'bdist_wheel'".
install: $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "scikit-build-core>=0.10" "pybind11>=2.13" "cmake>=3.30" ninja "setuptools>=70.1"
	$(BIN)/python -m pip install -q --no-build-isolation -e ".[test,bench]"

# What the tests need from Debian's packages, installed only when missing.
# libquickfix-dev: QuickFIX, the independent FIX engine the interop tests run against.
DEBIAN_PACKAGES := g++ pkg-config libquickfix-dev openssl tzdata
system-deps:
	@missing=""; for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "tickline: the tests need these Debian packages:$$missing" >&2; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

demo: install
	$(BIN)/tickline demo

test: install system-deps
	$(BIN)/python -m pytest

# pyaeron, the other CPython binding of the same Aeron client, is the named
# peer of `bench ping`; it needs Python >= 3.12 and builds from the same
# pinned sdist the build fetched (~/.cache/tickline).
# pyenv's python3.12 shim refuses to run unless 3.12 is selected: take the
# interpreter itself when pyenv has one.
PYTHON312 ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3.12) python3.12)
PEER     := $(HOME)/.cache/tickline/pyaeron-py312
$(PEER)/bin/python:
	$(PYTHON312) -m venv $(PEER)
	$(PEER)/bin/python -m pip install -q "pyaeron==0.1.0"

bench: install $(PEER)/bin/python
	$(BIN)/tickline bench ping --udp --runs 3 --pyaeron $(PEER)/bin/python

# Micro-benchmarks of hot calls (pytest-benchmark): poll, offer, claim, a codec field read, a batch
# decode, a FIX parse, a consensus step, each beside its peer.  benchmarks/micro is outside pytest's
# testpaths, so `make test` never runs them.  The JSON goes to .benchmarks/micro.json.
bench-micro: install
	mkdir -p .benchmarks
	$(BIN)/python -m pytest benchmarks/micro -q -p no:cacheprovider --benchmark-only \
	  --benchmark-sort=mean --benchmark-json=.benchmarks/micro.json

# The native code under AddressSanitizer and UndefinedBehaviorSanitizer: the
# extension, Aeron and aeronmd built with -fsanitize=address,undefined in
# build-sanitize/ for a venv of their own (.venv-sanitize), then the transport
# and FIX gateway tests run with libasan preloaded into the interpreter (which
# is not instrumented).  Leak checking is off: CPython keeps memory until exit.
# Any sanitizer report fails the run (halt_on_error, no UBSan recovery).
SAN_VENV  := .venv-sanitize
SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g
sanitize: system-deps
	test -x $(SAN_VENV)/bin/python || $(PYTHON) -m venv $(SAN_VENV)
	$(SAN_VENV)/bin/python -m pip install -q --upgrade pip
	$(SAN_VENV)/bin/python -m pip install -q "scikit-build-core>=0.10" "pybind11>=2.13" "cmake>=3.30" ninja "setuptools>=70.1"
	$(SAN_VENV)/bin/python -m pip install -q --no-build-isolation \
	  -C build-dir=build-sanitize/{wheel_tag} -C cmake.build-type=RelWithDebInfo \
	  -C "cmake.define.CMAKE_C_FLAGS=$(SAN_FLAGS)" -C "cmake.define.CMAKE_CXX_FLAGS=$(SAN_FLAGS)" \
	  -C "cmake.define.CMAKE_SHARED_LINKER_FLAGS=-fsanitize=address,undefined" \
	  -C "cmake.define.CMAKE_EXE_LINKER_FLAGS=-fsanitize=address,undefined" \
	  -e ".[test,bench]"
	LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)" \
	  ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:abort_on_error=1:quarantine_size_mb=16 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  $(SAN_VENV)/bin/python -m pytest -q -p no:cacheprovider tests/transport tests/fix_gateway

clean:
	rm -rf build build-sanitize $(VENV) $(SAN_VENV)
