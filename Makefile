# The two commands a new user needs: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
WORKSPACE ?= workspace
MEMBERS ?= 2000

.PHONY: venv demo test lint format bench docs clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

## Create the environment, generate the demo clinic chain, run the pipeline, serve the API.
demo: venv
	$(BIN)/mecdp --workspace $(WORKSPACE) demo --members $(MEMBERS)

## Lint, type-check and run the whole test suite (Spark and slow suites included).
test: venv lint
	$(BIN)/pytest

lint: venv
	$(BIN)/ruff check mecdp tests benchmarks
	$(BIN)/ruff format --check mecdp tests benchmarks
	$(BIN)/mypy

format: venv
	$(BIN)/ruff check --fix mecdp tests benchmarks
	$(BIN)/ruff format mecdp tests benchmarks

## Reference docs generated from the code (tests/test_docs.py keeps them current).
docs: venv
	$(BIN)/python -m mecdp.docs

## Benchmarks print tables; they are not part of the test suite.
bench: venv
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
