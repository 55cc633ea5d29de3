# Temporal DLQ: `make run` starts a local stack with a demo; `make test` runs the checks.
# Everything runs from the project's virtualenv (.venv), created on first use.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Touched after a successful install: re-runs skip pip until pyproject.toml changes.
STAMP  := $(VENV)/.installed

.PHONY: venv run test test-fast lint bench clean

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

# Every test (CI runs this): tests/unit, sql, workflows, integration and faults.
test: venv
	$(BIN)/ruff check .
	$(BIN)/pytest -q

# The inner loop: everything but the fault tests (tests/faults/, which kill and
# restart real servers and workers and take most of `make test`'s time).
test-fast: venv
	$(BIN)/ruff check .
	$(BIN)/pytest -q -m "not faults"

lint: venv
	$(BIN)/ruff check .

bench: venv
	$(BIN)/python bench/store.py

# Removes the virtualenv and local state (.dlq/: the dev server's database,
# the SQLite read model, logs).
clean:
	rm -rf $(VENV) .dlq .pytest_cache .ruff_cache build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
