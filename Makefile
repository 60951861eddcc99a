# One entry point for the common chores. `make run` and `make test` bootstrap
# the virtualenv themselves, so a fresh clone needs nothing else.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run test lint fmt venv dev-venv

$(VENV)/.runtime: requirements.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(VENV)/.runtime $@

venv: $(VENV)/.runtime
dev-venv: $(VENV)/.dev

run: $(VENV)/.runtime  ## install, migrate the SQLite database, serve on :8000
	$(VENV)/bin/flask db upgrade
	$(VENV)/bin/gunicorn -c gunicorn.conf.py wsgi:app

test: $(VENV)/.dev  ## the test suite (TEST_DATABASE_URL=... for PostgreSQL)
	$(PY) -m pytest

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy

fmt: $(VENV)/.dev
	$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .
