# Developer entry points. Needs only Python 3.11+ on the machine: everything else goes into .venv.
#   make run    migrate, load the demo data, start web + Celery worker + beat (+ embedded Redis) in the foreground
#   make test   the whole test suite (SQLite by default; DATABASE_URL / REDIS_URL when set)
#   make bench  every bench/*_bench.py (needs PostgreSQL on 127.0.0.1:5432, or BENCH_DATABASE_URL)
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
VAR_DIR := $(or $(BROKER_VAR_DIR),$(CURDIR)/var)
WEB_BIND ?= 127.0.0.1:8000
BENCHES := $(sort $(wildcard bench/*_bench.py))

export BROKER_VAR_DIR := $(VAR_DIR)
export WEB_BIND

.PHONY: help venv run test bench lint clean

help:
	@echo "make run    start the broker at http://$(WEB_BIND)/ with a Celery worker and beat (Ctrl-C stops all)"
	@echo "make test   run the test suite"
	@echo "make bench  run the benchmarks in bench/"
	@echo "make lint   ruff"

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required, found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)

# Reinstall only when pyproject.toml changed since the last install.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --disable-pip-version-check -q -e '.[dev]'
	@touch $@

venv: $(STAMP)

$(VAR_DIR):
	@mkdir -p $@/static

run: export BROKER_DEV := 1
run: export ORDERS_METER_INTERVAL_S := $(or $(ORDERS_METER_INTERVAL_S),5)
run: venv | $(VAR_DIR)
	@mkdir -p $(VAR_DIR)/static
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(BIN)/python manage.py load_demo
	@echo
	@echo "  Broker:    http://$(WEB_BIND)/api/v1/offers/   API docs: http://$(WEB_BIND)/api/docs/"
	@echo "  Admin:     http://$(WEB_BIND)/admin/   (demo logins are listed above by load_demo)"
	@echo "  Redis:     $${REDIS_URL:-embedded redis-server on unix://$(VAR_DIR)/redis.sock}"
	@echo "  Ctrl-C stops everything."
	@echo
	@procs="web worker billing beat agent"; [ -n "$$REDIS_URL" ] || procs="redis $$procs"; \
	  [ -n "$$STRIPE_SECRET_KEY" ] || procs="$$procs stripe"; \
	  PATH="$(BIN):$$PATH" exec $(BIN)/honcho start --no-colour -f Procfile $$procs

test: venv | $(VAR_DIR)
	@mkdir -p $(VAR_DIR)/static
	@BIN="$(BIN)" bash scripts/test.sh $(PYTEST_ARGS)

# PostgreSQL on 127.0.0.1:5432 (BENCH_DATABASE_URL for another server): as root, started or installed when it
# does not answer. wrk (Debian package) is the load generator when present; as root it is installed, otherwise
# a Python asyncio client stands in. Every bench runs; the target fails at the end if any of them missed a target.
bench: venv
	@if [ -z "$$BENCH_DATABASE_URL" ] && [ "$$(id -u)" = 0 ] && \
	  ! pg_isready -q -h 127.0.0.1 -p 5432 >/dev/null 2>&1; then bash scripts/services.sh postgresql; fi
	@if ! command -v wrk >/dev/null && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  (apt-get install -y -qq wrk >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq wrk >/dev/null)) \
	  || echo "wrk could not be installed; using the asyncio load generator"; fi
	@failed=""; for f in $(BENCHES); do m=$$(basename $$f .py); echo "== bench.$$m"; \
	  BROKER_DEV=1 $(BIN)/python -m bench.$$m || failed="$$failed $$m"; done; \
	  if [ -n "$$failed" ]; then echo "== benches that missed a target or failed:$$failed"; exit 1; fi

lint: venv
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) *.egg-info
