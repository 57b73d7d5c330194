"""Full-ranking evaluation throughput (users/s), batched + chunked engine vs a naive per-user loop.

  naive:   one user at a time, the whole [1, N + 1] score row, seen items masked, pessimistic rank
  seqrec:  core.evaluation.rank_cases: users in batches of 256, catalogue scored in blocks of
           eval.chunk_items, running counts + top-K (what `seqrec evaluate` runs)

Two settings: MovieLens-1M (prepared from experiments/ml1m/sasrec_base.yaml, its 64-wide SASRec
shape, random weights: speed does not depend on them) and a synthetic catalogue of 1M items (512
users with 50 random items each, 64-dim model). Both paths produce the same ranks (checked). Writes JSON.
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

from seqrec_cli.core.evaluation import ModelScorer, RankOptions, rank_cases
from seqrec_cli.core.metrics import pessimistic_ranks
from seqrec_cli.core.model import SeqRecModel
from seqrec_cli.core.runtime import resolve_runtime
from seqrec_cli.data.process import Sequences
from seqrec_cli.data.splits import EvalCases, leave_one_out
from seqrec_cli.pipelines.common import load_dataset
from seqrec_cli.pipelines.prepare import prepare
from seqrec_cli.spec.loader import load_spec
from seqrec_cli.spec.models import ModelSpec


@torch.no_grad()
def naive_ranks(model: SeqRecModel, seqs: Sequences, cases: EvalCases, max_len: int) -> np.ndarray:
    out = []
    for c in range(len(cases)):
        base = seqs.offsets[cases.users[c]]
        history = torch.from_numpy(seqs.items[base: base + cases.input_end[c]].astype(np.int64))
        window = history[-max_len:].unsqueeze(0)  # [1, L]
        scores = model.score_all(window)  # [1, N + 1]
        exclude = torch.zeros_like(scores, dtype=torch.bool)  # [1, N + 1]
        exclude[0, history] = True
        target = torch.tensor([int(seqs.items[base + cases.target_start[c]])])
        out.append(int(pessimistic_ranks(scores, target, exclude)[0]))
    return np.array(out)


def subset(cases: EvalCases, n: int) -> EvalCases:
    return EvalCases(cases.users[:n], cases.input_end[:n], cases.target_start[:n], cases.target_end[:n])


def measure(model, seqs, cases, max_len, naive_users, chunk_items, batch_size=256) -> dict:
    runtime = resolve_runtime("cpu", "fp32")
    model.eval()
    start, cpu = time.perf_counter(), time.process_time()
    ranked = rank_cases(
        ModelScorer(model, runtime),
        seqs,
        cases,
        RankOptions(max_len, batch_size, True, top_k=50, chunk_items=chunk_items),
        runtime.device,
    )
    batched_s, batched_cpu = time.perf_counter() - start, time.process_time() - cpu
    few = subset(cases, naive_users)
    start, cpu = time.perf_counter(), time.process_time()
    naive = naive_ranks(model, seqs, few, max_len)
    naive_s, naive_cpu = time.perf_counter() - start, time.process_time() - cpu
    assert np.array_equal(naive, ranked.ranks[:naive_users]), "naive and batched ranks differ"
    return {
        "users": len(cases),
        "items": seqs.num_items,
        "batch_size": batch_size,
        "chunk_items": chunk_items,
        "seqrec_users_per_s": round(len(cases) / batched_s, 1),
        "seqrec_seconds": round(batched_s, 2),
        "naive_users": naive_users,
        "naive_users_per_s": round(naive_users / naive_s, 1),
        "speedup": round((len(cases) / batched_s) / (naive_users / naive_s), 2),
        # the machine is shared: users per CPU-second of this process is the steadier figure
        "seqrec_users_per_cpu_s": round(len(cases) / batched_cpu, 1),
        "naive_users_per_cpu_s": round(naive_users / naive_cpu, 1),
        "speedup_cpu": round((len(cases) / batched_cpu) / (naive_users / naive_cpu), 2),
        "score_block_mib": round(batch_size * min(chunk_items, seqs.num_items + 1) * 4 / 2**20, 1),
        "unchunked_score_matrix_mib": round(batch_size * (seqs.num_items + 1) * 4 / 2**20, 1),
    }


def synthetic(num_items: int, users: int, length: int, seed: int = 0) -> Sequences:
    rng = np.random.default_rng(seed)
    items = rng.integers(1, num_items + 1, size=users * length).astype(np.int32)
    offsets = np.arange(users + 1, dtype=np.int64) * length
    return Sequences(items=items, offsets=offsets, timestamps=None, user_ids=[str(u) for u in range(users)],
                     item_ids=[""] + [str(i) for i in range(1, num_items + 1)])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spec", default="experiments/ml1m/sasrec_base.yaml")
    parser.add_argument("--out", default="benchmarks/results/eval_speed.json")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--ml1m-users", type=int, default=0, help="0: all users")
    parser.add_argument("--naive-users", type=int, default=300)
    parser.add_argument("--synthetic-items", type=int, default=1_000_000)
    parser.add_argument("--synthetic-users", type=int, default=512)
    parser.add_argument("--synthetic-naive-users", type=int, default=20)
    parser.add_argument("--chunk-items", type=int, default=1 << 18)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    results = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "threads": args.threads,
                           "torch": torch.__version__}}

    spec = load_spec(Path(args.spec), [])
    prepare(spec)
    seqs, _, _ = load_dataset(spec)
    cases = leave_one_out(seqs).cases["test"]
    if args.ml1m_users:
        cases = subset(cases, args.ml1m_users)
    model = SeqRecModel(spec.model, seqs.num_items)
    results["ml1m"] = {"model": spec.model.model_dump(mode="json"),
                       **measure(model, seqs, cases, spec.model.max_len, args.naive_users, args.chunk_items)}
    print("ml1m", results["ml1m"], flush=True)

    big = synthetic(args.synthetic_items, args.synthetic_users, 51)
    big_cases = leave_one_out(big).cases["test"]
    model_spec = ModelSpec(max_len=50, hidden=64, layers=2, heads=1)
    model = SeqRecModel(model_spec, args.synthetic_items)
    results["synthetic_1m"] = {
        "model": model_spec.model_dump(mode="json"),
        **measure(model, big, big_cases, 50, args.synthetic_naive_users, args.chunk_items),
    }
    print("synthetic", results["synthetic_1m"], flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
