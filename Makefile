# Medio developer commands. `make help` lists them.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: help install dev test test-cluster lint type-check format bench clean

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

# The paths the cluster pass runs on a private 3-master Redis Cluster (tests/cluster.py): the
# command side (sessions, heartbeats, policy, idempotency), progress with read-your-writes, the
# Redis projections and medio api + medio worker. docs/operations.md says why not the rest.
CLUSTER_TESTS := tests/e2e/test_sessions_api.py tests/e2e/test_cluster_pairing.py tests/integration/test_session_store.py \
	tests/e2e/test_policy_api.py tests/e2e/test_progress_api.py \
	tests/e2e/test_series_progress_api.py tests/e2e/test_idempotency_api.py \
	tests/e2e/test_kids_mode_parent_control.py tests/e2e/test_read_your_writes.py \
	tests/integration/test_session_projections.py tests/integration/test_resume_projection.py \
	tests/integration/test_profile_reads_kept.py tests/e2e/test_cluster_serve.py

test: install ## run the whole test suite, then its Redis Cluster pass (starts Redis/Postgres if stopped)
	scripts/ensure-services
	$(BIN)/pytest -n 2 --dist loadfile -q
	MEDIO_TEST_REDIS_CLUSTER=1 $(BIN)/pytest -n 2 --dist loadfile -q $(CLUSTER_TESTS)

test-cluster: install ## only the Redis Cluster pass of the suite
	scripts/ensure-services
	MEDIO_TEST_REDIS_CLUSTER=1 $(BIN)/pytest -n 2 --dist loadfile -q $(CLUSTER_TESTS)

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
