# Two commands do all the set-up on a fresh machine (Python 3.11 with venv):
#   make demo   creates .venv, installs, runs the main job end to end on synthetic data
#   make test   creates .venv, installs with test extras, runs the tests
# Both install every package at the version in constraints.txt.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=

.PHONY: demo test install install-dev clean-venv

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q pip==26.3

install: $(BIN)/python
	$(BIN)/python -m pip install -q -c constraints.txt -e .

install-dev: $(BIN)/python
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"

demo: install
	$(BIN)/python -m flows.demo $(ARGS)

test: install-dev
	$(BIN)/python -m pytest -n 2 --dist loadfile $(ARGS)

clean-venv:
	rm -rf $(VENV)
