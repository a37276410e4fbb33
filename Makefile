# Every path installs the pinned CPU torch first: an unpinned torch can pull a multi-GB CUDA build.
# CI (.ci/run) calls `make check` too, so the developers' checks and CI's cannot drift apart.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install dev demo test check bench clean

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0

# Stamps: reinstall only when the dependency lists change.
$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml requirements-dev.txt | $(PY)
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

dev: $(VENV)/.installed-dev

# The demo needs estilo alone: no extras, no test tools.
demo: install
	$(VENV)/bin/estilo demo

test: dev
	$(PY) -m pytest

check: dev
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/mypy

bench: install
	$(PY) benchmarks/iteration.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
