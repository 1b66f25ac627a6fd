# Medio developer commands. `make help` lists them.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: help install dev test lint type-check format bench clean

help: ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

$(BIN)/medio: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev,parquet]"
	touch $(BIN)/medio

install: $(BIN)/medio ## create .venv and install Medio with its dev tools

dev: install ## run Medio: migrations, API on :8000, workers (embedded Redis/SQLite by default)
	$(BIN)/medio dev

test: install ## run the whole test suite (starts Redis/Postgres if they are stopped)
	scripts/ensure-services
	$(BIN)/pytest -n 2 --dist loadfile -q

lint: install ## ruff, mypy --strict and the import layout (tests/unit/test_layout.py)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -q tests/unit/test_layout.py

type-check: install ## mypy --strict only
	$(BIN)/mypy

format: install ## format with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install ## benchmarks: prints a table and writes bench/results/latest.json
	@command -v wrk >/dev/null || apt-get install -y -q wrk || sudo apt-get install -y -q wrk
	$(BIN)/python -m bench

clean: ## remove the virtual environment and local data
	rm -rf $(VENV) var
