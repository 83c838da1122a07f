# Two commands do all the set-up on a fresh machine (Python >= 3.11 with venv):
#   make serve  creates .venv, installs the engine, serves the API on embedded defaults
#               (SQLite, in-process state, a demo tenant with the bundled content packs)
#   make test   creates .venv, installs the engine, lints, type-checks and runs the test suite
# (the tests also need PostgreSQL and Redis on 127.0.0.1; .ci/run starts them when down)
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= 2.13.0

.PHONY: serve demo test bench clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first, pinned: the CPU build, so nothing pulls a multi-GB CUDA build
	$(BIN)/python -m pip install --quiet torch==$(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

serve: $(VENV)/.installed
	$(BIN)/tutor serve --demo

demo: $(VENV)/.installed
	$(BIN)/tutor demo

test: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest

bench: $(VENV)/.installed
	$(BIN)/python bench/bkt_vs_pybkt.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
