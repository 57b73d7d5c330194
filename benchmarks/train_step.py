"""Training-step throughput on MovieLens-1M, measured side by side in one process.

  reference: every batch padded to max_len (no length bucketing), plain autograd cross-entropy
  seqrec:    length-bucketed batches, fused full-softmax cross-entropy, through the training loop's
             own optimizer_step (the default path of `seqrec finetune`)

Both run the same model, optimizer and number of batches. Also measured: the machine's own dense
matmul limit (GFLOP/s at the matrix sizes a step multiplies, and one large square product), and
what fraction of it each step reaches, from an analytic count of the step's matmul FLOPs.
Writes JSON; the machine may be shared and noisy, so the ratio is the robust figure.
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

from seqrec_cli.core.distributed import World
from seqrec_cli.core.losses import full_cross_entropy, plain_full_cross_entropy
from seqrec_cli.core.model import SeqRecModel
from seqrec_cli.core.optim import make_optimizer
from seqrec_cli.core.runtime import Runtime, resolve_runtime
from seqrec_cli.core.train import LoopConfig, TrainParts, optimizer_step, wrap_step
from seqrec_cli.data.batching import IGNORE, PAD, TrainBatcher
from seqrec_cli.pipelines.common import load_dataset
from seqrec_cli.pipelines.prepare import prepare
from seqrec_cli.spec.loader import load_spec
from seqrec_cli.spec.models import ModelSpec


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_gflops(m: int, k: int, n: int, runtime: Runtime, seconds: float = 0.5) -> float:
    """Best sustained GFLOP/s of an [m, k] x [k, n] product under the run's precision."""
    a = torch.randn(m, k, device=runtime.device)  # [m, k]
    b = torch.randn(k, n, device=runtime.device)  # [k, n]
    best = 0.0
    with runtime.autocast():
        for _ in range(3):  # warm-up
            a @ b
        sync(runtime.device)
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            reps = 5
            start = time.perf_counter()
            for _ in range(reps):
                a @ b
            sync(runtime.device)
            best = max(best, 2 * m * k * n * reps / (time.perf_counter() - start) / 1e9)
    return best


def matmul_limit(m: ModelSpec, num_items: int, batch_size: int, runtime: Runtime) -> dict:
    tokens = batch_size * m.max_len
    sizes = {
        "ffn [B*L, D] x [D, 4D]": (tokens, m.hidden, m.ffn_mult * m.hidden),
        "qkv [B*L, D] x [D, 3D]": (tokens, m.hidden, 3 * m.hidden),
        "ce logits [256, D] x [D, N+1]": (256, m.hidden, num_items + 1),
        "ce grad W [N+1, 256] x [256, D]": (num_items + 1, 256, m.hidden),
    }
    square = 2048 if runtime.device.type == "cuda" else 1024
    sizes[f"square {square}"] = (square, square, square)
    measured = {name: round(matmul_gflops(*mkn, runtime), 1) for name, mkn in sizes.items()}
    return {"gflops": measured, "limit_gflops": max(measured.values())}


def step_flops(inputs: torch.Tensor, labels: torch.Tensor, m: ModelSpec, num_items: int) -> dict[str, float]:
    """Matmul FLOPs of one forward + backward (backward = 2x forward for each product).

    executed: what the step computes on the tensor as batched, padding included (full L x L
    attention, as SDPA computes it under an explicit mask); useful: real tokens only, causal
    attention over real keys, logits only at labelled positions (the same for both steps)."""
    B, L = inputs.shape
    D, F = m.hidden, m.ffn_mult * m.hidden
    linear_per_token = 2 * D * (3 * D + D + 2 * F)  # qkv, out, two FFN matrices
    real = (inputs != PAD).sum(dim=1).double()  # [B]
    positions = int((labels != IGNORE).sum())
    ce = 3 * 2 * positions * D * (num_items + 1)  # logits, d hidden, d weights
    executed = 3 * m.layers * (B * L * linear_per_token + B * 4 * L * L * D) + ce
    useful = (
        3 * m.layers * (float(real.sum()) * linear_per_token + float((4 * D * real * (real + 1) / 2).sum()))
        + ce
    )
    return {"executed": executed, "useful": useful}


