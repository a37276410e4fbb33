# Every path installs the pinned CPU torch first: an unpinned torch can pull a multi-GB CUDA build.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install demo test check bench clean

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0

install: $(PY)
	$(PY) -m pip install -q -e '.[test]'

demo: install
	$(VENV)/bin/estilo demo

test: install
	$(PY) -m pytest

check: install
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/mypy

bench: install
	$(PY) benchmarks/iteration.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
