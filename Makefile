# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: run test check format bench bench-quick bench-fleet es-start es-stop es-status clean

$(INSTALLED): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

# The C extension (setup.py, logspace/_transcode.c), built again when its source changes.
EXTENSION := $(VENV)/.extension-built
$(EXTENSION): $(INSTALLED) setup.py logspace/_transcode.c logspace/_fieldset.h logspace/_jsontokens.h
	$(BIN)/pip install --quiet --no-deps -e .
	@touch $@

## run: HQ on 127.0.0.1:4567 (token `development`), with a local Elasticsearch unless LOGSPACE_ES_URL is set
run: $(EXTENSION)
	scripts/run

## test: lint, types, then the whole suite against a real Elasticsearch node
test: check
	$(BIN)/pytest

check: $(EXTENSION)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## bench: the benchmark harness (about 30 minutes; never part of `make test`), see docs/development.md
BENCH_INSTALLED := $(VENV)/.bench-installed
$(BENCH_INSTALLED): $(EXTENSION) pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	@# wrk (Debian) drives the fleet of figure (f); without it (f) is reported as not measured.
	@command -v wrk >/dev/null || apt-get install -y -q wrk || \
		(apt-get update -q && apt-get install -y -q wrk) || echo "wrk is missing: no figure (f)"
	@touch $@

bench: $(BENCH_INSTALLED)
	$(BIN)/python -m bench

## bench-quick: the same figures with fewer and shorter arms, for development (about 7 minutes)
bench-quick: $(BENCH_INSTALLED)
	BENCH_QUICK=1 $(BIN)/python -m bench

## bench-fleet: figure (f) alone, a fleet of agents sending small batches (about 7 minutes)
bench-fleet: $(BENCH_INSTALLED)
	$(BIN)/python -m bench f

format: $(INSTALLED)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

es-start:
	scripts/es start
es-stop:
	scripts/es stop
es-status:
	scripts/es status

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
