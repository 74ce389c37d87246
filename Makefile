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

.PHONY: demo test docs bench lint install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)" "$(TORCHVISION)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m bayesdrop.demo

# One BLAS/OpenMP thread per pytest worker: two workers on two cores, no oversubscription.
test: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2

# The gallery runs every tutorial in full mode (one BLAS thread: about six minutes of CPU);
# each tutorial asserts the claims its page makes, so a failed claim fails the build.
# `BAYESDROP_SMOKE=1 make docs` is the quick check that the code runs (short-run output).
docs: $(STAMP)
	$(BIN)/python docs/_tools/fetch_mathjax.py
	OMP_NUM_THREADS=1 $(BIN)/sphinx-build -E -W --keep-going -q -b html docs docs/_build/html

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

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) docs/_build docs/auto_tutorials docs/api/generated docs/_static/mathjax
