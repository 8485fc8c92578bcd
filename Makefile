# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Each bootstraps .venv from nothing but Python 3.11 and the package registries.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo demo-pyairbyte test bench clean

$(STAMP): pyproject.toml sandbox/pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip==24.3.1
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]" -e ./sandbox
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

demo-pyairbyte: $(STAMP)
	$(BIN)/python scripts/demo.py --pyairbyte

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) .venv-pyairbyte build .pytest_cache .ruff_cache
