# One command to set up and run the default sweep (`make run`), one to set up and run the tests (`make test`).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test test-slow lint examples docs docs-build clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	@# -qq: errors only; pip -q still printed setuptools' editable-install notice and index warnings on first run
	$(BIN)/python -m pip install -qq --upgrade pip
	$(BIN)/python -m pip install -qq -e '.[test,cluster]'
	touch $(STAMP)

run: install
	$(BIN)/sweep run --config studies/reference.toml

# One more test process than cores (pytest-xdist), each taking work from the others when it runs out: the process tests
# spend much of their time waiting on the processes, sleeps and databases they start, and the extra process fills that
# time (docs/development.md#test-time). The few long process tests marked slow run in CI's second step.
TEST_PROCESSES ?= $(shell $(PYTHON) -c 'import os; print(len(os.sched_getaffinity(0)) + 1)')

test: install
	$(BIN)/python -m pytest -n $(TEST_PROCESSES) --dist worksteal -m "not slow"

test-slow: install
	$(BIN)/python -m pytest -n auto -m slow

# Ruff (pyproject.toml [tool.ruff]): the formatter's layout and the linter's rules, as CI checks them.
lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

# The documentation site (mkdocs.yml, docs/): served with live reload, or built as CI builds it (broken links fail).
DOCS_STAMP := $(VENV)/.installed-docs

$(DOCS_STAMP): $(STAMP)
	$(BIN)/python -m pip install -qq -e '.[docs]'
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve -a 127.0.0.1:8000

docs-build: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# The data of the "Your own model" examples (studies/digits-cnn.toml, sequences-conv1d.toml, tabular-dropout.toml).
examples: install
	$(BIN)/python -m sweep.data.examples studies/data

clean:
	rm -rf $(VENV) studies/*.db studies/artifacts studies/data exports site
