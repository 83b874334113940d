# The two commands of the quickstart: `make run` and `make test`. Both set themselves up.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint setup setup-test bench clean

run: setup
	$(BIN)/imagestudio serve

test: setup-test
	$(BIN)/pytest

lint: setup-test
	$(BIN)/ruff check src tests bench

setup: $(VENV)/.installed-app
setup-test: $(VENV)/.installed-test

$(VENV)/.installed-app: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml scripts/setup-test-env.sh
	$(PYTHON) -m venv $(VENV)
	PYTHON=$(BIN)/python sh scripts/setup-test-env.sh
	touch $(VENV)/.installed-app $@

bench: setup-test
	$(BIN)/python bench/engine.py
	$(BIN)/python bench/api.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
