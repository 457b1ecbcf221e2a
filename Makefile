# pinpipe: the two set-up commands are `make demo` and `make test`; each creates .venv and installs.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
EXTRAS_TEST := kafka,s3,mysql,postgres,spark,dev
PYTEST_ARGS ?=

.PHONY: demo test check bench install install-test services-deps lint format clean help

help:
	@echo "make demo     create .venv, install, run the whole pipeline on the embedded defaults"
	@echo "make test     install what tests need (Python, JVM jars, MariaDB, Chromium, Airflow), run every test"
	@echo "make check    ruff + mypy"
	@echo "make bench    run the benchmarks (each prints ratios against a baseline measured in the same run)"

$(UV):
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q uv==0.13.8

# --compile-bytecode: each pinpipe command would otherwise compile the modules it imports (duckdb's alone
# ~0.3 CPU s) when bytecode is not written back (PYTHONDONTWRITEBYTECODE, a read-only venv).
$(VENV)/.installed-base: pyproject.toml | $(UV)
	$(UV) pip install -q --compile-bytecode --python $(PY) -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(UV)
	$(UV) pip install -q --compile-bytecode --python $(PY) -e '.[$(EXTRAS_TEST)]'
	touch $@ $(VENV)/.installed-base

install: $(VENV)/.installed-base
install-test: $(VENV)/.installed-test

demo: install
	$(VENV)/bin/pinpipe demo

# System packages and JVM jars the integration tests need; each script is idempotent and cached.
services-deps:
	bash infra/install-deps.sh

# pinpipe's own bytecode too: the editable install leaves the source out of --compile-bytecode, and each of
# the pinpipe processes the tests start (CLI runs, API servers, sinks) would otherwise compile what it
# imports, about 0.08 CPU s each, when bytecode is not written back (PYTHONDONTWRITEBYTECODE).
test: install-test services-deps
	$(PY) -m compileall -q pinpipe
	@set +e; $(VENV)/bin/pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

check: install-test
	$(VENV)/bin/ruff check pinpipe tests benchmarks dags
	$(VENV)/bin/ruff format --check pinpipe tests benchmarks dags
	$(VENV)/bin/mypy pinpipe tests benchmarks dags

format: install-test
	$(VENV)/bin/ruff format pinpipe tests benchmarks dags
	$(VENV)/bin/ruff check --fix pinpipe tests benchmarks dags

bench: install-test
	bash infra/wrk.sh install
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf .pinpipe .pytest_cache .mypy_cache .ruff_cache
