# The two quick-start commands: `make serve` and `make test` (see README.md).
# Both install pinned packages from the public package index into .venv: serving needs
# requirements/import.txt (the service, plus Keras/TensorFlow/onnx to register the model), the
# tests requirements/test.txt (that + training + test tools). The Bento image installs only
# requirements/serve.txt (no TensorFlow).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 9000

.PHONY: serve test install import container-test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.serve-installed: requirements/import.txt requirements/serve.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements/import.txt
	touch $@

$(VENV)/.test-installed: requirements/test.txt requirements/import.txt requirements/serve.txt requirements/train.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements/test.txt
	touch $@

install: $(VENV)/.test-installed

import: $(VENV)/.serve-installed
	$(BIN)/python import_model.py

# BENTOML_DO_NOT_TRACK: BentoML would otherwise send usage statistics to its vendor.
serve: import
	BENTOML_DO_NOT_TRACK=true $(BIN)/bentoml serve . --port $(PORT)

test: $(VENV)/.test-installed
	BENTOML_DO_NOT_TRACK=true $(BIN)/python -m pytest

# Second stage: build the Bento's image with buildah, run it with podman, call it.
container-test: $(VENV)/.test-installed
	BENTOML_DO_NOT_TRACK=true $(BIN)/python -m pytest -m container tests/container

clean:
	rm -rf $(VENV) .pytest_cache