def measure(name: str, model: SeqRecModel, batcher: TrainBatcher, steps: int, runtime: Runtime, m: ModelSpec,
            num_items: int, compile: bool) -> dict:
    opt = make_optimizer(model, lr=1e-3, weight_decay=0.0)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    plan = batcher.plan(np.random.default_rng(0))[: steps + 1]
    forward = wrap_step(model, full_cross_entropy, runtime, World(), compile)
    parts = TrainParts(model, batcher, opt, full_cross_entropy, runtime, scaler=scaler)
    config = LoopConfig(epochs=1, grad_clip=1.0, seed=0)
    positions, seconds, flops = 0, 0.0, {"executed": 0.0, "useful": 0.0}
    for i, rows in enumerate(plan):
        batch = batcher.make_batch(rows)
        inputs, labels = batch.inputs, batch.labels
        if name == "reference":  # pad every batch to max_len on the left, plain autograd CE
            pad = m.max_len - inputs.shape[1]
            inputs = torch.nn.functional.pad(inputs, (pad, 0), value=PAD)
            labels = torch.nn.functional.pad(labels, (pad, 0), value=IGNORE)
        sync(runtime.device)
        start = time.perf_counter()
        if name == "reference":
            x, y = inputs.to(runtime.device), labels.to(runtime.device)
            with runtime.autocast():
                loss = plain_full_cross_entropy(model.encode(x), y, model.item_weights())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            float(loss.detach())
        else:
            optimizer_step(forward, parts, config, [rows], 0, 1)
        sync(runtime.device)
        if i > 0:  # the first step is warm-up (and compilation)
            seconds += time.perf_counter() - start
            positions += int((labels != IGNORE).sum())
            for key, value in step_flops(inputs, labels, m, num_items).items():
                flops[key] += value
    return {"positions_per_second": round(positions / seconds, 1), "steps": len(plan) - 1,
            "gflops_executed": round(flops["executed"] / seconds / 1e9, 2),
            "gflops_useful": round(flops["useful"] / seconds / 1e9, 2)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spec", default="experiments/ml1m/sasrec_base.yaml")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--out", default="benchmarks/results/train_step.json")
    parser.add_argument("--output-root", default=".bench")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16", "auto"])
    parser.add_argument("--compile", action="store_true", help="also time the torch.compile'd seqrec step")
    args = parser.parse_args()

    spec = load_spec(args.spec, [f"runtime.output_root={args.output_root}"])
    prepare(spec)
    seqs, manifest, _ = load_dataset(spec)
    runtime = resolve_runtime(args.device, args.precision)
    m = spec.model
    steps = {"reference": False, "seqrec": False, **({"seqrec_compiled": True} if args.compile else {})}
    results = {}
    for name, compile in steps.items():
        torch.manual_seed(0)
        model = SeqRecModel(m, seqs.num_items).to(runtime.device)
        batcher = TrainBatcher(seqs, m.max_len, spec.train.batch_size, name != "reference")
        results[name] = measure(name, model, batcher, args.steps, runtime, m, seqs.num_items, compile)
    limit = matmul_limit(m, seqs.num_items, spec.train.batch_size, runtime)
    for r in results.values():
        r["fraction_of_matmul_limit"] = round(r["gflops_executed"] / limit["limit_gflops"], 4)
        r["useful_fraction_of_matmul_limit"] = round(r["gflops_useful"] / limit["limit_gflops"], 4)
    report = {
        "benchmark": "train_step",
        "dataset": manifest["fingerprint"],
        "model": m.model_dump(),
        "batch_size": spec.train.batch_size,
        "runtime": runtime.describe(),
        "steps": results,
        "positions_per_second": {k: v["positions_per_second"] for k, v in results.items()},
        "speedup": round(
            results["seqrec"]["positions_per_second"] / results["reference"]["positions_per_second"], 2
        ),
        "matmul": limit,
        "flops_note": "matmul FLOPs only (encoder linears, attention QK^T and AV, "
        "CE logits + both gradients), "
        "forward + backward = 3x forward; executed counts padding, useful does not",
        "machine": {
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(),
            "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name(runtime.device) if runtime.device.type == "cuda" else None,
        },
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(
        json.dumps(
            {
                k: {"pos/s": v["positions_per_second"], "of matmul limit": v["fraction_of_matmul_limit"]}
                for k, v in results.items()
            }
        ),
        "speedup",
        report["speedup"],
        "matmul limit GFLOP/s",
        limit["limit_gflops"],
    )


if __name__ == "__main__":
    main()
