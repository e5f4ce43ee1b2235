# uninet_mm -- from a fresh clone:
#   make demo    set up .venv (cold ~25 min: mmcv 2.1.0 builds from source; warm < 1 min) and run the demo
#   make test    set up .venv and run the fast tests (slow-marked ones: make test-all)
#   make lint    ruff over the code (CI runs it before the tests)
#   make bench   the backbone benchmark of docs/performance.md (800x1216, 2 threads, ~15 min)
# PYTEST_ARGS adds pytest options, e.g.  make test PYTEST_ARGS='-k safe -x'

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PY ?= .venv/bin/python
PYTEST_ARGS ?=
PYTEST = $(PY) -m pytest tests -q -p no:cacheprovider

.PHONY: setup test test-slow test-all lint demo selfcheck bench

setup:
	bash tools/setup_env.sh

# pytest exits 5 when it collected no test: that is a failure here, said out loud.
define run_pytest
	@echo '$(PYTEST) $(1) $(PYTEST_ARGS)'
	@rc=0; $(PYTEST) $(1) $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "!! pytest collected no tests (exit 5): failing" >&2; fi; \
	exit $$rc
endef

test: setup
	$(call run_pytest,-m "not slow")

test-slow: setup
	$(call run_pytest,-m slow)

test-all: setup
	$(call run_pytest,)

# ruff (ruff.toml: pycodestyle, pyflakes and isort order, as OpenMMLab's flake8 + isort);
# `make lint RUFF_ARGS=--fix` applies the mechanical fixes
RUFF_ARGS ?=
lint: setup
	$(PY) -m ruff check . $(RUFF_ARGS)

demo: setup
	@if [ -f tools/run_demo.py ]; then \
	  $(PY) tools/run_demo.py; \
	else \
	  echo "tools/run_demo.py is not there yet: running the self-check instead"; \
	  $(PY) -m uninet_mm.selfcheck; \
	fi

selfcheck:
	$(PY) -m uninet_mm.selfcheck

bench: setup
	$(PY) tools/benchmark_backbones.py --models uninet_b1 uninet_b3 swin_t pvt_tiny resnet50 \
	    released_b1 released_b3 --iters 3 --rounds 2 --deploy --out docs/bench/cpu_deploy.json --force
