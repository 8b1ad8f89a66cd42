# The README's commands. `make demo` and `make test` each work on a fresh machine as the only command.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Synthesizers and audio tools the corpus generator needs; Chromium for the browser tests.
DEBIAN_PACKAGES := espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts \
	sox libsox-fmt-base libsndfile1 chromium
STAMP := $(VENV)/.installed
DEMO_DIR ?= data/sample-corpus
DEMO_COLLECTION ?= data/sample-collection
DEMO_N ?= 300
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: setup system-deps demo test bench lint clean-venv

system-deps:
	@missing=""; for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null \
	    || { echo "Could not install$$missing: install them with apt-get and run make again."; exit 1; }; \
	fi

# The CPU wheel of torch is installed first on machines without an NVIDIA driver, so that the project's
# unpinned torch requirement is already met and pip never pulls the multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip "setuptools<81" wheel
	if ! command -v nvidia-smi >/dev/null 2>&1; then $(BIN)/pip install -q torch==2.13.0; fi
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

setup: system-deps $(STAMP)

# Each step resumes: a second `make demo` regenerates nothing and re-embeds nothing (after an update
# of the bundled weights the old sample collection is moved aside and rebuilt).
demo: setup
	$(BIN)/clsp-search corpus generate $(DEMO_DIR) --n $(DEMO_N) --seed 7 --split-by-voice
	@echo "Sample corpus: $(DEMO_DIR)/manifest.jsonl ($(DEMO_N) clips under $(DEMO_DIR)/audio)"
	$(BIN)/clsp-search index $(DEMO_DIR)/manifest.jsonl --collection $(DEMO_COLLECTION) --model clsp-mini --rebuild-on-model-change
	@echo "Serving $(DEMO_COLLECTION) on http://$(HOST):$(PORT)/ (Ctrl-C to stop)"
	$(BIN)/clsp-search serve $(DEMO_COLLECTION) --host $(HOST) --port $(PORT)

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python -m benchmarks

lint: setup
	$(BIN)/ruff check .

clean-venv:
	rm -rf $(VENV)
