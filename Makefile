# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
# Our shipped specs find public datasets under this root (override: make demo SEQREC_DATA_ROOT=/data).
SEQREC_DATA_ROOT ?= $(abspath ../shared/datasets)
export SEQREC_DATA_ROOT
# The CPU wheel of torch is pinned first so nothing pulls a multi-GB CUDA build; GPU users
# install their own torch before `make install` and this line is then a no-op for them.
TORCH_PIN ?= torch==2.13.0
DEMO_SPEC := experiments/ml100k/sasrec.yaml
DEMO_OUT := demo

.PHONY: install demo test test-all lint bench bench-eval report-ml1m clean-demo

.make/installed: pyproject.toml
	$(PYTHON) -c "import torch" 2>/dev/null || $(PYTHON) -m pip install -q "$(TORCH_PIN)"
	$(PYTHON) -m pip install -q -e ".[dev]"
	@mkdir -p .make && touch $@

install: .make/installed

# MovieLens-100K end to end: prepare -> finetune -> evaluate on test -> export. Starts over each time.
demo: install clean-demo
	seqrec prepare $(DEMO_SPEC) --set runtime.output_root=$(DEMO_OUT)
	seqrec finetune $(DEMO_SPEC) --set runtime.output_root=$(DEMO_OUT)
	seqrec evaluate $(DEMO_SPEC) --split test --set runtime.output_root=$(DEMO_OUT)
	seqrec export $(DEMO_SPEC) --set runtime.output_root=$(DEMO_OUT)
	seqrec recommend $(DEMO_OUT)/exports/ml100k-sasrec --history 50,172,181 -k 10  # after the Star Wars trilogy

clean-demo:
	rm -rf $(DEMO_OUT)/runs/ml100k-sasrec $(DEMO_OUT)/exports/ml100k-sasrec

test: install
	$(PYTHON) -m pytest -m "not slow"

test-all: install
	$(PYTHON) -m pytest

lint: install
	$(PYTHON) -m ruff check src tests benchmarks

bench: install bench-eval
	$(PYTHON) benchmarks/train_step.py --out benchmarks/results/train_step.json

# Full-ranking evaluation users/s, batched + chunked vs a naive per-user loop (ML-1M and a 1M-item catalogue).
bench-eval: install
	$(PYTHON) benchmarks/eval_speed.py --out benchmarks/results/eval_speed.json

# MovieLens-1M report: SASRec (an existing run, evaluated again) against the four baselines, with CIs and
# paired tests (and, labelled apart, sampled metrics with 100 uniform negatives, to show how they mislead).
# Baseline runs are refitted from scratch (seconds); the SASRec run must already be trained.
SEQREC ?= seqrec
ML1M_SASREC_SPEC ?= experiments/ml1m/sasrec_anneal.yaml
ML1M_SASREC_RUN ?= ml1m-sasrec-anneal
ML1M_BASELINES := popularity itemknn markov random
report-ml1m:
	$(SEQREC) prepare experiments/ml1m/sasrec.yaml
	for kind in $(ML1M_BASELINES); do \
	  rm -rf runs/ml1m-$$kind && \
	  $(SEQREC) finetune experiments/ml1m/$$kind.yaml && \
	  $(SEQREC) evaluate experiments/ml1m/$$kind.yaml --split test --sampled uniform || exit 1; \
	done
	$(SEQREC) evaluate $(ML1M_SASREC_SPEC) --split test --sampled uniform
	$(SEQREC) report runs/$(ML1M_SASREC_RUN) $(addprefix runs/ml1m-,$(ML1M_BASELINES)) --out reports/ml1m \
	  --title "MovieLens-1M: SASRec vs non-neural baselines (full ranking, leave-one-out)"
