# Two commands do everything on a fresh machine: `make demo` and `make test` (`make test-quick` for the
# inner loop). Each bootstraps .venv from nothing but Python 3.11 and the package registries:
#   .venv-poetry  Poetry itself, pinned by scripts/poetry-requirements.txt
#   .venv         the connector, its dev tools and the sandbox, exactly as poetry.lock pins them
# `make test` also builds the container image (`make image`: podman and debootstrap from apt, announced
# before they are installed; podman settings kept in build/podman, nothing written under /etc).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
POETRY_VENV := .venv-poetry
POETRY_STAMP := $(POETRY_VENV)/.installed
# Poetry never picks up another activated venv, and never asks a desktop keyring for credentials.
POETRY := env -u VIRTUAL_ENV PYTHON_KEYRING_BACKEND=keyring.backends.null.Keyring \
	POETRY_VIRTUALENVS_IN_PROJECT=true $(POETRY_VENV)/bin/poetry --no-interaction

.PHONY: demo demo-pyairbyte test test-quick image qa bench clean

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

# The image is built first, in the open, so what it installs is printed before it happens; the tests
# then use it as it is. -rs lists every skipped test with its reason.
test: $(STAMP)
	$(BIN)/ruff check .
	$(PYTHON) scripts/private_venv.py $(PRIVATE_VENVS)
	bash scripts/build_image.sh
	SOUNDLINK_SKIP_IMAGE_BUILD=1 $(BIN)/python -m pytest -rs --durations=10

# The inner loop, about a minute: lint, unit tests, the sandbox's tests and whole syncs over real HTTP.
# No image, no private venvs; `make test` runs everything.
QUICK_TESTS := unit_tests sandbox/tests integration_tests/test_sync.py integration_tests/test_examples.py

test-quick: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -rs $(QUICK_TESTS)

image:
	bash scripts/build_image.sh

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) $(POETRY_VENV) .venv-pyairbyte .venv-qa build dist .pytest_cache .ruff_cache
