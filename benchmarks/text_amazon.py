"""Text items on Amazon (`make text-amazon`): collects the evaluated runs under an output root into one JSON.

  beauty        id-only default vs id+text on Beauty (S3-Rec version, length 50), test split, with the
                paired comparison of `seqrec compare` (t-test and Wilcoxon p, bootstrap CI of the difference)
  cold_start    Beauty with 10% of items held out: cold-target HR@10 with its CI, against chance and against
                id-only (which cannot rank a held-out item: 0 by construction)
  transfer      Beauty -> Toys rows (zero-shot, adaptor-only, LoRA, full, scratch) with trainable parameters

A run that has not been evaluated shows as null. Every block carries how its runs were trained (epochs
reached, budget, seed), read from the runs themselves, so a budget-limited figure says so.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
from pathlib import Path

from seqrec_cli.pipelines.results import compare, load_run_eval

BEAUTY = [("id (experiments/text/beauty_id.yaml)", "runs/beauty-id"),
          ("id+text (experiments/text/beauty_idtext.yaml)", "runs/beauty-idtext")]
ID, IDTEXT = BEAUTY
COLD = ("id+text, id_dropout 0.5 (experiments/text/beauty_cold_idtext.yaml)", "runs/beauty-cold-idtext")
TRANSFER = [
    ("zero-shot (Beauty text model as is)", "evals/toys-text-scratch-from-beauty-text-moe"),
    ("adaptor-only finetune", "runs/toys-from-beauty-adaptor"),
    ("LoRA finetune", "runs/toys-from-beauty-lora"),
    ("full finetune", "runs/toys-from-beauty-full"),
    ("from scratch (text items)", "runs/toys-text-scratch"),
]
KEYS = ("HR@10", "NDCG@10")


def read(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def training(root: Path, folder: str) -> dict | None:
    """How the run was trained: epochs reached, best epoch, stop reason, budget, parameters."""
    run = read(root / folder / "run.json")
    if run is None:
        return None
    lines = (
        (root / folder / "metrics.jsonl").read_text().splitlines()
        if (root / folder / "metrics.jsonl").is_file()
        else []
    )
    epochs = [json.loads(line) for line in lines if line.strip()]
    spec = (root / folder / "spec.yaml").read_text() if (root / folder / "spec.yaml").is_file() else ""
    keep = ("method", "parameters", "trainable_parameters", "status", "seed")
    return {
        "epochs_run": len(epochs),
        "seconds": round(sum(e.get("seconds", 0) for e in epochs), 1),
        "valid_NDCG@10_by_epoch": [round(e["valid"]["NDCG@10"], 5) for e in epochs if "valid" in e],
        "best_valid_epoch": max(epochs, key=lambda e: e.get("valid", {}).get("NDCG@10", -1))["epoch"]
        if epochs
        else None,
        **{k: run[k] for k in keep if k in run},
        "spec_max_minutes": _field(spec, "max_minutes"),
        "spec_epochs": _field(spec, "epochs"),
    }


def _field(spec_yaml: str, key: str) -> str | None:
    for line in spec_yaml.splitlines():
        if line.strip().startswith(f"{key}:"):
            return line.split(":", 1)[1].strip()
    return None


def test_report(root: Path, folder: str) -> dict | None:
    return read(root / folder / ("test.json" if folder.startswith("evals/") else "eval/test.json"))


def beauty(root: Path) -> dict:
    rows = {}
    for label, folder in BEAUTY:
        rep = test_report(root, folder)
        rows[label] = {"test": {k: rep["metrics"][k] for k in KEYS} if rep else None,
                       "training": training(root, folder)}
    paired = {}
    if test_report(root, ID[1]) and test_report(root, IDTEXT[1]):
        with_text, ids = (load_run_eval(str(root / run[1]), "test") for run in (IDTEXT, ID))
        result = compare(with_text, ids)
        ndcg = result["metrics"]["NDCG@10"]
        paired[f"{IDTEXT[0]} minus {ID[0]}"] = {
            "users": result["cases"], **{k: result["metrics"][k] for k in KEYS},
            "relative_NDCG@10": (ndcg["a"] - ndcg["b"]) / ndcg["b"] if ndcg["b"] else None}
    return {"rows": rows, "paired": paired}


def wilson(hits: int, n: int, z: float = 1.96) -> list[float]:
    """95% Wilson score interval of a proportion: sound at a handful of hits, unlike the normal one."""
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [round(centre - half, 5), round(centre + half, 5)]


def cold(root: Path) -> dict:
    rep = test_report(root, COLD[1])
    block = rep.get("cold_start") if rep else None
    hit_rates = None
    if block and block.get("rankable"):
        n = block["cold_targets"]
        hit_rates = {}
        for k in (10, 20, 50):
            hr, chance = block["cold_metrics"][f"HR@{k}"], block["cold_chance"][f"HR@{k}"]
            hits = round(hr * n)
            hit_rates[f"HR@{k}"] = {"hits": hits, "targets": n, "value": hr, "ci95_wilson": wilson(hits, n),
                                    "chance": chance, "times_chance": round(hr / chance, 2)}
    return {"run": COLD[0], "cold_start": block, "cold_hit_rates": hit_rates,
            "id_only": "0 (held-out ids never train; unrankable)", "training": training(root, COLD[1])}


def transfer(root: Path) -> list[dict]:
    rows = []
    for label, folder in TRANSFER:
        rep = test_report(root, folder)
        rows.append({"row": label, "test": {k: rep["metrics"][k] for k in KEYS} if rep else None,
                     "training": training(root, folder)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="runtime.output_root of the runs")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--machine", default="2-core CPU, torch threads 1 per run")
    args = parser.parse_args()
    out = {
        "machine": args.machine,
        "python": platform.python_version(),
        "protocol": "leave-one-out, full ranking over the catalogue, seen items removed, pessimistic ties",
        "beauty": beauty(args.root),
        "cold_start": cold(args.root),
        "transfer_beauty_to_toys": transfer(args.root),
    }
    from seqrec_cli.atomic import atomic_write_json

    atomic_write_json(args.out, out)
    print(json.dumps(out, indent=2)[:4000])


if __name__ == "__main__":
    main()
