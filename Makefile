# ml4ms: `make run` (the main job) and `make test` work on a fresh clone with nothing installed by hand.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Real data lives beside the repository in CI and on development machines; elsewhere the
# dataset loaders download it (pinned URL + sha256) into a cache.
ML4MS_DATA_DIR ?= $(shell test -d ../shared/data && cd ../shared/data && pwd)
export ML4MS_DATA_DIR

.PHONY: run test bench install install-test postgres clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# torch first, pinned: a package that asks for any torch then finds it satisfied.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install --quiet -e ".[test]" "torch==2.13.0"
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

run: install
	$(BIN)/ml4ms demo --output runs/demo

# The ASE-database tests start a throwaway PostgreSQL server; install one if the machine lacks it.
postgres:
	@command -v pg_ctl >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || \
	  (export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && \
	   apt-get install -y -qq --no-install-recommends postgresql >/dev/null)

test: install-test postgres
	$(BIN)/python -m pytest -n 2 --dist loadfile -q

$(VENV)/.installed-bench: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install --quiet -e ".[test,bench]" "torch==2.13.0"
	touch $@

bench: install-test $(VENV)/.installed-bench
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) runs .pytest_cache
