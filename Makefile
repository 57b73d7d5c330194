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

.PHONY: install demo test test-all lint bench bench-loss bench-quality bench-quality-smoke clean-demo

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

bench: install
	$(PYTHON) benchmarks/train_step.py --out benchmarks/results/train_step.json

# Chunked vs plain full-softmax CE: peak memory and step time at 10K/100K/1M items, 8,192 positions.
# Plain cases over LOSS_MAX_PLAIN_GIB run with fewer positions (the JSON says so); raise it on a big machine.
LOSS_MAX_PLAIN_GIB ?= 8
bench-loss: install
	$(PYTHON) benchmarks/loss_memory.py --max-plain-gib $(LOSS_MAX_PLAIN_GIB) --out benchmarks/results/loss_memory.json

# Every encoder x loss on ML-1M and Beauty (many CPU hours); QUALITY_ARGS picks a subset, e.g.
#   make bench-quality QUALITY_ARGS="--datasets ml1m --configs sasrec,gsasrec"
bench-quality: install
	$(PYTHON) benchmarks/quality.py $(QUALITY_ARGS)

# The same path end to end on MovieLens-100K, one epoch per config, results under .bench-smoke/.
bench-quality-smoke: install
	$(PYTHON) benchmarks/quality.py --data-from experiments/ml100k/sasrec.yaml --datasets ml1m --epochs 1 \
		--output-root .bench-smoke --results .bench-smoke/quality.json --table .bench-smoke/quality.md
