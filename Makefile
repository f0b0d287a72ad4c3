# Human entry points. Every target creates and reuses .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.PHONY: demo test lint typecheck contracts pytest bench docs unasync clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-embedded: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[embedded]'
	touch $@

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev,embedded]'
	touch $@

demo: $(VENV)/.installed-embedded
	$(BIN)/eventstore demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

contracts: $(STAMP)
	$(BIN)/lint-imports

pytest: $(STAMP)
	$(BIN)/pytest

test: lint typecheck contracts pytest

$(VENV)/.installed-bench: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[bench]'
	touch $@

# quick by default; `make bench BENCH_ARGS=--full` for the issue's sizes everywhere
bench: $(VENV)/.installed-bench
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

# the sync front's flow modules, generated from eventstore/_async (tests check they are current)
unasync: $(STAMP)
	$(BIN)/python tests/unasync.py

docs: $(STAMP)
	$(BIN)/pytest tests/test_docs.py

clean:
	rm -rf $(VENV) .eventstore .pytest_cache .mypy_cache .ruff_cache
