# Two entry points for a newcomer: `make train` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install install-dev train test test-all lint typecheck bench

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# The `plots` extra (matplotlib) is part of the newcomer's install: `make train` ends by printing its loss plot.
install: $(BIN)/python
	$(BIN)/pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e '.[plots]'

install-dev: $(BIN)/python
	$(BIN)/pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'

train: install
	$(BIN)/trainforge train

test: install-dev
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

test-all: install-dev
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup -m ''

lint: install-dev
	$(BIN)/ruff check src tests benchmarks utils cli
	$(BIN)/mypy

bench: install-dev
	$(BIN)/python benchmarks/bench_overhead.py
