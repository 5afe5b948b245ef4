# The two quick-start commands: `make serve` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.requirements-installed

.PHONY: serve test install import container-test clean

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $(STAMP)

install: $(STAMP)

import: $(STAMP)
	$(BIN)/python import_model.py

serve: import
	$(BIN)/bentoml serve . --port 9000

test: $(STAMP)
	$(BIN)/python -m pytest

# Second stage: build the Bento's image with buildah, run it with podman, call it.
container-test: $(STAMP)
	$(BIN)/python -m pytest -m container tests/container

clean:
	rm -rf $(VENV) .pytest_cache
