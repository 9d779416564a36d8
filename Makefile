# What people type. Every target creates .venv with the pinned dependencies when needed.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: help venv db-init export run test psql bench check verify db-status db-stop clean

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	@touch $@

venv: $(STAMP)  ## Create .venv with the pinned dependencies

db-init: $(STAMP)  ## Migrate the database and load the sample seeds
	$(PY) cli.py db-init

run: db-init  ## Build the models in queries/ as views and tables in schema analytics
	$(PY) cli.py run

export: db-init  ## Build and test the models, then write CSV + Parquet exports to exports/
	$(PY) cli.py build

test: $(STAMP)  ## Run the whole test suite against real PostgreSQL
	$(PY) -m pytest

bench: $(STAMP)  ## Speed goals vs same-run baselines (BENCH="--only trigger --expenses 200000")
	$(PY) bench/bench.py $(BENCH)

psql: $(STAMP)  ## Open psql on the tracker's database
	$(PY) cli.py psql

db-status: $(STAMP)  ## Which database, is it up, which migrations are applied
	$(PY) cli.py db status

db-stop: $(STAMP)  ## Stop the private PostgreSQL server
	$(PY) cli.py db stop

clean:  ## Remove generated files (keeps .venv and the database)
	rm -rf target .pytest_cache

check: $(STAMP)  ## Build every model on the sample seeds in DuckDB and run all data and unit tests
	$(PY) cli.py check

verify: $(STAMP)  ## Prove the export right twice: cli.py verify (SQL + DuckDB), scripts/verify.sh (bash)
	$(PY) cli.py verify --dir $(or $(DIR),exports)
	PSQL="$(PY) cli.py psql" bash scripts/verify.sh $(or $(DIR),exports)
