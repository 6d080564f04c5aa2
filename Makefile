# The two quick-start commands (`make console`, `make test`) install what they need on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: console test lint bench chaos

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## The console bot on the offline sandbox with the embedded SQLite database.
console: $(STAMP)
	$(BIN)/samsar-bot console --sandbox

## Every test (PostgreSQL too when TEST_DATABASE_URL is set).
test: $(STAMP)
	$(BIN)/pytest

## ruff and mypy --strict on the product code.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## What the bot costs on top of Samsar, beside a bare httpx loop (figures as `name: value`).
bench: $(STAMP)
	$(BIN)/python -m bench

## The chaos run (two replicas on PostgreSQL, one killed every few seconds), its report printed.
chaos: $(STAMP)
	$(BIN)/pytest -q -s tests/e2e/test_chaos.py
