# apiclub: `make help` lists the targets.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Production: the domain names to serve, comma-separated (or set APICLUB_DOMAINS).
DOMAINS ?= $(APICLUB_DOMAINS)

.DEFAULT_GOAL := help
.PHONY: help install dev prod migrate lint fmt typecheck test clean

help: ## Show this help
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*##/ {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(BIN)/apiclub: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

install: $(BIN)/apiclub ## Create .venv and install the project with its dev tools

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

test: lint ## Lint, then run the whole test suite
	$(BIN)/pytest

clean: ## Remove the virtual environment and caches (keeps ./data)
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
