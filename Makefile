# apiclub: `make help` lists the targets.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Production: the domain names to serve, comma-separated (or set APICLUB_DOMAINS).
DOMAINS ?= $(APICLUB_DOMAINS)

.DEFAULT_GOAL := help
# Containers (podman): .env.example documents the compose settings.
PODMAN  ?= podman
COMPOSE ?= $(if $(wildcard $(BIN)/podman-compose),$(BIN)/podman-compose,podman-compose)
APICLUB_IMAGE ?= localhost/apiclub:latest
NGINX_IMAGE   ?= localhost/apiclub-nginx:latest
POSTGRES_IMAGE ?= localhost/apiclub-postgres:latest
# Empty: the Containerfiles' defaults (official python:3.11-slim and debian:bookworm-slim).
BASE_IMAGE       ?=
NGINX_BASE_IMAGE ?=
# pip inside the build trusts this bundle (mounted as a build secret, never stored in a layer).
PIP_CERT ?= /etc/ssl/certs/ca-certificates.crt
comma := ,

.PHONY: help install lock dev prod migrate lint fmt typecheck settings-table test test-deps clean \
	image image-api image-nginx image-postgres up up-nginx up-scale rolling-restart down \
	test-containers bench bench-scale bench-replicas

help: ## Show this help
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*##/ {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# Installs are locked: uv (itself pinned with hashes in requirements-uv.txt) installs exactly what
# uv.lock holds, and refuses when pyproject.toml and the lock disagree (--locked).
UV_SYNC := UV_PROJECT_ENVIRONMENT=$(VENV) $(BIN)/uv sync --locked --inexact --extra dev --extra bench

$(BIN)/apiclub: pyproject.toml uv.lock requirements-uv.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --require-hashes -r requirements-uv.txt
	$(UV_SYNC)
	@touch $@

install: $(BIN)/apiclub ## Create .venv and install the locked project with its dev tools

lock: install ## Refresh uv.lock after a change to pyproject.toml (upgrade: UV_ARGS=--upgrade)
	$(BIN)/uv lock $(UV_ARGS)
	$(UV_SYNC)

dev: install ## Serve https://localhost:8443 (local CA) and http://localhost:8080
	$(BIN)/apiclub serve

prod: install ## Serve the configured DOMAINS on 443 and 80 (root or CAP_NET_BIND_SERVICE)
	$(BIN)/apiclub serve --host 0.0.0.0 --https-port 443 --http-port 80 \
		$(if $(DOMAINS),--domain $(DOMAINS))

migrate: install ## Apply database migrations and exit
	$(BIN)/apiclub migrate

lint: install ## ruff (lint and format check) and mypy --strict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: install ## Format the code and apply safe lint fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

settings-table: install ## Rewrite README's configuration table from src/apiclub/setting_table*.py
	$(BIN)/python -m apiclub.settings_doc README.md

test: lint ## Lint, then run the whole test suite (tests needing a missing tool skip, naming it)
	$(BIN)/pytest

SYSTEM_PACKAGES = $(shell grep -v '^\#' tests/system-packages.txt)

test-deps: ## As root: install the Debian packages the tests drive (tests/system-packages.txt)
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(SYSTEM_PACKAGES)
	bash tests/fetch-pebble-210.sh

image: image-api image-nginx image-postgres ## Build the container images with podman

image-api: ## Build the API image (Containerfile)
	$(PODMAN) build --format docker --tag $(APICLUB_IMAGE) --file Containerfile \
		$(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE)) \
		$(if $(wildcard $(PIP_CERT)),--secret id=pip_cert$(comma)src=$(PIP_CERT)) .

image-nginx: ## Build the nginx image (deploy/nginx/Containerfile)
	$(PODMAN) build --format docker --tag $(NGINX_IMAGE) --file deploy/nginx/Containerfile \
		$(if $(NGINX_BASE_IMAGE),--build-arg NGINX_BASE_IMAGE=$(NGINX_BASE_IMAGE)) deploy/nginx

image-postgres: ## Build the PostgreSQL image for the "scale" profile (deploy/postgres/Containerfile)
	$(PODMAN) build --format docker --tag $(POSTGRES_IMAGE) --file deploy/postgres/Containerfile \
		$(if $(NGINX_BASE_IMAGE),--build-arg POSTGRES_BASE_IMAGE=$(NGINX_BASE_IMAGE)) deploy/postgres

up: ## Run the API alone on the host's 443/80 (compose profile "direct"; settings in .env)
	$(COMPOSE) --profile direct up -d

up-nginx: ## Run nginx on the host's 443/80 in front of the API (compose profile "nginx")
	$(COMPOSE) --profile nginx up -d

up-scale: ## nginx in front of API_REPLICAS replicas on PostgreSQL (profile "scale"; .env)
	$(COMPOSE) --profile scale up -d

# The services whose containers are the replicas (the script's default: api-behind-nginx).
ROLLING_SERVICES ?=

rolling-restart: ## Restart the API replicas one at a time, each healthy before the next
	deploy/rolling-restart.sh $(ROLLING_SERVICES)

down: ## Stop whichever mode runs (the data volume stays)
	$(COMPOSE) --profile direct --profile nginx --profile scale down

test-containers: install ## Build the images, run the three compose modes (direct, nginx, scale) with podman (slow; root)
	APICLUB_TEST_CONTAINERS=1 $(BIN)/pytest -m slow tests/deploy

bench: install ## Benchmark against the tutorial's stack (needs nginx, wrk, h2load); BENCH_ARGS=--quick
	@# As the container image does: a start should not pay for compiling apiclub's modules.
	$(BIN)/python -m compileall -q src
	$(BIN)/python -m bench $(BENCH_ARGS)

bench-scale: install ## API latency at 1k/100k/1M tasks (builds cached DBs under /tmp, ~3 min)
	$(BIN)/python -m bench.scale_data $(BENCH_ARGS)

bench-replicas: install ## Throughput through nginx with 1, 2, 4 replicas on PostgreSQL (~5 min)
	$(BIN)/python -m bench.replicas $(BENCH_ARGS)

clean: ## Remove the virtual environment and caches (keeps ./data)
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
