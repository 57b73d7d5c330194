"""Validation curves of runs side by side, from their metrics.jsonl: the monitored metric at every
epoch, its mean over epoch windows, seconds per epoch, and the best epoch. For runs trained side by
side on one machine (same data, seed and budget), so per-epoch and per-second progress compare.

  python benchmarks/curves.py cpu-runs/runs/ml1m-sasrec-plus cpu-runs/runs/ml1m-sasrec-plus-nobucket \\
      --windows 1-20,21-40,41-49 --out benchmarks/results/batching_curves.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from seqrec_cli.atomic import atomic_write_json
from seqrec_cli.pipelines.results import first_best_epoch, read_epochs


def load_curve(folder: Path, metric: str) -> dict:
    rows = read_epochs(folder)
    best = first_best_epoch(rows, metric)
    if best is None:
        sys.exit(f"{folder}/metrics.jsonl: no epoch has validation {metric}")
    valid = {r["epoch"]: r["valid"][metric] for r in rows if metric in r.get("valid", {})}
    seconds = [r["seconds"] for r in rows]
    return {"run": folder.name, "epochs": len(rows), "valid": valid, "best_epoch": best[0],
            "best": best[1], "seconds_per_epoch": sum(seconds) / len(seconds)}


def window_means(curve: dict, windows: list[tuple[int, int]]) -> dict:
    """Mean of the metric over each window of epochs, when the run covers the whole window."""
    out = {}
    for lo, hi in windows:
        values = [curve["valid"][e] for e in range(lo, hi + 1) if e in curve["valid"]]
        out[f"{lo}-{hi}"] = sum(values) / len(values) if len(values) == hi - lo + 1 else None
    return out


def parse_windows(text: str) -> list[tuple[int, int]]:
    try:
        pairs = [tuple(int(x) for x in part.split("-")) for part in text.split(",")]
    except ValueError:
        sys.exit(f"--windows {text!r}: expected FIRST-LAST[,FIRST-LAST...], e.g. 1-20,21-40")
    if any(len(p) != 2 or p[0] > p[1] or p[0] < 1 for p in pairs):
        sys.exit(f"--windows {text!r}: each window is FIRST-LAST with 1 <= FIRST <= LAST")
    return pairs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders (each with metrics.jsonl)")
    parser.add_argument("--metric", default="NDCG@10")
    parser.add_argument("--windows", default="1-10,11-20", help="epoch windows to average over")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON here (atomically)")
    args = parser.parse_args(argv)
    windows = parse_windows(args.windows)
    curves = [load_curve(folder, args.metric) for folder in args.runs]
    result = {
        "metric": args.metric,
        "runs": [{**c, "window_means": window_means(c, windows)} for c in curves],
    }
    width = max(len(c["run"]) for c in curves)
    print(
        f"{'run':<{width}}  s/epoch  epochs  best (epoch)  " + "  ".join(f"{lo}-{hi}" for lo, hi in windows)
    )
    for c in result["runs"]:
        means = "  ".join("   -  " if v is None else f"{v:.4f}" for v in c["window_means"].values())
        print(
            f"{c['run']:<{width}}  {c['seconds_per_epoch']:7.1f}  {c['epochs']:6d}  "
            f"{c['best']:.4f} ({c['best_epoch']:3d})  {means}"
        )
    if args.out:
        atomic_write_json(args.out, result)


if __name__ == "__main__":
    main()
