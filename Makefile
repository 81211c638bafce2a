# The JADA blast sender. `make` (or `make help`) lists the targets.
.PHONY: help install lint test test-fast dry-run bench package plan deploy tf-check clean
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
STAMP  := $(VENV)/.installed-stamp
EVENT  ?= examples/regatta-invite.json

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s "$$(printf '\t')"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install the package with its dev tools

lint: install ## ruff and mypy
	$(BIN)/ruff check sender tests benchmarks
	$(BIN)/mypy

test: lint ## The gate CI runs: lint, then the whole test suite
	$(BIN)/pytest

test-fast: install ## pytest only, no lint
	$(BIN)/pytest -x -q

dry-run: install ## Render the bundled example offline: no AWS account, no network
	$(BIN)/blast dry-run $(EVENT) --offline --config examples/sender-config.json

bench: install ## Throughput, CPU and memory benchmark against a local SES stand-in
	$(PY) -m benchmarks.run

package: install ## Build the Lambda zip (dist/lambda.zip)
	@echo "package: not built yet (the Terraform issue adds it)"; exit 1

clean: ## Remove build output
	rm -rf build dist out .bench
