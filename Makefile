# cancelguard: `make help` lists the targets.
# Everything runs from a virtual environment in .venv and keeps its state in .local (both git-ignored).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PROTOS := $(shell find proto -name '*.proto')
GRPCURL_VERSION := v1.9.4
BUF_VERSION := 1.75.0
BUF := .local/buf/node_modules/.bin/buf
GHZ_VERSION := v0.93.0
BUF_BASELINE := proto-baseline/released.binpb
KUSTOMIZE_VERSION := v5.7.1

.DEFAULT_GOAL := help
.PHONY: help setup proto kafka up down status run demo test test-unit test-integration test-e2e soak lint \
        classifier-report import-report-1gb bench-metrics bench-ingestion grpcurl buf buf-check buf-baseline ghz \
        bench-api bench-api-instr bench-api-loop clean engine engine-stop base-image images compose-up compose-down \
        kustomize deploy-tools test-deploy _images _compose-up _deploy-checks

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

soak: setup kafka ## the kill -9 test at full size: 20 SIGKILLs while the metrics service applies 1,000,000 events
	CANCELGUARD_SOAK_EVENTS=1000000 CANCELGUARD_SOAK_KILLS=20 $(BIN)/pytest tests/e2e/test_kill.py -o timeout=3600

lint: setup ## ruff and mypy (the package, then the benchmarks, which import it)
	$(BIN)/ruff check services tests bench deploy
	$(BIN)/mypy
	$(BIN)/mypy bench

classifier-report: setup ## precision and recall of the buyer-message classifier on the labelled sets
	$(BIN)/python bench/classifier_report.py

import-report-1gb: setup kafka ## import a generated ~1 GB order report into a Kafka of its own; peak memory and rate (not a test)
	$(BIN)/python bench/import_report_1gb.py

bench-metrics: setup kafka ## the metrics apply rate vs a raw decode-only consume (200,000 events; not a test)
	$(BIN)/python bench/metrics_apply.py

bench-ingestion: setup kafka ## ingestion vs raw aiokafka vs Kafka's perf tool, and the pollers' throughput (not a test)
	$(BIN)/python bench/ingestion.py

grpcurl: ## install grpcurl into .local/bin (needs Go)
	@command -v go >/dev/null || { echo "grpcurl is built with Go; install Go first"; exit 1; }
	GOBIN=$(CURDIR)/.local/bin go install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)
	@echo "installed .local/bin/grpcurl"

buf: $(BUF) ## install the buf CLI (npm @bufbuild/buf) into .local/buf

$(BUF):
	@command -v npm >/dev/null || { echo "the buf CLI comes from npm (@bufbuild/buf): install Node.js first"; exit 1; }
	npm install --silent --no-audit --no-fund --prefix .local/buf @bufbuild/buf@$(BUF_VERSION)

buf-check: buf ## buf lint (STANDARD + COMMENTS) and buf breaking against the released API ($(BUF_BASELINE))
	$(BUF) lint
	$(BUF) breaking --against $(BUF_BASELINE)

buf-baseline: buf ## at a release: record the API as released, the baseline `buf breaking` compares against
	$(BUF) build -o $(BUF_BASELINE)

ghz: ## install ghz (gRPC load generator) into .local/bin (needs Go)
	@command -v go >/dev/null || { echo "ghz is built with Go; install Go first"; exit 1; }
	GOBIN=$(CURDIR)/.local/bin go install github.com/bojand/ghz/cmd/ghz@$(GHZ_VERSION)

bench-api: setup kafka ghz ## gRPC read RPCs vs an empty grpc.aio handler, interleaved, with ghz (not a test)
	$(BIN)/python bench/api_reads.py

bench-api-instr: setup kafka ghz ## the read RPCs' instructions per call vs the empty handler, under callgrind (not a test)
	@command -v valgrind >/dev/null || { echo "valgrind is missing: apt-get install valgrind"; exit 1; }
	$(BIN)/python bench/api_instr.py

bench-api-loop: setup ## the Python of a held read per call vs the empty handler's, in a tight loop (not a test; seconds)
	$(BIN)/python bench/api_loop.py

