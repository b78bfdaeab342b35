# The two commands that matter: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup tools browser demo test lint unit integration stack-up stack-down stack-status clean

setup: $(STAMP)

# Reinstall only when the dependency list or the install steps change, so a second `make setup`
# is instant. The steps live in deploy/image/install-venv.sh, which the Dockerfile runs too.
$(STAMP): pyproject.toml deploy/image/install-venv.sh
	PYTHON=$(PYTHON) bash deploy/image/install-venv.sh $(VENV) -e '.[dev]'
	@touch $(STAMP)

# Helm and the CRD schemas the chart's tests validate against (pinned, cached in ~/.cache/rdqc).
tools:
	@bash deploy/tools/install-chart-tools.sh

demo: setup
	$(BIN)/rdqc demo

lint: setup
	$(BIN)/ruff check worker rdcore tests
	$(BIN)/ruff format --check worker rdcore tests
	$(BIN)/mypy

unit: setup
	$(BIN)/pytest -m unit

integration: setup stack-up
	$(BIN)/pytest -m integration

test: setup tools browser stack-up lint
	$(BIN)/pytest

# Headless Chromium from Debian's packages for the dashboard's browser test.
browser:
	@bash deploy/local/install-chromium.sh

# The topics too, sized from the settings; --add-partitions, since a topic that a client's
# first use auto-created with the broker's default partitions is harmless to widen locally.
stack-up: setup
	@bash deploy/local/stack.sh up
	RDQC_ENV_FILE="$${RDQC_STACK_DIR:-.stack}/stack.env" $(BIN)/rdqc topics ensure --add-partitions

stack-down:
	@bash deploy/local/stack.sh down

stack-status:
	@bash deploy/local/stack.sh status

clean: stack-down
	rm -rf .stack .mypy_cache .ruff_cache .pytest_cache
