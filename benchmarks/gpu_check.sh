#!/usr/bin/env bash
# GPU check, for a lent CUDA machine only (CI has no GPU and never runs this):
#   1. the test suite's CUDA cases (tests marked `cuda`: auto device, fused CE on CUDA == CPU,
#      bf16 and fp16 steps, torch.compile'd step == eager);
#   2. a short MovieLens-1M training-step benchmark in bf16 (reference vs seqrec vs compiled),
#      with the GPU's own bf16 matmul limit, written as JSON.
# Usage: SEQREC_DATA_ROOT=/path/to/datasets bash benchmarks/gpu_check.sh [OUT_DIR]
# Writes OUT_DIR/gpu_tests.txt and OUT_DIR/train_step_gpu_bf16.json (OUT_DIR: $OUT or benchmarks/results).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${1:-${OUT:-benchmarks/results}}"
mkdir -p "$OUT_DIR"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export SEQREC_DATA_ROOT="${SEQREC_DATA_ROOT:-$(cd .. && pwd)/shared/datasets}"

"${PYTHON:-python3}" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 'gpu_check: no CUDA device here')"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT_DIR/gpu_tests.txt"

# -m cuda selects the CUDA cases; -rs lists skips, so a silently skipped case shows up in the log.
status=0
"${PYTHON:-python3}" -m pytest -m cuda -rs -q tests/test_cuda.py 2>&1 | tee -a "$OUT_DIR/gpu_tests.txt" || status=1

if [ -f "$SEQREC_DATA_ROOT/ml-1m/ml-1m.txt.xz" ]; then
  timeout "${BENCH_SECONDS:-480}" "${PYTHON:-python3}" benchmarks/train_step.py --device cuda --precision bf16 --steps 40 --compile \
    --output-root "${TMPDIR:-/tmp}/seqrec-gpu-bench" --out "$OUT_DIR/train_step_gpu_bf16.json" || status=1
else
  echo "gpu_check: $SEQREC_DATA_ROOT/ml-1m/ml-1m.txt.xz not found; benchmark skipped" | tee -a "$OUT_DIR/gpu_tests.txt"
  status=1
fi
exit $status
