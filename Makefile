# The README's two commands: `make demo` and `make test`. Everything else is for operators.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export AIRFLOW_HOME ?= $(CURDIR)/airflow_home
export AIRFLOW__CORE__LOAD_EXAMPLES ?= False
export AIRFLOW__CORE__DAGS_FOLDER ?= $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER ?= $(CURDIR)/plugins

.PHONY: venv demo test run up bench bench-scale mutation lint format clean

venv: $(STAMP)

# Reinstalls whenever the pins or the package metadata change.
$(STAMP): requirements.txt requirements-lock.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -c requirements-lock.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $@

demo: $(STAMP)  ## the whole pipeline, end to end, on embedded defaults and sample data
	$(BIN)/python -m lupus_alerts.demo

test: $(STAMP)  ## the whole test suite
	$(BIN)/python -m pytest -q

run: $(STAMP)  ## the pipeline once against live NCBI, the journals and the configured SMTP server
	$(BIN)/python -m lupus_alerts.demo --live

up: $(STAMP)  ## Airflow's UI on http://localhost:8080 with the project's DAGs and sample servers
	$(BIN)/python -m lupus_alerts.demo --up

bench: $(STAMP)  ## the performance benchmarks; figures go to docs/benchmarks.md
	$(BIN)/python -m bench

mutation: $(STAMP)  ## mutmut over the guarantee functions (slow, minutes; not part of `make test`); see docs/testing.md
	$(BIN)/python scripts/mutation.py $(MUTATION_ARGS)

bench-scale: $(STAMP)  ## LocalExecutor vs CeleryExecutor (2 and 3 workers), real deployments (~15 min); needs PostgreSQL and Redis
	$(BIN)/python -m bench executors

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf airflow_home data outbox .demo .pytest_cache .mutation
