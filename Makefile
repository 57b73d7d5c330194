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

.PHONY: install demo test test-all lint docs bench bench-serve bench-eval bench-loss bench-negatives bench-quality bench-quality-smoke report-ml1m clean-demo text-experiments

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

# Every test (one tier: a test too slow for this belongs in a benchmark script with a make target).
test: install
	$(PYTHON) -m pytest

test-all: test

# ruff (line length 110 included) and the import-linter contracts of pyproject.toml (layers point down).
lint: install
	$(PYTHON) -m ruff check src tests benchmarks
	lint-imports

bench: install bench-eval
	$(PYTHON) benchmarks/train_step.py --out benchmarks/results/train_step.json

# Chunked vs plain full-softmax CE: peak memory and step time at 10K/100K/1M items, 8,192 positions.
# Plain cases over LOSS_MAX_PLAIN_GIB run with fewer positions (the JSON says so); raise it on a big machine.
LOSS_MAX_PLAIN_GIB ?= 8
bench-loss: install
	$(PYTHON) benchmarks/loss_memory.py --max-plain-gib $(LOSS_MAX_PLAIN_GIB) --out benchmarks/results/loss_memory.json

# BCE/gBCE per-position negatives: gather vs score-all vs shared per sequence, 3.4K/12K/100K items x k = 1/16/256.
bench-negatives: install
	$(PYTHON) benchmarks/bce_negatives.py --out benchmarks/results/bce_negatives.json

# Every encoder x loss on ML-1M and Beauty (many CPU hours); QUALITY_ARGS picks a subset, e.g.
#   make bench-quality QUALITY_ARGS="--datasets ml1m --configs sasrec,gsasrec"
bench-quality: install
	$(PYTHON) benchmarks/quality.py $(QUALITY_ARGS)

# The same path end to end on MovieLens-100K, one epoch per config, results under .bench-smoke/.
bench-quality-smoke: install
	$(PYTHON) benchmarks/quality.py --data-from experiments/ml100k/sasrec.yaml --datasets ml1m --epochs 1 \
		--output-root .bench-smoke --results .bench-smoke/quality.json --table .bench-smoke/quality.md

# `--resume` when the spec's run folder under output root $(2) exists, nothing otherwise: finetune refuses
# --resume for a run that never started (issue 16), and these targets continue or start.
resume_flag = $$(n=$$(sed -n 's/^name:[[:space:]]*\([^[:space:]\#]*\).*/\1/p' $(1) | head -1); \
	test -d $(2)/runs/$$n && echo --resume)

# Text items (docs/text.md, results in benchmarks/RESULTS.md): ML-1M id vs text vs id+text, cold
# start with 10% of items held out, ML-1M -> ML-100K transfer (zero-shot, finetuned, LoRA, from
# scratch), all with the SASRec+ encoder. Every ML-1M training gets the same wall-clock budget,
# TEXT_MINUTES, and every ML-100K one TRANSFER_MINUTES (empty: train to early stopping, hours on
# 2 CPU cores). A run that was interrupted is continued, one not yet begun is started.
TEXT_OUT ?= text-runs
TEXT_MINUTES ?= 16
TRANSFER_MINUTES ?= 6
TEXT_ROOT := --set runtime.output_root=$(TEXT_OUT)
TEXT_ML1M := experiments/text/ml1m_text.yaml experiments/ml1m/sasrec_plus.yaml experiments/text/ml1m_idtext.yaml \
	experiments/text/ml1m_cold_text.yaml experiments/text/ml1m_cold_idtext.yaml experiments/text/ml1m_cold_id.yaml \
	experiments/text/ml1m_cold_idtext_iddrop.yaml
TEXT_ML100K := experiments/text/ml100k_from_ml1m.yaml experiments/text/ml100k_from_ml1m_lora.yaml \
	experiments/text/ml100k_text.yaml experiments/ml100k/sasrec.yaml
text-experiments: install
	for spec in $(TEXT_ML1M); do \
	  seqrec finetune $$spec $(call resume_flag,$$spec,$(TEXT_OUT)) $(TEXT_ROOT) $(if $(TEXT_MINUTES),--set train.max_minutes=$(TEXT_MINUTES)) \
	    && seqrec evaluate $$spec --split test $(TEXT_ROOT) || exit 1; \
	done
	seqrec evaluate experiments/text/ml100k_from_ml1m.yaml --split test --model ml1m-sasrec-text $(TEXT_ROOT)
	for spec in $(TEXT_ML100K); do \
	  seqrec finetune $$spec $(call resume_flag,$$spec,$(TEXT_OUT)) $(TEXT_ROOT) $(if $(TRANSFER_MINUTES),--set train.max_minutes=$(TRANSFER_MINUTES)) \
	    && seqrec evaluate $$spec --split test $(TEXT_ROOT) || exit 1; \
	done
	$(PYTHON) benchmarks/text_table.py --root $(TEXT_OUT) --out benchmarks/results/text_items.json

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

# The generated spec reference in docs/spec.md (from spec/models.py); a test fails when it is stale.
docs:
	$(PYTHON) -m seqrec_cli.spec.reference docs/spec.md

# seqrec serve under load (docs/serve.md): ML-1M default architecture export, torch vs onnxruntime,
# micro-batching vs batch size 1 at concurrency 1 and 32, a soak of mixed good/bad requests
# (SERVE_SOAK_SECONDS; the issue asks 600) and faiss IVF vs exact top-k at 1M synthetic items.
SERVE_SOAK_SECONDS ?= 600
bench-serve: install
	$(PYTHON) benchmarks/serve_bench.py --soak-seconds $(SERVE_SOAK_SECONDS) --out benchmarks/results/serve.json

