# gmp-edge — two commands on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# the product alone (what `make demo` and an edge box need) and the test tools on top
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: demo test lint format typecheck system-deps bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $(STAMP)

$(TEST_STAMP): $(STAMP) pyproject.toml
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(TEST_STAMP)

# Debian packages the tests talk to (scripts/system-deps.sh lists them); fails when one is missing.
system-deps:
	@bash scripts/system-deps.sh

demo: $(STAMP)
	$(BIN)/gmp-edge demo --config examples/plant.toml

test: lint system-deps
	$(BIN)/pytest

lint: $(TEST_STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

# rewrites the tree in the one formatting `make lint` checks
format: $(TEST_STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

# every benchmark in turn (each prints its figures against its raw limit; see README)
bench: $(TEST_STAMP)
	set -e; for b in bench/*_bench.py; do echo "== $$b"; PYTHONPATH=src $(BIN)/python $$b; done

clean:
	rm -rf $(VENV) var build *.egg-info
