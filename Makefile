# cancelguard: `make help` lists the targets.
# Everything runs from a virtual environment in .venv and keeps its state in .local (both git-ignored).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PROTOS := $(shell find proto -name '*.proto')
GRPCURL_VERSION := v1.9.4

.DEFAULT_GOAL := help
.PHONY: help setup proto kafka up down status run demo test test-unit test-integration test-e2e lint \
        classifier-report import-report-1gb bench-ingestion grpcurl clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  make %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml hatch_build.py
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "cancelguard needs Python 3.11 or newer; set PYTHON=python3.11")'
	@echo "setting up $(VENV) (first run downloads the Python dependencies)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip>=25.1"
	$(BIN)/pip install --quiet --group dev -e .
	@touch $@

setup: $(STAMP) proto ## create .venv with the project and its dev tools

services/cancelguard/v1/.generated: $(PROTOS) $(STAMP)
	$(BIN)/python hatch_build.py
	@touch $@

proto: services/cancelguard/v1/.generated ## generate the Python stubs from proto/

kafka: $(STAMP) ## fetch Apache Kafka's broker and tools from Maven Central (cached after the first run)
	$(BIN)/python -m cancelguard.localstack fetch

up: setup ## start the local Kafka and Postgres (idempotent)
	$(BIN)/cancelguard up

down: ## stop them (data stays in .local)
	@if [ -x $(BIN)/cancelguard ]; then $(BIN)/cancelguard down; else echo "nothing to stop"; fi

status: setup ## show whether they run
	$(BIN)/cancelguard status

run: setup kafka ## set everything up, start Kafka, Postgres and the services, feed the demo, stay up until Ctrl-C
	$(BIN)/cancelguard run

demo: setup kafka ## the same as run, but print the result and exit
	$(BIN)/cancelguard demo

test: setup kafka ## the whole test suite against a real Kafka and a real Postgres
	$(BIN)/pytest

test-unit: setup ## unit tests only (no Kafka, no Postgres)
	$(BIN)/pytest tests/unit

test-integration: setup kafka ## integration tests only
	$(BIN)/pytest tests/integration

test-e2e: setup kafka ## end-to-end tests only (services as processes, through the gRPC API)
	$(BIN)/pytest tests/e2e

lint: setup ## ruff and mypy
	$(BIN)/ruff check services tests bench
	$(BIN)/mypy

classifier-report: setup ## precision and recall of the buyer-message classifier on the labelled sets
	$(BIN)/python bench/classifier_report.py

import-report-1gb: setup kafka ## import a generated ~1 GB order report into a Kafka of its own; peak memory and rate (not a test)
	$(BIN)/python bench/import_report_1gb.py

bench-ingestion: setup kafka ## ingestion vs raw aiokafka vs Kafka's perf tool, and the pollers' throughput (not a test)
	$(BIN)/python bench/ingestion.py

grpcurl: ## install grpcurl into .local/bin (needs Go)
	@command -v go >/dev/null || { echo "grpcurl is built with Go; install Go first"; exit 1; }
	GOBIN=$(CURDIR)/.local/bin go install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)
	@echo "installed .local/bin/grpcurl"

clean: down ## stop the stack and remove .venv, .local and generated files
	rm -rf $(VENV) .local .pytest_cache .mypy_cache .ruff_cache
	find services -name '*_pb2*.py*' -delete
	rm -f services/cancelguard/v1/.generated
