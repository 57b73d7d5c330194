"""Step time (forward + backward) of the BCE / gBCE loss with per-position negatives: gathering
[P, k, D] negative rows vs scoring every item and picking k columns, side by side in one run,
for catalogue sizes x k. Sets where seqrec switches between the two (NEGATIVE_SCORE_ALL_RATIO),
and shows the price of per-position negatives against negatives shared by a sequence.

  python benchmarks/bce_negatives.py                 # writes benchmarks/results/bce_negatives.json
  python benchmarks/bce_negatives.py --sizes 3416 --ks 256 --out /tmp/quick.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from seqrec_cli.atomic import atomic_write_json
from seqrec_cli.core import losses

PATHS = {"gather": 0, "score_all": 10**12}  # NEGATIVE_SCORE_ALL_RATIO that forces each per-position path


def time_step(h, labels, w, k: int, per_position: bool, repeats: int) -> tuple[float, float]:
    """Best of `repeats` seconds for one forward + backward, and the loss (same seed every time)."""
    best, value = float("inf"), float("nan")
    for _ in range(repeats):
        h.grad = w.grad = None
        torch.manual_seed(0)
        start = time.perf_counter()
        loss = losses.bce_with_negatives(h, labels, w, num_negatives=k, t=0.75, per_position=per_position)
        loss.backward()
        best, value = min(best, time.perf_counter() - start), loss.item()
    return best, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[3416, 12101, 100000])
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 16, 256])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--max-len", type=int, default=200)
    parser.add_argument("--labelled", type=int, default=70, help="labelled positions per sequence")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/bce_negatives.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for n in args.sizes:
        torch.manual_seed(1)
        h = torch.randn(args.batch, args.max_len, args.dim, requires_grad=True)  # [B, L, D]
        w = (torch.randn(n + 1, args.dim) * 0.02).requires_grad_()  # [N + 1, D]
        labels = torch.randint(1, n + 1, (args.batch, args.max_len))  # [B, L]
        labels[:, : args.max_len - args.labelled] = losses.IGNORE
        for k in args.ks:
            row = {"items": n, "k": k, "positions": args.batch * args.labelled}
            saved = losses.NEGATIVE_SCORE_ALL_RATIO
            try:
                for name, ratio in PATHS.items():
                    losses.NEGATIVE_SCORE_ALL_RATIO = ratio
                    row[f"{name}_s"], row[f"{name}_loss"] = time_step(h, labels, w, k, True, args.repeats)
            finally:
                losses.NEGATIVE_SCORE_ALL_RATIO = saved
            row["shared_per_sequence_s"], _ = time_step(h, labels, w, k, False, args.repeats)
            row["gather_over_score_all"] = row["gather_s"] / row["score_all_s"]
            row["seqrec_picks"] = "score_all" if losses.scores_all_items(n + 1, k) else "gather"
            print(json.dumps(row), flush=True)
            rows.append(row)
    result = {"machine": platform.processor() or platform.machine(), "threads": args.threads,
              "torch": torch.__version__, "dim": args.dim, "rows": rows}
    atomic_write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
