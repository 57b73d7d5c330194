"""Training-step throughput on MovieLens-1M, measured side by side in one process.

  reference: every batch padded to max_len (no length bucketing), plain autograd cross-entropy
  seqrec:    length-bucketed batches, fused full-softmax cross-entropy (the default path)

Both run the same model, optimiser and number of batches. Writes JSON (target positions per
second for each and their ratio); the machine is shared and noisy, so only the ratio is meaningful.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from seqrec_cli.core.losses import full_cross_entropy, plain_full_cross_entropy
from seqrec_cli.core.model import SeqRecModel
from seqrec_cli.core.runtime import resolve_runtime
from seqrec_cli.data.batching import TrainBatcher
from seqrec_cli.pipelines.common import load_dataset
from seqrec_cli.pipelines.prepare import prepare
from seqrec_cli.spec.loader import load_spec


def throughput(model, batcher, loss_fn, steps: int, pad_full: bool, max_len: int) -> float:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    batches = list(batcher.epoch(rng))[:steps]
    positions, seconds = 0, 0.0
    for i, batch in enumerate(batches):
        inputs, labels = batch.inputs, batch.labels
        if pad_full:  # the reference: pad every batch to max_len on the left
            pad = max_len - inputs.shape[1]
            inputs = torch.nn.functional.pad(inputs, (pad, 0), value=0)
            labels = torch.nn.functional.pad(labels, (pad, 0), value=-100)
        start = time.perf_counter()
        loss = loss_fn(model.encode(inputs), labels, model.item_weights())
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i > 0:  # first step is warm-up
            seconds += time.perf_counter() - start
            positions += int((labels != -100).sum())
    return positions / seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spec", default="experiments/ml1m/sasrec.yaml")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--out", default="benchmarks/results/train_step.json")
    parser.add_argument("--output-root", default=".bench")
    args = parser.parse_args()

    spec = load_spec(args.spec, [f"runtime.output_root={args.output_root}"])
    prepare(spec)
    seqs, manifest, _ = load_dataset(spec)
    resolve_runtime("cpu", "fp32")
    torch.manual_seed(0)
    m = spec.model
    results = {}
    for name, pad_full, bucket, loss_fn in [("reference", True, False, plain_full_cross_entropy),
                                            ("seqrec", False, True, full_cross_entropy)]:
        torch.manual_seed(0)
        model = SeqRecModel(m, seqs.num_items)
        batcher = TrainBatcher(seqs, m.max_len, spec.train.batch_size, bucket)
        results[name] = round(throughput(model, batcher, loss_fn, args.steps, pad_full, m.max_len), 1)
    report = {
        "benchmark": "train_step",
        "dataset": manifest["fingerprint"],
        "model": m.model_dump(),
        "batch_size": spec.train.batch_size,
        "steps": args.steps,
        "positions_per_second": results,
        "speedup": round(results["seqrec"] / results["reference"], 2),
        "machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "platform": platform.platform(), "torch": torch.__version__},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["positions_per_second"]), "speedup", report["speedup"])


if __name__ == "__main__":
    main()
