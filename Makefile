# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: run test test-sanitized fuzz check format bench bench-quick bench-fleet es-start es-stop es-status clean \
	es-cluster-start es-cluster-stop es-cluster-status es-secure-start es-secure-stop es-secure-status

$(INSTALLED): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	@# Without mypyc here: $(EXTENSION) builds the compiled parts right after.
	LOGSPACE_MYPYC=0 $(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

# The compiled parts (setup.py): the C extension, logspace/fastpath/_transcode.c, and the modules
# mypyc compiles (setup.py's COMPILED list), built again when one of their sources changes.
# Python loads a compiled module in place of its .py: run tests through make, or build first.
COMPILED := $(shell sed -n 's/^    "\(logspace\/.*\.py\)",$$/\1/p' setup.py)
EXTENSION := $(VENV)/.extension-built
$(EXTENSION): $(INSTALLED) setup.py logspace/fastpath/_transcode.c $(wildcard logspace/fastpath/_*.h) $(COMPILED)
	@# A module no longer listed must not stay behind, shadowing its source (nor in the
	@# build directories a wheel is made from).
	find logspace -name '*.so' -delete && rm -rf logspace__mypyc.*.so build/lib.* build/temp.*
	$(BIN)/pip install --quiet --no-deps -e .
	@touch $@

## run: HQ on 127.0.0.1:4567 (token `development`), with a local Elasticsearch unless LOGSPACE_ES_URL is set
run: $(EXTENSION)
	scripts/run

## test: lint, types, the whole suite against a real Elasticsearch node, then test-sanitized
test: check
	$(BIN)/pytest
	scripts/fuzz test

## test-sanitized: the C fast path's tests against an ASan+UBSan build of it (installs clang if missing)
test-sanitized: $(INSTALLED)
	scripts/fuzz test

## fuzz: libFuzzer on the C fast path, both sanitizers and the differential check, for FUZZ_SECONDS (600)
fuzz: $(INSTALLED)
	scripts/fuzz run

check: $(EXTENSION)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## bench: the benchmark harness, every figure (over half an hour; never part of `make test`), see docs/development.md
BENCH_INSTALLED := $(VENV)/.bench-installed
$(BENCH_INSTALLED): $(EXTENSION) pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	@# wrk (Debian) drives figures (f) and (g); without it they are reported as not measured.
	@command -v wrk >/dev/null || apt-get install -y -q wrk || \
		(apt-get update -q && apt-get install -y -q wrk) || echo "wrk is missing: no figures (f), (g)"
	@touch $@

bench: $(BENCH_INSTALLED)
	$(BIN)/python -m bench

## bench-quick: the same figures with fewer and shorter arms, for development
bench-quick: $(BENCH_INSTALLED)
	BENCH_QUICK=1 $(BIN)/python -m bench

## bench-fleet: figure (f) alone, a fleet of agents sending small batches (about 9 minutes)
bench-fleet: $(BENCH_INSTALLED)
	$(BIN)/python -m bench f

format: $(INSTALLED)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## es-start, es-stop, es-status: the single local node (127.0.0.1:9250) that `make run` and the tests use
es-start:
	scripts/es start
es-stop:
	scripts/es stop
es-status:
	scripts/es status

## es-cluster-*: a cluster of LOGSPACE_ES_NODES (3) nodes on LOGSPACE_ES_CLUSTER_PORT (9400) and up
es-cluster-start:
	scripts/es cluster start
es-cluster-stop:
	scripts/es cluster stop
es-cluster-status:
	scripts/es cluster status

## es-secure-*: one node with security and TLS on LOGSPACE_ES_SECURE_PORT (9270); start prints the credentials
es-secure-start:
	scripts/es secure start
es-secure-stop:
	scripts/es secure stop
es-secure-status:
	scripts/es secure status

clean:
	rm -rf $(VENV) build .mypy_cache .ruff_cache .pytest_cache .hypothesis logspace__mypyc.*.so
	find logspace -name '*.so' -delete
