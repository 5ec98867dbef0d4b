# gmp-edge — two commands on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck system-deps bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# Debian packages the tests need: mbpoll (independent Modbus client) and chromium (page test).
system-deps:
	@bash scripts/system-deps.sh

demo: $(STAMP)
	$(BIN)/gmp-edge demo --config examples/plant.toml

test: $(STAMP) system-deps
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

# every benchmark in turn (each prints its figures against its raw limit; see README)
bench: $(STAMP)
	set -e; for b in bench/*_bench.py; do echo "== $$b"; PYTHONPATH=src $(BIN)/python $$b; done

clean:
	rm -rf $(VENV) var build *.egg-info
