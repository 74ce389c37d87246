# The README's two commands: `make demo` and `make test`. Both build .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# torch is pinned to the CPU wheel that lies on this machine's disk; a looser spec
# could pull a multi-GB CUDA build.
TORCH  ?= torch==2.13.0
# The torchvision release built against that torch (its CUDA operator registrations do not load
# beside the CPU build; tests/conftest.py stubs them, the models themselves work).
TORCHVISION ?= torchvision==0.28.0
export BAYESDROP_DATA ?= $(abspath ../shared/data)
# pip prints one line per package it collects and installs (no progress bars outside a
# terminal); `make PIP_FLAGS=-q ...` for the quiet install.
PIP_FLAGS ?=

.PHONY: demo test docs bench lint install clean

$(STAMP): pyproject.toml
	@echo "==> [1/4] creating the virtual environment $(VENV) (first run only)"
	$(PYTHON) -m venv $(VENV)
	@echo "==> [2/4] upgrading pip"
	$(BIN)/python -m pip install $(PIP_FLAGS) --upgrade pip
	@echo "==> [3/4] installing $(TORCH) and $(TORCHVISION)"
	$(BIN)/python -m pip install $(PIP_FLAGS) "$(TORCH)" "$(TORCHVISION)"
	@echo "==> [4/4] installing bayesdrop and its dev dependencies (test, lint, docs, fast)"
	$(BIN)/python -m pip install $(PIP_FLAGS) -e ".[dev]"
	@# TorchCP 1.2, a peer of tests/test_conformal_peers.py, without its dependencies (torchsort is
	@# a CUDA build, stubbed in tests/conftest.py); torch_geometric and what it imports, torch pinned
	$(BIN)/python -m pip install $(PIP_FLAGS) --no-deps "torchcp==1.2.*" && \
		$(BIN)/python -m pip install $(PIP_FLAGS) "$(TORCH)" torch_geometric xxhash requests aiohttp psutil pandas
	touch $(STAMP)
	@echo "==> $(VENV) is ready"

install: $(STAMP)

demo: $(STAMP)
	@echo "==> running the demo (python -m bayesdrop.demo, under a minute on 2 cores)"
	$(BIN)/python -m bayesdrop.demo

# One BLAS/OpenMP thread per pytest worker: two workers on two cores, no oversubscription.
test: $(STAMP)
	@echo "==> running the tests and doctests on 2 workers (one dot per test, progress in [%])"
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2

# The gallery runs every tutorial in full mode (one BLAS thread: about six minutes of CPU);
# each tutorial asserts the claims its page makes, so a failed claim fails the build.
# `BAYESDROP_SMOKE=1 make docs` is the quick check that the code runs (short-run output).
# Without -q, Sphinx prints a line per page read and written and sphinx-gallery one per tutorial
# it runs, with its run time.
docs: $(STAMP)
	@echo "==> fetching MathJax for offline math (once)"
	$(BIN)/python docs/_tools/fetch_mathjax.py
	@echo "==> building the HTML docs, running every tutorial (full mode: several minutes)"
	@mkdir -p docs/_build
	@# the log streams (and is kept); a failed tutorial's traceback is repeated at the end, where
	@# CI's tail is
	{ OMP_NUM_THREADS=1 $(BIN)/sphinx-build -E -W --keep-going -b html docs docs/_build/html; \
		echo $$? > docs/_build/sphinx.rc; } 2>&1 | tee docs/_build/sphinx.log; \
	rc=$$(cat docs/_build/sphinx.rc); \
	if [ $$rc -ne 0 ]; then \
		echo "==> the docs build failed (exit $$rc); a tutorial's failure, if any:"; \
		grep -A30 "failed to execute correctly" docs/_build/sphinx.log | head -60; \
		echo "==> the build's warnings (errors under -W):"; \
		grep -E "WARNING|ERROR" docs/_build/sphinx.log | head -40; \
	fi; exit $$rc
	@echo "==> docs written to docs/_build/html/index.html"

# Quick configurations of every benchmark (full ones: see benchmarks/README.md).
bench: $(STAMP)
	$(BIN)/python benchmarks/concrete_synthetic.py --quick
	$(BIN)/python benchmarks/mc_predict.py --quick --parts abc
	$(BIN)/python benchmarks/mc_predict.py --quick --parts d --models mobilenet_v3_small,bert,lstm_batch_first
	$(BIN)/python benchmarks/calibration.py --n 1000000
	$(BIN)/python benchmarks/rnn_speed.py --rounds 3
	$(BIN)/python benchmarks/ptb_lm.py --train-tokens 5000 --eval-tokens 2000 --epochs 1 --mc-samples 2
	$(BIN)/python benchmarks/early_dropout.py --quick
	$(BIN)/python benchmarks/rdrop.py --quick
	$(BIN)/python benchmarks/active_learning.py --quick
	$(BIN)/python benchmarks/rnn_sentiment.py --quick
	$(BIN)/python benchmarks/bandit.py --quick
	$(BIN)/python benchmarks/concrete_fashion.py --quick
	$(BIN)/python benchmarks/distributed.py --quick
	$(BIN)/python benchmarks/conformal.py --quick
	$(BIN)/python benchmarks/generate.py --quick
	$(BIN)/python benchmarks/hooked_engine.py --quick

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) docs/_build docs/auto_tutorials docs/api/generated docs/_static/mathjax