# Production-size logs (docs/scale.md): synthetic 1M/10M logs prepared by each engine (time, peak RSS,
# fingerprints), train steps at 10K/100K/1M items per loss, eval users/s vs catalogue size, and SASRec vs
# most-popular on the 10M log. SCALE_ARGS adds e.g. "--sizes 1m,10m,100m"; data stays under .scale/.
SCALE_ARGS ?=
.PHONY: bench-scale
bench-scale: install
	$(PYTHON) benchmarks/scale.py --quality $(SCALE_ARGS)

# Hyperparameter sweep on Amazon Beauty (docs/sweep.md): the shipped default is trained and tested first
# (the baseline; an interrupted one is continued), then SWEEP_JOBS workers search
# experiments/beauty/sweep_space.yaml for SWEEP_MINUTES, the best trial (by validation) is tested once,
# and the report compares it with the default user by user. Rerunning continues the same study.
SWEEP_OUT ?= sweep-runs
SWEEP_MINUTES ?= 120
SWEEP_TRIALS ?= 16
SWEEP_JOBS ?= 2
.PHONY: sweep-beauty
SWEEP_SET := --set runtime.threads=1 --set runtime.output_root=$(SWEEP_OUT)
sweep-beauty: install
	$(SEQREC) finetune experiments/beauty/sasrec.yaml $(call resume_flag,experiments/beauty/sasrec.yaml,$(SWEEP_OUT)) $(SWEEP_SET)
	$(SEQREC) evaluate experiments/beauty/sasrec.yaml --split test $(SWEEP_SET)
	$(SEQREC) sweep experiments/beauty/sasrec.yaml --space experiments/beauty/sweep_space.yaml \
	  --trials $(SWEEP_TRIALS) --timeout $(SWEEP_MINUTES) --jobs $(SWEEP_JOBS) --evaluate-best $(SWEEP_SET)
	$(SEQREC) report --sweep $(SWEEP_OUT)/sweeps/beauty-sasrec-sweep --out reports/beauty-sweep
	cp $(SWEEP_OUT)/sweeps/beauty-sasrec-sweep/sweep.json benchmarks/results/sweep_beauty.json

# Peer protocol (docs/windows.md): seqrec on RecBole's default sequential protocol and its ml-100k files,
# candidates trained under PEER_MINUTES each, selected on validation, beside RecBole's figures.
PEER_MINUTES ?= 25
PEER_CANDIDATES ?= repeat-b32-d03,repeat-b64,sliding-b32-d03,last-b64
bench-peer: install
	$(PYTHON) benchmarks/peer_recbole.py --minutes $(PEER_MINUTES) --candidates $(PEER_CANDIDATES)

# train.windows last vs sliding at equal wall-clock time (WINDOWS_MINUTES per run), paired test comparison.
WINDOWS_MINUTES ?= 15
WINDOWS_DATASETS ?= beauty,ml1m
bench-windows: install
	$(PYTHON) benchmarks/windows_default.py --datasets $(WINDOWS_DATASETS) --minutes $(WINDOWS_MINUTES)
.PHONY: bench-peer bench-windows

# Text items on Amazon (docs/text.md): Beauty id vs id+text (paired), cold start, Beauty -> Toys transfer.
# AMAZON_EPOCHS caps every run at the same epoch count (the shared CPU cannot train to early stopping in a
# day: leave it empty to train to early stopping, e.g. on a GPU). Writes benchmarks/results/text_amazon.json.
AMAZON_OUT ?= text-amazon-runs
AMAZON_EPOCHS ?= 8
AMAZON_SET := --set runtime.output_root=$(AMAZON_OUT) $(if $(AMAZON_EPOCHS),--set train.epochs=$(AMAZON_EPOCHS))
text-amazon: install
	for spec in experiments/text/beauty_id.yaml experiments/text/beauty_idtext.yaml \
	  experiments/text/beauty_cold_idtext.yaml experiments/text/beauty_text_moe.yaml; do \
	  seqrec finetune $$spec $(call resume_flag,$$spec,$(AMAZON_OUT)) $(AMAZON_SET) && seqrec evaluate $$spec --split test $(AMAZON_SET) || exit 1; \
	done
	seqrec evaluate experiments/text/toys_scratch.yaml --split test --model beauty-text-moe $(AMAZON_SET)
	for spec in experiments/text/toys_scratch.yaml experiments/text/toys_from_beauty_adaptor.yaml \
	  experiments/text/toys_from_beauty_lora.yaml experiments/text/toys_from_beauty_full.yaml; do \
	  seqrec finetune $$spec $(call resume_flag,$$spec,$(AMAZON_OUT)) $(AMAZON_SET) && seqrec evaluate $$spec --split test $(AMAZON_SET) || exit 1; \
	done
	$(PYTHON) benchmarks/text_amazon.py --root $(AMAZON_OUT) --out benchmarks/results/text_amazon.json

# Rolling backtest on MovieLens-100K (docs/update.md): 8 weekly periods, retrain vs update vs frozen, one
# thread; about 15-20 minutes on a shared 2-core CPU. Work folder BACKTEST_OUT starts over each time.
BACKTEST_OUT ?= backtest-runs/ml100k
.PHONY: bench-backtest
bench-backtest: install
	rm -rf $(BACKTEST_OUT)
	$(SEQREC) backtest experiments/ml100k/backtest.yaml --periods 8 --period 7d --set runtime.threads=1 \
		--out $(BACKTEST_OUT) --json benchmarks/results/backtest_ml100k.json --png benchmarks/results/backtest_ml100k.png
