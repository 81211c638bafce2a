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
	$(BIN)/ruff check sender tests benchmarks scripts
	$(BIN)/mypy

test: lint tf-check ## The gate CI runs: lint, then the whole test suite
	$(BIN)/pytest

test-fast: install ## pytest only, no lint
	$(BIN)/pytest -x -q

dry-run: install ## Render the bundled example offline: no AWS account, no network
	$(BIN)/blast dry-run $(EVENT) --offline --config examples/sender-config.json

bench: install ## Throughput, CPU and memory benchmark against a local SES stand-in
	$(PY) -m benchmarks.run

# --- Lambda package and Terraform (infra/terraform) ---------------------------------------------------
RUNTIME ?= python3.12
ARCH    ?= arm64
TF_DIR  := infra/terraform
TERRAFORM := $(shell command -v terraform 2>/dev/null)
NO_TERRAFORM := echo "terraform is not installed here: install Terraform >= 1.5 and run this on a machine with AWS credentials (see infra/terraform/README.md)"; exit 1
# checkov pins heavy dependencies of its own, so it lives in its own venv, installed once.
CHECKOV_VERSION := 3.3.30
CHECKOV_VENV    := .venv-checkov
CHECKOV_STAMP   := $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION)

package: install ## Build the Lambda zip (dist/lambda.zip) for RUNTIME=python3.12 ARCH=arm64
	$(PY) scripts/package.py --runtime $(RUNTIME) --arch $(ARCH) --output dist/lambda.zip

$(CHECKOV_STAMP):
	rm -rf $(CHECKOV_VENV)
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet 'checkov==$(CHECKOV_VERSION)'
	@touch $@

tf-check: install $(CHECKOV_STAMP) ## Terraform static checks: python-hcl2 parse tests, checkov, terraform fmt (if installed)
	$(BIN)/pytest -q tests/test_terraform.py
	$(CHECKOV_VENV)/bin/checkov --directory $(TF_DIR) --framework terraform --compact --quiet --skip-download
	@if [ -n "$(TERRAFORM)" ]; then terraform fmt -check -recursive $(TF_DIR); else echo "tf-check: terraform not installed, fmt check skipped"; fi

plan: ## terraform init + plan in infra/terraform (needs terraform and AWS credentials)
	@$(if $(TERRAFORM),true,$(NO_TERRAFORM))
	terraform -chdir=$(TF_DIR) init -input=false
	terraform -chdir=$(TF_DIR) plan -input=false

deploy: $(if $(TERRAFORM),package) ## make package, then terraform apply in infra/terraform (asks before changing anything)
	@$(if $(TERRAFORM),true,$(NO_TERRAFORM))
	terraform -chdir=$(TF_DIR) init -input=false
	terraform -chdir=$(TF_DIR) apply -input=false

clean: ## Remove build output
	rm -rf build dist out .bench
