"""Side-by-side tables of the text-items experiments (`make text-experiments`), read from the
evaluation reports under an output root. Prints markdown; writes the numbers as JSON.

  id vs text vs id+text     MovieLens-1M, test split
  cold start                MovieLens-1M, 10% of items held out of training
  transfer                  MovieLens-1M -> MovieLens-100K: zero-shot, finetuned (full, LoRA), from scratch

A report that does not exist yet shows as "-" (its run has not been made).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ITEMS = [
    ("id", "runs/ml1m-sasrec-plus"),
    ("text", "runs/ml1m-sasrec-text"),
    ("id+text", "runs/ml1m-sasrec-idtext"),
]
COLD = [("id", "runs/ml1m-cold-id"), ("text", "runs/ml1m-cold-text"), ("id+text", "runs/ml1m-cold-idtext"),
        ("id+text, id_dropout 0.5", "runs/ml1m-cold-idtext-iddrop")]
TRANSFER = [
    ("zero-shot (ML-1M text model as is)", "evals/ml100k-from-ml1m-from-ml1m-sasrec-text"),
    ("finetuned from ML-1M (full)", "runs/ml100k-from-ml1m"),
    ("finetuned from ML-1M (LoRA)", "runs/ml100k-from-ml1m-lora"),
    ("from scratch (text items)", "runs/ml100k-sasrec-text"),
    ("from scratch (id items, demo spec)", "runs/ml100k-sasrec"),
]


def report(root: Path, folder: str) -> dict | None:
    path = root / folder / ("test.json" if folder.startswith("evals/") else "eval/test.json")
    return json.loads(path.read_text()) if path.is_file() else None


def test_metrics(root: Path, folder: str) -> dict:
    rep = report(root, folder)
    return rep["metrics"] if rep else {}


def cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def trainable(root: Path, folder: str) -> str:
    path = root / folder / "run.json"
    if not path.is_file():
        return "-"
    info = json.loads(path.read_text())
    return f"{info.get('trainable_parameters', info['parameters']):,} / {info['parameters']:,}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--root", type=Path, default=Path("text-runs"), help="runtime.output_root of the runs"
    )
    parser.add_argument("--out", type=Path, default=None, help="write the numbers here as JSON")
    args = parser.parse_args()
    numbers: dict[str, dict] = {"items": {}, "cold_start": {}, "transfer": {}}

    print("## MovieLens-1M: item representation (test, full ranking)\n")
    print("| items | HR@10 | NDCG@10 |\n|---|---|---|")
    for label, folder in ITEMS:
        m = test_metrics(args.root, folder)
        numbers["items"][label] = m or None
        print(f"| {label} | {cell(m.get('HR@10'))} | {cell(m.get('NDCG@10'))} |")

    print("\n## MovieLens-1M cold start: 10% of items held out of training (test)\n")
    print("| items | all NDCG@10 | warm NDCG@10 | cold targets | cold HR@10 | cold NDCG@10 | chance HR@10 |")
    print("|---|---|---|---|---|---|---|")
    for label, folder in COLD:
        rep = report(args.root, folder)
        cold = rep.get("cold_start", {}) if rep else {}
        numbers["cold_start"][label] = {"metrics": rep["metrics"], "cold_start": cold} if rep else None
        cm, wm = cold.get("cold_metrics", {}), cold.get("warm_metrics", {})
        tail = "" if cold.get("rankable", True) else " (not rankable)"
        print(
            f"| {label} | {cell(rep['metrics']['NDCG@10'] if rep else None)} | {cell(wm.get('NDCG@10'))} | "
            f"{cold.get('cold_targets', '-')} | {cell(cm.get('HR@10'))}{tail} | {cell(cm.get('NDCG@10'))} | "
            f"{cell(cold.get('cold_chance', {}).get('HR@10'))} |"
        )

    print("\n## Transfer MovieLens-1M -> MovieLens-100K (test)\n")
    print("| model | HR@10 | NDCG@10 | trainable / total parameters |\n|---|---|---|---|")
    for label, folder in TRANSFER:
        m = test_metrics(args.root, folder)
        numbers["transfer"][label] = m or None
        params = trainable(args.root, folder) if folder.startswith("runs/") else "0 (no training)"
        print(f"| {label} | {cell(m.get('HR@10'))} | {cell(m.get('NDCG@10'))} | {params} |")

    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(numbers, indent=2) + "\n")


if __name__ == "__main__":
    main()
