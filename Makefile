# Every target depends on the install, so `make test` or `make demo` alone work on a fresh clone.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_OUT ?= demo_out
BENCH_OUT ?= bench_out
BENCH_SIZE ?= quick

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install test demo bench lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	# The CPU torch wheel first: an unpinned `torch` would pull a multi-GB CUDA build.
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q "torch==2.13.0"
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -p no:cacheprovider tests

demo: $(STAMP)
	$(BIN)/umarvel demo --out $(DEMO_OUT)

# every benchmark at CPU sizes (a few minutes on 2 idle cores): one JSON each and the markdown
# tables for docs/benchmarks.md in $(BENCH_OUT); BENCH_SIZE=default for the issue-size runs
bench: $(STAMP)
	$(BIN)/umarvel bench all --size $(BENCH_SIZE) --out $(BENCH_OUT)

lint: $(STAMP)
	$(BIN)/ruff check umarvel_cli kernels tests
	$(BIN)/ruff format --check umarvel_cli kernels tests

clean:
	rm -rf $(DEMO_OUT) $(BENCH_OUT) .pytest_cache
