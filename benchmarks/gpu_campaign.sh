#!/usr/bin/env bash
# What one lent GPU session runs, in one call (one H200, 16 cores, a 10-minute limit per call):
#   1. benchmarks/gpu_check.sh: the CUDA test cases and the bf16 training-step benchmark, alone on the GPU;
#   2. the quality benchmark (benchmarks/quality.py) on MovieLens-1M and Amazon Beauty, all configs
#      trained side by side on the one GPU, one process per group, each group's runs sharing the same
#      wall-clock budget (train.max_minutes), then evaluated on test;
#   3. everything that must come back packed into OUT_DIR: gpu_tests.txt, train_step_gpu_bf16.json,
#      quality_gpu.json + quality_gpu.md (merge locally with `quality.py --merge`), runs.tgz (logs, metrics,
#      specs, test reports) and checkpoints.tgz (best weights of the SASRec-family runs).
# Usage: SEQREC_DATA_ROOT=/path/to/datasets bash benchmarks/gpu_campaign.sh [OUT_DIR]
#   CAMPAIGN_SECONDS (560): all ends by then;  CHECK_SECONDS (160): the checks' share;
#   CHECKS=0 skips step 1;  GROUPS_ML1M / GROUPS_BEAUTY: other groups (space-separated, configs joined by commas,
#   e.g. "hstu_large,hstu_large_anneal" runs a stage and the second stage that starts from it, one after the
#   other; set one to "" to skip that dataset);
#   CAMPAIGN_SET: extra --set overrides for every run (e.g. "train.max_steps=2" for a dry run on CPU).
set -uo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
OUT_DIR="${1:-${OUT:-/tmp/seqrec-gpu-out}}"
WORK="${CAMPAIGN_WORK:-/tmp/seqrec-gpu-work}"
CAMPAIGN_SECONDS="${CAMPAIGN_SECONDS:-560}"
CHECK_SECONDS="${CHECK_SECONDS:-160}"
mkdir -p "$OUT_DIR" "$WORK/logs" "$WORK/results"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
export SEQREC_DATA_ROOT="${SEQREC_DATA_ROOT:-$(cd .. && pwd)/shared/datasets}"
left() { echo $((started + CAMPAIGN_SECONDS - $(date +%s))); }
PY="${PYTHON:-python3}"
seqrec() { "$PY" -m seqrec_cli "$@"; }

# Groups run in parallel; the configs of one group run one after another.
GROUPS_ML1M="${GROUPS_ML1M-sasrec sasrec_plus sasrec_large hstu_large sasrec_bce gsasrec bert4rec,bert4rec_anneal hstu sasrec_sampled gru4rec,hf_bert hf_gpt2,sasrec_base hf_llama}"
GROUPS_BEAUTY="${GROUPS_BEAUTY-sasrec sasrec_plus gsasrec,sasrec_bce bert4rec,hstu sasrec_sampled,gru4rec}"
extra=()
for kv in ${CAMPAIGN_SET:-}; do extra+=(--set "$kv"); done

# 1. Checks, alone on the GPU; the datasets are prepared on the CPU meanwhile (once, before the groups share them).
for spec in experiments/ml1m/sasrec.yaml experiments/beauty/sasrec.yaml; do
  seqrec prepare "$spec" --set runtime.output_root="$WORK" >"$WORK/logs/prepare-$(basename "$(dirname "$spec")").log" 2>&1 &
done
if [ "${CHECKS:-1}" = 0 ]; then
  echo "checks skipped (CHECKS=0)"
elif "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  BENCH_SECONDS=$((CHECK_SECONDS - 70)) timeout "$CHECK_SECONDS" bash benchmarks/gpu_check.sh "$OUT_DIR" \
    >"$WORK/logs/gpu_check.log" 2>&1
  echo "gpu_check exit $? after $(( $(date +%s) - started )) s"
else
  echo "no CUDA device: checks skipped (dry run)"
fi
wait

# 2. The quality runs: each group's budget is what is left, less 60 s; each run keeps 75 s for its start, last epoch and test evaluation.
train_left=$(( $(left) - 60 ))
pids=()
launch() {  # dataset, comma-separated configs
  local n_configs minutes limit
  n_configs=$(tr ',' '\n' <<<"$2" | wc -l)
  minutes=$("$PY" -c "print(round(max($train_left - 75 * $n_configs, 30) / 60 / $n_configs, 2))")
  limit=$(( $(left) - 25 )); [ "$limit" -lt 60 ] && limit=60  # checks that overran still leave a minute
  timeout "$limit" "$PY" benchmarks/quality.py --datasets "$1" --configs "$2" --max-minutes "$minutes" \
    --output-root "$WORK" --results "$WORK/results/$1-${2//,/-}.json" --table "$WORK/results/$1-${2//,/-}.md" \
    --set runtime.threads=1 "${extra[@]}" >"$WORK/logs/$1-${2//,/-}.log" 2>&1 &
  pids+=($!)
}
for g in $GROUPS_ML1M; do launch ml1m "$g"; done
for g in $GROUPS_BEAUTY; do launch beauty "$g"; done
echo "launched ${#pids[@]} groups with ${train_left} s of training each"
failed=0
for pid in "${pids[@]}"; do wait "$pid" || failed=$((failed + 1)); done
echo "groups done after $(( $(date +%s) - started )) s; $failed failed or timed out"

# 3. Pack what comes back.
shopt -s nullglob
results=("$WORK"/results/*.json)
if [ ${#results[@]} -gt 0 ]; then
  "$PY" benchmarks/quality.py --merge "${results[@]}" --results "$OUT_DIR/quality_gpu.json" --table "$OUT_DIR/quality_gpu.md"
fi
(cd "$WORK" && tar czf "$OUT_DIR/runs.tgz" logs results \
  $(find runs -name metrics.jsonl -o -name run.json -o -name spec.yaml -o -path '*/eval/*.json' 2>/dev/null))
keep=(ml1m-sasrec ml1m-sasrec-plus ml1m-sasrec-large ml1m-hstu-large ml1m-bert4rec beauty-sasrec beauty-sasrec-plus
      ml1m-sasrec-large-anneal ml1m-hstu-large-anneal ml1m-bert4rec-anneal beauty-sasrec-plus-anneal)
(cd "$WORK" && tar czf "$OUT_DIR/checkpoints.tgz" $(for r in "${keep[@]}"; do find "runs/$r/checkpoints" -name 'best.pt*' 2>/dev/null; done))
ls -la "$OUT_DIR"
echo "campaign done after $(( $(date +%s) - started )) s"
