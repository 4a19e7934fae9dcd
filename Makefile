# The two commands a newcomer needs:
#   make demo   - installs everything, starts anvil, and walks the whole story
#   make test   - installs everything and runs the whole test suite
# Everything is installed from the project's own files (npm ci, pip), into the repository.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
ANVIL_DIR := $(CURDIR)/node_modules/@foundry-rs/anvil-linux-amd64/bin
SOLC_VERSION := 0.8.37

# Tool configuration lives in the repository, never in $$HOME.
export SOLCX_BINARY_PATH := $(CURDIR)/var/solcx
export APE_DATA_FOLDER := $(CURDIR)/var/ape
export PATH := $(ANVIL_DIR):$(CURDIR)/$(VENV)/bin:$(PATH)
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: setup build check-artifacts test demo bench lint typecheck slither clean help

help:
	@echo "make demo    run the local devnet demo (request -> attest -> finalize; fraud -> slash)"
	@echo "make test    run the whole test suite"
	@echo "make bench   run the benchmarks, write bench/results.json"
	@echo "make build   compile contracts/ into oracle/artifacts/"
	@echo "tools/ape    ape with the offline config (e.g. tools/ape compile, tools/ape run deploy)"

node_modules/.installed: package.json package-lock.json
	npm install --no-audit --no-fund --no-save
	touch $@

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

var/solcx/solc-v$(SOLC_VERSION): tools/solc
	mkdir -p var/solcx var/ape
	ln -sf $(CURDIR)/tools/solc $@

setup: node_modules/.installed $(VENV)/.installed var/solcx/solc-v$(SOLC_VERSION)

build: setup
	$(PY) tools/build_artifacts.py

check-artifacts: setup
	$(PY) tools/build_artifacts.py --check

# The gates run first: ruff and mypy --strict (configured in pyproject.toml), then the whole suite.
test: setup lint typecheck
	$(PY) -m pytest -q $(PYTEST_ARGS)

demo: setup
	$(PY) -m oracle.demo $(DEMO_ARGS)

bench: setup
	$(PY) -m bench.run

lint: setup
	$(VENV)/bin/ruff check oracle tests bench tools scripts

typecheck: setup
	$(VENV)/bin/mypy oracle

slither: setup
	$(PY) tools/run_slither.py

clean:
	rm -rf var .build contracts/.cache .pytest_cache .hypothesis
