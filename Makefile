# uninet_mm -- from a fresh clone:
#   make demo    set up .venv (cold ~25 min: mmcv 2.1.0 builds from source; warm < 1 min) and run the demo
#   make test    set up .venv and run the fast tests (slow-marked ones: make test-all)
# PYTEST_ARGS adds pytest options, e.g.  make test PYTEST_ARGS='-k safe -x'

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PY ?= .venv/bin/python
PYTEST_ARGS ?=
PYTEST = $(PY) -m pytest tests -q -p no:cacheprovider

.PHONY: setup test test-slow test-all demo selfcheck

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

demo: setup
	@if [ -f tools/run_demo.py ]; then \
	  $(PY) tools/run_demo.py; \
	else \
	  echo "tools/run_demo.py is not there yet: running the self-check instead"; \
	  $(PY) -m uninet_mm.selfcheck; \
	fi

selfcheck:
	$(PY) -m uninet_mm.selfcheck
