# Every target creates the virtualenv and installs what it needs, so a fresh clone needs only `make demo` / `make test`.
# `make` alone lists the targets: each line `target: ## text` in this file or in mk/*.mk is one entry of `make help`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt pyproject.toml | sha1sum | cut -c1-12)
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help install lint format typecheck test unit integration synth demo bench deploy clean

help: ## list the targets (this text)
	@echo "usage: make TARGET [VARIABLE=value ...]   (every target installs what it needs first)"
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '!seen[$$1]++ {printf "  %-12s %s\n", $$1, $$2}'

# Descriptions of targets whose recipes live in mk/*.mk (a rule without a recipe adds nothing else to a target).
demo: ## the whole pipeline on this machine from the synthesized stack, then a report (docs/demo.md)
test: ## lint, type-check and every test (fresh clone: tests needing ../shared/data skip)
synth: ## the CloudFormation template, offline, into cdk.out/
deploy: ## deploy the stack (needs AWS credentials and a bootstrapped account)
bench: ## the benchmarks with baselines, met / not met (MovieLens scenarios need ../shared/data; docs/benchmarks.md)

-include mk/*.mk

# NOTE: the project itself is installed editable (without dependencies: requirements-dev.txt pins them), which
# puts the `personalize-ingest` command into $(VENV)/bin.
$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP) ## the virtualenv (.venv) with the pinned dependencies and the personalize-ingest command

lint: install ## ruff (lint + format check) and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy $(wildcard functions emulator infrastructure local benchmarks schemas ingest_cli app.py)

typecheck: lint

format: install ## reformat the code and apply ruff's safe fixes
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: lint
	$(PY) -m pytest -q

unit: install ## the unit tests only
	$(PY) -m pytest -q tests/unit

integration: install ## the integration tests only (moto and the emulator on loopback)
	$(PY) -m pytest -q tests/integration

clean: ## remove the virtualenv, build outputs and caches
	rm -rf $(VENV) cdk.out build .bench node_modules .mypy_cache .ruff_cache .pytest_cache
