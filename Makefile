# The two commands that matter: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint unit integration stack-up stack-down stack-status clean browser

setup: $(STAMP)

# Reinstall only when the dependency list changes, so a second `make setup` is instant.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

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

test: setup stack-up lint browser
	$(BIN)/pytest

# Headless Chromium from Debian's packages for the dashboard's browser test.
browser:
	@bash deploy/local/install-chromium.sh

stack-up:
	@bash deploy/local/stack.sh up

stack-down:
	@bash deploy/local/stack.sh down

stack-status:
	@bash deploy/local/stack.sh status

clean: stack-down
	rm -rf .stack .mypy_cache .ruff_cache .pytest_cache
