# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Each bootstraps .venv from nothing but Python 3.11 and the package registries:
#   .venv-poetry  Poetry itself, pinned by scripts/poetry-requirements.txt
#   .venv         the connector, its dev tools and the sandbox, exactly as poetry.lock pins them
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
POETRY_VENV := .venv-poetry
POETRY_STAMP := $(POETRY_VENV)/.installed
# Poetry never picks up another activated venv, and never asks a desktop keyring for credentials.
POETRY := env -u VIRTUAL_ENV PYTHON_KEYRING_BACKEND=keyring.backends.null.Keyring \
	POETRY_VIRTUALENVS_IN_PROJECT=true $(POETRY_VENV)/bin/poetry --no-interaction

.PHONY: demo demo-pyairbyte test qa bench clean

$(POETRY_STAMP): scripts/poetry-requirements.txt
	test -x $(POETRY_VENV)/bin/python || $(PYTHON) -m venv $(POETRY_VENV)
	$(POETRY_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r scripts/poetry-requirements.txt
	touch $(POETRY_STAMP)

$(STAMP): pyproject.toml poetry.lock poetry.toml sandbox/pyproject.toml $(POETRY_STAMP)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(POETRY) sync --with dev
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

demo-pyairbyte: $(STAMP)
	$(BIN)/python scripts/demo.py --pyairbyte

# `make test` runs these checks too (integration_tests/test_airbyte_qa.py).
qa:
	$(PYTHON) scripts/airbyte_qa.py

# The tools with venvs of their own (Airbyte's QA checks, PyAirbyte), prepared side by side before the tests
# that use them; each is installed once and reused while its requirements file is unchanged.
PRIVATE_VENVS := .venv-qa:scripts/qa-requirements.txt .venv-pyairbyte:scripts/pyairbyte-requirements.txt

test: $(STAMP)
	$(BIN)/ruff check .
	$(PYTHON) scripts/private_venv.py $(PRIVATE_VENVS)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) $(POETRY_VENV) .venv-pyairbyte .venv-qa build dist .pytest_cache .ruff_cache
