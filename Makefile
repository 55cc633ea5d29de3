# Temporal DLQ: `make run` starts a local stack with a demo; `make test` runs the checks.
# Everything runs from the project's virtualenv (.venv), created on first use.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Touched after a successful install: re-runs skip pip until pyproject.toml changes.
STAMP  := $(VENV)/.installed

.PHONY: venv run test test-fast lint test-sdk-range bench clean

# The lowest temporalio in pyproject.toml's range; `make test-sdk-range` runs the
# workflow, replay and smoke tests on it (.venv has the newest, the upper end).
SDK_LOWER := 1.20.0
SDK_VENV  := .venv-sdk-$(SDK_LOWER)
SDK_TESTS := tests/unit/test_sandbox.py tests/workflows \
             tests/integration/test_integration.py tests/integration/test_worker_process.py \
             tests/integration/test_shutdown.py

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -e '.[test]'
	touch $@

# Temporal dev server + DLQ worker + dlq serve (API and console on :8000) + demo entries,
# until Ctrl-C. State in DLQ_HOME (default ~/.dlq, absolute: `dlq` works from any folder).
# Ports: DLQ_DEV_PORT (7233), DLQ_DEV_UI_PORT (8233) and DLQ_DEV_HTTP_PORT (8000).
run: venv
	$(BIN)/python -m dlq._devstack

# Every test (CI runs this): lint, tests/unit, sql, workflows, integration and
# faults, then the SDK range's lower end.
test: lint
	$(BIN)/pytest -q
	$(MAKE) test-sdk-range

# The inner loop: everything but the fault tests (tests/faults/, which kill and
# restart real servers and workers and take most of `make test`'s time).
test-fast: lint
	$(BIN)/pytest -q -m "not faults"

# ruff everywhere; mypy on the library (configured in pyproject.toml).
lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy

# The same code on the oldest temporalio the range allows, in a venv of its own.
test-sdk-range: $(SDK_VENV)/.installed
	$(SDK_VENV)/bin/python -c "import temporalio; assert temporalio.__version__ == '$(SDK_LOWER)'"
	$(SDK_VENV)/bin/pytest -q -p no:cacheprovider $(SDK_TESTS)

$(SDK_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(SDK_VENV)
	$(SDK_VENV)/bin/pip install -e '.[test]' 'temporalio==$(SDK_LOWER)'
	touch $@

bench: venv
	$(BIN)/python bench/store.py

# Removes the virtualenv and local state (.dlq/: the dev server's database,
# the SQLite read model, logs).
clean:
	rm -rf $(VENV) .venv-sdk-* .dlq .pytest_cache .ruff_cache .mypy_cache build dist *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
