# One command to set up and run the default sweep (`make run`), one to set up and run the tests (`make test`).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test test-slow examples clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	@# -qq: errors only; pip -q still printed setuptools' editable-install notice and index warnings on first run
	$(BIN)/python -m pip install -qq --upgrade pip
	$(BIN)/python -m pip install -qq -e '.[test,cluster]'
	touch $(STAMP)

run: install
	$(BIN)/sweep run --config studies/reference.toml

# Two test processes (pytest-xdist; one per core here); the few long process tests marked slow run in CI's second step.
test: install
	$(BIN)/python -m pytest -n auto -m "not slow"

test-slow: install
	$(BIN)/python -m pytest -n auto -m slow

# The data of the "Your own model" examples (studies/digits-cnn.toml, sequences-conv1d.toml, tabular-dropout.toml).
examples: install
	$(BIN)/python -m sweep.examples studies/data

clean:
	rm -rf $(VENV) studies/*.db studies/artifacts studies/data exports
