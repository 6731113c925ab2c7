# Reviewdesk — the two Quickstart commands are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | sha1sum | cut -c1-12)

.PHONY: install demo test test-fast lint format bench migrate clean

install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(VENV)/bin/pip install -q --disable-pip-version-check uv
	@# --compile-bytecode: without .pyc files `import mlflow` costs ~3.7 s instead of ~1.4 s
	@UV_PYTHON_DOWNLOADS=never $(VENV)/bin/uv pip install -q --python $(PY) --compile-bytecode -r requirements-dev.txt
	@rm -f $(VENV)/.installed-* && touch $@

migrate: install
	$(PY) manage.py migrate --noinput

demo: install
	DEBUG=true $(PY) manage.py migrate --noinput
	DEBUG=true $(PY) manage.py load_demo
	DEBUG=true $(PY) manage.py log_demo_models
	DEBUG=true $(PY) manage.py load_demo_pipelines
	DEBUG=true $(PY) scripts/demo.py

# Every test, on every core (CI runs this).
test: install
	$(PY) scripts/run_tests.py $(ARGS)

# The quick loop while coding: no Celery-worker, browser or end-to-end tests (marked slow), kept test databases.
test-fast: install
	$(PY) scripts/run_tests.py --fast $(ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	REVIEWDESK_TESTING=true $(VENV)/bin/mypy
	DJANGO_SETTINGS_MODULE=reviewapp.settings $(VENV)/bin/lint-imports --no-cache
	REVIEWDESK_TESTING=true $(PY) manage.py makemigrations --check --dry-run
	$(PY) scripts/check_private_imports.py

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: install
	$(PY) bench/run.py $(ARGS)

clean:
	rm -rf var/test var/broker