# --- containers and Kubernetes (deploy/) ------------------------------------------------------------
# Images are built here, never pulled. Their names, for `make images`, the tests and Compose:
VERSION        := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
KAFKA_VERSION  := $(shell sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' deploy/local/pom.xml)
BASE_IMAGE     ?= cancelguard/base:bookworm
IMAGE          ?= cancelguard:$(VERSION)
KAFKA_IMAGE    ?= cancelguard/kafka:$(KAFKA_VERSION)
POSTGRES_IMAGE ?= cancelguard/postgres:18
IMAGES_ENV     := CANCELGUARD_IMAGE=$(IMAGE) CANCELGUARD_KAFKA_IMAGE=$(KAFKA_IMAGE) \
                  CANCELGUARD_POSTGRES_IMAGE=$(POSTGRES_IMAGE)
DOCKER_BUILD   := docker build --quiet --build-arg BASE_IMAGE=$(BASE_IMAGE)
# The engine `make engine` starts listens on a socket of its own; DOCKER_HOST points there while it runs.
export ENGINE_DIR := $(CURDIR)/.local/engine
ifneq ($(wildcard $(ENGINE_DIR)/docker.sock),)
export DOCKER_HOST ?= unix://$(ENGINE_DIR)/docker.sock
endif
COMPOSE        := deploy/compose/compose.sh
TOOLS          := .local/tools

engine: ## use the Docker engine that answers, or (root on Debian) install docker.io and start one
	@deploy/docker/engine.sh start

engine-stop: ## stop the Docker engine that `make engine` started (images stay)
	@deploy/docker/engine.sh stop

base-image: ## build the base image from Debian's packages (debootstrap + docker import), unless present
	@case "$(BASE_IMAGE)" in cancelguard/*) deploy/docker/base-image.sh $(BASE_IMAGE) ;; \
	  *) echo "base image: $(BASE_IMAGE) (from a registry: docker pull it first)" ;; esac

.local/images/.fetched: pyproject.toml deploy/docker/wheelhouse.py $(STAMP)
	$(BIN)/python deploy/docker/wheelhouse.py .local/images
	@touch $@

# Targets after `engine` run in a sub-make: it reads DOCKER_HOST from the socket `engine` may have started.
images: engine ## build the service, Kafka and Postgres images offline (layers are cached)
	@$(MAKE) --no-print-directory _images

_images: setup kafka base-image .local/images/.fetched
	@echo "building $(IMAGE), $(KAFKA_IMAGE), $(POSTGRES_IMAGE) on $(BASE_IMAGE)"
	$(DOCKER_BUILD) -f deploy/docker/Dockerfile -t $(IMAGE) --build-arg VERSION=$(VERSION) \
	  --build-arg REVISION=$$(git rev-parse HEAD 2>/dev/null || echo unknown) .
	$(DOCKER_BUILD) -f deploy/docker/kafka.Dockerfile -t $(KAFKA_IMAGE) --build-arg KAFKA_VERSION=$(KAFKA_VERSION) .
	$(DOCKER_BUILD) -f deploy/docker/postgres.Dockerfile -t $(POSTGRES_IMAGE) .

compose-up: engine ## start everything under Docker Compose and run the demo against it through the API
	@$(MAKE) --no-print-directory _images _compose-up

_compose-up:
	$(IMAGES_ENV) $(COMPOSE) up -d
	@port() { $(COMPOSE) port $$1 $$2 | sed 's/.*://'; }; \
	export CANCELGUARD_KAFKA_BOOTSTRAP=127.0.0.1:$$(port kafka 19092) CANCELGUARD_API_PORT=$$(port api 50051) \
	  CANCELGUARD_INGESTION_HEALTH_PORT=$$(port ingestion 50052) CANCELGUARD_METRICS_HEALTH_PORT=$$(port metrics 50053); \
	$(BIN)/cancelguard demo --attach && \
	echo "Compose stack up (make compose-down removes it); grpcurl -plaintext 127.0.0.1:$$CANCELGUARD_API_PORT list"

compose-down: ## stop the Compose stack, remove its containers, network and volumes, stop our engine
	@if docker version >/dev/null 2>&1; then $(IMAGES_ENV) $(COMPOSE) down --volumes --remove-orphans; \
	  else echo "no Docker engine: nothing to remove"; fi
	@deploy/docker/engine.sh stop

kustomize: .local/bin/kustomize ## install kustomize (the version pinned above) into .local/bin (needs Go)

.local/bin/kustomize:
	@command -v go >/dev/null || { echo "kustomize is built with Go; install Go first"; exit 1; }
	GOBIN=$(CURDIR)/.local/bin go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)

deploy-tools: $(TOOLS)/.installed ## kubernetes-validate and checkov in their own venv (.local/tools)

$(TOOLS)/.installed:
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet "kubernetes-validate==1.37.0" "checkov==3.3.30"
	@touch $@

test-deploy: setup kafka ## images, testcontainers, Compose and manifest tests under a real Docker engine
	@started=$$(date +%s); ours_before=$$(deploy/docker/engine.sh ours && echo yes); \
	deploy/docker/engine.sh start; rc=$$?; \
	if [ $$rc = 3 ]; then \
	  echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"; \
	  echo "!! test-deploy SKIPPED: no Docker engine answers, and none can be installed here (see above)  !!"; \
	  echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"; \
	  exit 0; fi; \
	[ $$rc = 0 ] && $(MAKE) --no-print-directory _deploy-checks; rc=$$?; \
	[ -n "$$ours_before" ] || deploy/docker/engine.sh stop; \
	echo "test-deploy: $$([ $$rc = 0 ] && echo passed || echo FAILED) in $$(( $$(date +%s) - started ))s"; exit $$rc

_deploy-checks: _images kustomize deploy-tools
	CANCELGUARD_TEST_PROVIDER=docker $(IMAGES_ENV) PATH="$(CURDIR)/.local/bin:$(CURDIR)/$(TOOLS)/bin:$$PATH" \
	  $(BIN)/pytest -p no:cacheprovider tests/integration tests/deploy

clean: down engine-stop ## stop the stack and the engine; remove .venv, .local and generated files
	rm -rf $(VENV) .local .pytest_cache .mypy_cache .ruff_cache
	find services -name '*_pb2*.py*' -delete
	rm -f services/cancelguard/v1/.generated
