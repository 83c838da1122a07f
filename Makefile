# Two commands do all the set-up on a fresh machine (Python >= 3.11 with venv):
#   make demo   creates .venv, installs the engine, runs the demo on embedded defaults
#   make test   creates .venv, installs the engine, lints and runs the test suite
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test bench clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

demo: $(VENV)/.installed
	$(BIN)/tutor demo

test: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/pytest

bench: $(VENV)/.installed
	$(BIN)/python bench/bkt_vs_pybkt.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
