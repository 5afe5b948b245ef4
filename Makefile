# The two quick-start commands: `make serve` and `make test` (see README.md).
# Both install pinned packages from the public package index into .venv, then this project
# itself (pip install -e ., no dependencies: the pins are the requirements files), so
# `from emotionlib import EmotionPipeline` works from any folder. Serving needs
# requirements/import.txt (the service, plus Keras/TensorFlow/onnx to register the model), the
# tests requirements/test.txt (that + training + test tools). The Bento image installs only
# requirements/serve.txt (no TensorFlow).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 9000

.PHONY: serve test install import image container-test settings-table pictures clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.serve-installed: requirements/import.txt requirements/serve.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements/import.txt
	touch $@

$(VENV)/.test-installed: requirements/test.txt requirements/import.txt requirements/serve.txt requirements/train.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements/test.txt
	touch $@

# --no-build-isolation: the venv's own setuptools builds it, so no build environment is fetched.
$(VENV)/.package-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

install: $(VENV)/.test-installed $(VENV)/.package-installed

import: $(VENV)/.serve-installed $(VENV)/.package-installed
	$(BIN)/python import_model.py

# BENTOML_DO_NOT_TRACK: BentoML would otherwise send usage statistics to its vendor.
serve: import
	BENTOML_DO_NOT_TRACK=true $(BIN)/bentoml serve . --port $(PORT)

test: install
	BENTOML_DO_NOT_TRACK=true $(BIN)/python -m pytest

# The serving image (bentofile.yaml's dockerfile_template: deploy/Dockerfile.template), tagged
# face-emotion:latest; BACKEND=buildah without a Docker engine. BentoML 1.4.36+ refuses that
# template when containerize's temporary build context lies outside the working directory
# (github.com/bentoml/BentoML/issues/5566), so the context is made under build/.
BACKEND ?= docker
image: import
	BENTOML_DO_NOT_TRACK=true $(BIN)/bentoml build
	mkdir -p build
	TMPDIR=$(CURDIR)/build BENTOML_DO_NOT_TRACK=true $(BIN)/bentoml containerize --backend $(BACKEND) \
		face-emotion:latest -t face-emotion:latest

# Second stage: build the Bento's image with buildah, run it with podman, call it.
container-test: install
	BENTOML_DO_NOT_TRACK=true $(BIN)/python -m pytest -m container tests/container

# The README's configuration table, from the settings' definitions (a test checks it is current).
settings-table: $(VENV)/.serve-installed
	$(BIN)/python -m emotionlib.serving.settings --write README.md

# The README's example files (docs/group*.jpg, docs/face-crop.jpg) and example answer, made with the
# bundled model; rerun when models/ changes (tests/test_readme.py checks them against the model).
pictures: $(VENV)/.serve-installed $(VENV)/.package-installed
	$(BIN)/python docs/examples.py

clean:
	rm -rf $(VENV) .pytest_cache *.egg-info build
