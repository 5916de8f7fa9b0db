# Fashion Studio: the commands a newcomer and CI run. Everything installs into .venv.
SHELL := /bin/bash
PYTHON_BIN ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
MODELS_DIR ?= models
HOST ?= 127.0.0.1
PORT ?= 3000
PYTEST_ARGS ?=

export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export HF_HUB_DISABLE_TELEMETRY := 1
export DO_NOT_TRACK := 1
export BENTOML_DO_NOT_TRACK := True
export TOKENIZERS_PARALLELISM := false

.PHONY: install models serve test generate clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON_BIN) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

# The small default models (production architectures, built locally, no download).
$(MODELS_DIR)/tiny/.complete: | $(STAMP)
	$(VENV)/bin/fashion-studio models build-tiny $(MODELS_DIR)/tiny
	@touch $@

models: $(MODELS_DIR)/tiny/.complete

generate: models
	$(VENV)/bin/fashion-studio generate "Professional product photography of a red women's dress" -o out/example.png --seed 42

serve: models
	$(VENV)/bin/fashion-studio generate "Professional product photography of a red women's dress" -o out/example.png --seed 42

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf out var .pytest_cache
