# What people type. Every target creates .venv with the pinned dependencies when needed.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
EXPORT_DIR ?= exports
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# pip checks every package against the lock's hashes; a stamp per lock says it is done.
PIP_INSTALL := $(PY) -m pip install --quiet --disable-pip-version-check --require-hashes

.PHONY: help venv db-init export run test lint lock psql bench check verify db-status db-stop clean browser serve

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# Runtime: what export, db-init, serve and check need (requirements.lock).
$(STAMP): requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) -r requirements.lock
	@touch $@

# Tests, benchmarks and lint: the runtime packages plus the test extra (requirements-test.lock).
$(TEST_STAMP): requirements-test.lock $(STAMP)
	$(PIP_INSTALL) -r requirements-test.lock
	@touch $@

# The tracker package's bytecode, compiled ahead as pip compiles an installed package's:
# where PYTHONDONTWRITEBYTECODE is set (containers often set it), Python would otherwise
# compile every module again on every command (cold `check`: about 0.2 s of 0.7 s).
# compileall only recompiles what changed; a stale or missing .pyc is only slower.
PYC := $(VENV)/.compiled
$(PYC): $(STAMP) $(shell find tracker -name '*.py')
	$(PY) -m compileall -q tracker
	@touch $@

venv: $(STAMP)  ## Create .venv with the pinned runtime dependencies

db-init: $(PYC)  ## Migrate the database and load the sample seeds
	$(PY) cli.py db-init

run: db-init  ## Build the models in queries/ as views and tables in schema analytics
	$(PY) cli.py run

export: db-init  ## Build and test the models; write CSV + Parquet, the Power BI project and report.html to exports/
	$(PY) cli.py build --out $(EXPORT_DIR)
	$(PY) cli.py report --out $(EXPORT_DIR)/report.html

test: $(TEST_STAMP) browser  ## Run the whole test suite against real PostgreSQL
	$(PY) -m pytest

lint: $(TEST_STAMP)  ## ruff (lint + format check), mypy on tracker/, sqlfluff on queries/ and database/
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(PY) -m sqlfluff lint queries database

# The locks come from pyproject.toml (dependencies, extras test and spark), keeping today's
# pins where they still fit; `make lock UPGRADE=1` moves every pin to the newest release.
LOCK := CUSTOM_COMPILE_COMMAND="make lock" $(PY) -m piptools compile --quiet --generate-hashes \
	--allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links $(if $(UPGRADE),--upgrade)
lock: $(TEST_STAMP)  ## Regenerate requirements.lock and requirements-test.lock (with hashes) from pyproject.toml
	$(LOCK) -o requirements.lock pyproject.toml
	$(LOCK) --extra test --extra spark -o requirements-test.lock pyproject.toml

bench: $(TEST_STAMP) $(PYC)  ## Speed goals vs same-run baselines (BENCH="--only trigger --expenses 200000")
	$(PY) bench/bench.py $(BENCH)

psql: $(PYC)  ## Open psql on the tracker's database
	$(PY) cli.py psql

db-status: $(PYC)  ## Which database, is it up, which migrations are applied
	$(PY) cli.py db status

db-stop: $(PYC)  ## Stop the private PostgreSQL server
	$(PY) cli.py db stop

clean:  ## Remove generated files (keeps .venv and the database)
	rm -rf target .pytest_cache

check: $(PYC)  ## Build every model on the sample seeds in DuckDB and run all data and unit tests
	$(PY) cli.py check

verify: $(PYC)  ## Prove the export right twice: cli.py verify (SQL + DuckDB), scripts/verify.sh (bash)
	$(PY) cli.py verify --out $(or $(DIR),exports)
	PSQL="$(PY) cli.py psql" bash scripts/verify.sh $(or $(DIR),exports)

# Issue 13: the report's browser tests render it in Debian's chromium (headless), driven by
# the playwright wheel from requirements-test.lock (its bundled browsers are never downloaded).
browser:  ## Install Debian's chromium for the report's browser tests (when missing)
	@test -x /usr/bin/chromium || { $(SUDO) apt-get update && $(SUDO) apt-get install -y chromium; }

HOST ?= 127.0.0.1
PORT ?= 8000
serve: db-init  ## Start the REST API (docs at /docs) until Ctrl-C (HOST=127.0.0.1 PORT=8000)
	$(PY) cli.py serve --host $(HOST) --port $(PORT)
