# Two commands matter: `make run` and `make test`. Both bootstrap .venv from a bare Python.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CONFIG ?= config/notifyd.dev.toml

.PHONY: all run test lint types unit install clean bench bench-full

all: test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The daemon needs only the runtime and the embedded PostgreSQL; tests add the dev tools.
$(BIN)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[embedded,fast]'
	touch $@

$(BIN)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[embedded,fast,dev]'
	touch $@ $(BIN)/.installed-run

install: $(BIN)/.installed

run: $(BIN)/.installed-run
	$(BIN)/notifyd run --config $(CONFIG)

lint: install
	$(BIN)/ruff check notifyd tests bench
	$(BIN)/ruff format --check notifyd tests bench

types: install
	$(BIN)/mypy

unit: install
	$(BIN)/pytest -q tests/unit

# The whole gate: lint, types, every test (two workers: the machine has two cores).
test: lint types
	$(BIN)/pytest -q -n 2 --dist loadfile

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache

# Benchmarks print figures against raw baselines measured in the same run (not part of test).
# Every benchmark against its raw baseline, one table (under 10 minutes); bench-full uses
# the issue's sizes (about 25 minutes).
bench: install
	$(BIN)/python bench/run.py

bench-full: install
	$(BIN)/python bench/run.py --full
