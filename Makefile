# One command to set up and run the default sweep (`make run`), one to set up and run the tests (`make test`).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,cluster]'
	touch $(STAMP)

run: install
	$(BIN)/sweep run --config studies/reference.toml

test: install
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) studies/*.db studies/artifacts exports
