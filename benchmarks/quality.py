"""Quality benchmark: every shipped encoder x loss config on MovieLens-1M and Amazon Beauty, through
the real prepare -> finetune -> evaluate(test) path, next to the published numbers (DESIGN.md).

Results merge into benchmarks/results/quality.json (one entry per dataset/config, replaced when
rerun) and the Markdown table benchmarks/results/quality.md is rebuilt from all entries, so a
subset can be run at a time. Runs resume (seqrec finetune --resume) when their folder exists.

  python benchmarks/quality.py                                  # everything (many CPU hours)
  python benchmarks/quality.py --datasets ml1m --configs sasrec,gsasrec
  python benchmarks/quality.py --list                           # what would run
  python benchmarks/quality.py --record ml1m/gsasrec=cpu-runs/runs/ml1m-gsasrec   # a run trained elsewhere
  # smoke test of the whole path on MovieLens-100K (every config, 1 epoch, separate files):
  python benchmarks/quality.py --data-from experiments/ml100k/sasrec.yaml --datasets ml1m --epochs 1 \\
      --results /tmp/q/quality.json --table /tmp/q/quality.md --output-root /tmp/q
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

import yaml

from seqrec_cli.atomic import atomic_write_json, atomic_write_text
from seqrec_cli.pipelines.evaluate import evaluate
from seqrec_cli.pipelines.finetune import finetune
from seqrec_cli.pipelines.paths import run_dir
from seqrec_cli.pipelines.results import first_best_epoch, read_epochs
from seqrec_cli.spec.loader import load_spec, spec_hash

ROOT = Path(__file__).resolve().parent.parent
DATASETS = {"ml1m": "MovieLens-1M (SASRec version, 3,416 items), len 200",
            "beauty": "Amazon Beauty (S3-Rec version, 12,101 items), len 50"}
# A config runs on each dataset that ships experiments/<dataset>/<config>.yaml.
# `*_anneal` configs are second stages: they start from their stage-1 run's best weights (train.init_from).
CONFIGS = [
    "sasrec",
    "sasrec_base",
    "sasrec_plus",
    "sasrec_plus_anneal",
    "sasrec_large",
    "sasrec_large_anneal",
    "sasrec_bce",
    "sasrec_sampled",
    "gsasrec",
    "bert4rec",
    "bert4rec_anneal",
    "gru4rec",
    "hstu",
    "hstu_large",
    "hstu_large_anneal",
    "hf_gpt2",
    "hf_llama",
    "hf_bert",
]

# Published full-ranking leave-one-out numbers (DESIGN.md): (source, HR@10, NDCG@10) per config.
SASREC_PLUS = ("SASRec+ full CE (RecSys'23)", 0.3152, 0.1821)
HSTU_LARGE = ("HSTU-large (ML-1M raw, 3,706 items: another dataset version)", 0.3294, 0.1893)
BEAUTY_CE = ("SASRec + scalable CE (RecSys'24)", 0.0935, 0.0544)
PUBLISHED = {
    "ml1m": {
        **dict.fromkeys(["sasrec", "sasrec_base", "sasrec_plus", "sasrec_plus_anneal", "sasrec_large",
                         "sasrec_large_anneal"], SASREC_PLUS),
        "sasrec_sampled": ("SASRec + 3000 sampled negatives (RecSys'23)", 0.3159, 0.1857),
        "sasrec_bce": ("SASRec, original BCE, 1 negative", 0.2500, 0.1341),
        **dict.fromkeys(["bert4rec", "bert4rec_anneal"], ("BERT4Rec", 0.2843, 0.1537)),
        "gsasrec": ("gSASRec (gBCE, 256 negatives)", 0.3003, 0.1726),
        **dict.fromkeys(["hstu", "hstu_large", "hstu_large_anneal"], HSTU_LARGE),
    },
    "beauty": {
        **dict.fromkeys(["sasrec", "sasrec_plus", "sasrec_plus_anneal"], BEAUTY_CE),
        "sasrec_sampled": ("SASRec + sampled softmax", 0.0921, 0.0531),
    },
}


def machine() -> dict:
    import torch

    return {"platform": platform.platform(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def spec_for(dataset: str, config: str, args) -> tuple[object, str]:
    """The shipped spec with the runner's overrides; --data-from swaps in another spec's data section."""
    path = ROOT / "experiments" / dataset / f"{config}.yaml"
    overrides = [f"runtime.output_root={args.output_root}", *args.set]
    if args.epochs:
        overrides.append(f"train.epochs={args.epochs}")
    if args.max_minutes:
        overrides.append(f"train.max_minutes={args.max_minutes}")
    label = dataset
    if args.data_from:
        raw = yaml.safe_load(path.read_text())
        donor = yaml.safe_load(Path(args.data_from).read_text())
        raw["data"] = donor["data"]
        label = Path(args.data_from).parent.name
        raw["name"] = f"{label}-{raw['name']}"
        if raw.get("train", {}).get("init_from"):  # a second stage starts from its renamed first stage
            raw["train"]["init_from"] = f"{label}-{raw['train']['init_from']}"
        merged = Path(args.output_root) / "specs" / f"{label}-{dataset}-{config}.yaml"
        merged.parent.mkdir(parents=True, exist_ok=True)
        merged.write_text(yaml.safe_dump(raw, sort_keys=False))
        path = merged
    return load_spec(path, overrides), label


def run_one(dataset: str, config: str, args) -> dict:
    spec, label = spec_for(dataset, config, args)
    started = time.time()
    folder = run_dir(spec)
    finetune(spec, resume=folder.is_dir() and any(folder.iterdir()))  # --resume refuses a missing run
    overrides = {
        "epochs": args.epochs,
        "max_minutes": args.max_minutes,
        "data_from": args.data_from,
        "set": args.set,
    }
    return entry_for(spec, label, config, overrides, wall_seconds=None, started=started)


def record_run(key: str, folder: Path) -> dict:
    """An entry for a run trained outside this script (e.g. `seqrec finetune` with --set overrides):
    its own spec.yaml, run.json and metrics.jsonl, evaluated on the test split here."""
    label, config = key.split("/", 1)
    spec = load_spec(folder / "spec.yaml", [f"runtime.output_root={folder.parent.parent}"])  # .../runs/<name>
    epochs = read_epochs(folder)
    wall = sum(e.get("seconds", 0.0) for e in epochs)
    run_info = settled_run_info(json.loads((folder / "run.json").read_text()), epochs, spec.train.monitor)
    overrides = {"recorded_from": str(folder),
                 **epoch_override(spec, ROOT / "experiments" / label / f"{config}.yaml")}
    return entry_for(spec, label, config, overrides, wall_seconds=wall, started=None, run_info=run_info)


def epoch_override(spec, shipped: Path) -> dict:
    """{'epochs': N} when a recorded run was given another epoch count than its shipped spec (a
    `--set train.epochs=N` cut): its table row is then marked as a budget run, not a converged one."""
    if shipped.is_file() and load_spec(shipped).train.epochs != spec.train.epochs:
        return {"epochs": spec.train.epochs}
    return {}


def settled_run_info(run_info: dict, epochs: list[dict], monitor: str) -> dict:
    """run.json of a run that was stopped by hand (killed, so never marked finished) is completed from its
    metrics: the epochs it ran, its best validation epoch (the first maximum: the one best.pt holds) and
    stop reason 'interrupted'. A finished run's run.json is returned as it is."""
    if run_info.get("status") == "finished":
        return run_info
    best = first_best_epoch(epochs, monitor)
    if best is None:
        raise SystemExit(
            f"run {run_info.get('name')!r} has no validated epoch in metrics.jsonl; nothing to record"
        )
    return {**run_info, "status": "finished", "stop_reason": "interrupted", "epochs_run": len(epochs),
            "best_epoch": best[0], f"best_valid_{monitor}": best[1]}


def trained_here(run_info: dict) -> bool:
    """False when a recorded run was trained on a GPU and is only evaluated on this machine."""
    import torch

    return run_info.get("runtime", {}).get("device") != "cuda" or torch.cuda.is_available()


def entry_for(spec, label: str, config: str, overrides: dict, *, wall_seconds: float | None,
              started: float | None, run_info: dict | None = None) -> dict:
    """Evaluate the finished run of `spec` on the test split and describe it (wall time: the given
    seconds, or the time since `started`, evaluation included; run_info: default its run.json)."""
    report = evaluate(spec, "test").report
    run_info = run_info or json.loads((run_dir(spec) / "run.json").read_text())
    monitor = spec.train.monitor
    return {
        "dataset": label,
        "config": config,
        "spec_name": spec.name,
        "encoder": spec.model.encoder,
        "loss": spec.train.loss,
        "loss_norm": spec.train.loss_norm,
        "test": report.metrics,
        "best_epoch": run_info.get("best_epoch"),
        "epochs_run": run_info.get("epochs_run"),
        "stop_reason": run_info.get("stop_reason"),
        "best_valid": {monitor: run_info.get(f"best_valid_{monitor}")},
        "wall_seconds": round(wall_seconds if wall_seconds is not None else time.time() - started, 1),
        "parameters": run_info.get("parameters"),
        "spec_hash": spec_hash(spec),
        "dataset_fingerprint": report.dataset_fingerprint,
        "seed": spec.train.seed,
        "overrides": overrides,
        "runtime": report.runtime,
        "machine": machine() if trained_here(run_info) else {"cuda": "a CUDA GPU"},
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def fmt(x: float | None) -> str:
    return "" if x is None else f"{x:.4f}"


def machine_label(info: dict) -> str:
    return info.get("cuda") or f"{info.get('cpu_count')} CPUs"


def budget_mark(entry: dict) -> str:
    """'epochs' when the epoch count was overridden, 'time' when the wall-clock budget stopped the run
    before early stopping did, 'stopped' when it was stopped by hand: in each case not a converged run."""
    if entry["overrides"].get("epochs"):
        return "epochs"
    return {"time_budget": "time", "interrupted": "stopped"}.get(entry.get("stop_reason"), "")


def table(entries: dict) -> str:
    lines = [
        "# Quality benchmark",
        "",
        "Test split, leave-one-out, full ranking over the whole catalogue, seen items removed, pessimistic "
        "ties (DESIGN.md). Built by `benchmarks/quality.py` from `quality.json`; published numbers from "
        "DESIGN.md. `budget` marks runs cut short by an epoch override (`epochs`), the wall-clock budget "
        "(`time`) or by hand (`stopped`) before early stopping: not converged, so not comparable to the "
        "papers. `norm` is "
        "`train.loss_norm` (how each step's loss was averaged; rows without it predate the setting: `step`). "
        "`machine` is the GPU or the CPU count.",
        "",
    ]
    for label in sorted({e["dataset"] for e in entries.values()}):
        title = DATASETS.get(label, label)
        lines += [
            f"## {title}",
            "",
            "| config | encoder | loss | HR@10 | NDCG@10 | published HR@10 | published NDCG@10 "
            "| published row | norm | epochs (best) | wall min | budget | machine |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        rows = sorted(
            (e for e in entries.values() if e["dataset"] == label),
            key=lambda e: CONFIGS.index(e["config"]) if e["config"] in CONFIGS else 99,
        )
        for e in rows:
            src, hr, ndcg = PUBLISHED.get(label, {}).get(e["config"], ("", None, None))
            budget = budget_mark(e)
            lines.append(f"| {e['config']} | {e['encoder']} | {e['loss']} | {fmt(e['test'].get('HR@10'))} | "
                         f"{fmt(e['test'].get('NDCG@10'))} | {fmt(hr)} | {fmt(ndcg)} | {src} | "
                         f"{e.get('loss_norm', 'step')} | "
                         f"{e['epochs_run']} ({e['best_epoch']}) | {e['wall_seconds'] / 60:.1f} | {budget} | "
                         f"{machine_label(e['machine'])} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--datasets", default="ml1m,beauty", help=f"comma-separated subset of {list(DATASETS)}"
    )
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated subset of the configs")
    parser.add_argument(
        "--epochs", type=int, default=None, help="override train.epochs (marks results 'budget')"
    )
    parser.add_argument("--max-minutes", type=float, default=None, help="override train.max_minutes per run")
    parser.add_argument(
        "--data-from", default=None, help="use this spec's data section instead (smoke tests)"
    )
    parser.add_argument("--output-root", default=".bench", help="prepared data and runs go here")
    parser.add_argument("--results", default="benchmarks/results/quality.json")
    parser.add_argument("--table", default="benchmarks/results/quality.md")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="spec override for every run, like seqrec's --set (repeatable)")
    parser.add_argument("--merge", nargs="+", default=None, metavar="JSON",
                        help="merge these results files into --results, rebuild --table and exit (no runs)")
    parser.add_argument("--record", nargs="+", default=None, metavar="DATASET/CONFIG=RUN_DIR",
                        help="add runs trained elsewhere (evaluated on test here) instead of training")
    parser.add_argument("--list", action="store_true", help="print the selected runs and exit")
    args = parser.parse_args()

    datasets = [d for d in args.datasets.split(",") if d]
    configs = [c for c in args.configs.split(",") if c]
    unknown = [d for d in datasets if d not in DATASETS] + [c for c in configs if c not in CONFIGS]
    if unknown:
        sys.exit(f"unknown dataset/config {unknown}; datasets {list(DATASETS)}, configs {CONFIGS}")
    plan = [(d, c) for d in datasets for c in configs if (ROOT / "experiments" / d / f"{c}.yaml").is_file()]
    if args.list:
        for d, c in plan:
            print(f"{d}/{c}: experiments/{d}/{c}.yaml")
        return
    results_path = Path(args.results)
    entries = json.loads(results_path.read_text()) if results_path.is_file() else {}
    if args.merge:
        for other in args.merge:
            entries.update(json.loads(Path(other).read_text()))
        atomic_write_json(results_path, entries)
        atomic_write_text(Path(args.table), table(entries))
        print(f"{len(entries)} entries in {results_path}; table {args.table}")
        return
    if args.record:
        for item in args.record:
            key, _, folder = item.partition("=")
            if "/" not in key or not folder:
                sys.exit(
                    f"--record {item!r}: expected DATASET/CONFIG=RUN_DIR, "
                    "e.g. ml1m/gsasrec=cpu-runs/runs/ml1m-gsasrec"
                )
            entries[key] = record_run(key, Path(folder))
            print(
                f"{key}: NDCG@10 {entries[key]['test']['NDCG@10']:.4f}  "
                f"HR@10 {entries[key]['test']['HR@10']:.4f}"
            )
        atomic_write_json(results_path, entries)
        atomic_write_text(Path(args.table), table(entries))
        return
    failed = []
    for d, c in plan:
        print(f"== {d}/{c}", flush=True)
        try:
            entry = run_one(d, c, args)
        except Exception:  # one broken config must not cost the rest of a sweep its results
            traceback.print_exc()
            failed.append(f"{d}/{c}")
            continue
        entries[f"{entry['dataset']}/{c}"] = entry
        atomic_write_json(
            results_path, entries
        )  # merged after every run: an interrupted sweep keeps its results
        atomic_write_text(Path(args.table), table(entries))
        print(f"   NDCG@10 {entry['test']['NDCG@10']:.4f}  HR@10 {entry['test']['HR@10']:.4f}  "
              f"epochs {entry['epochs_run']}  {entry['wall_seconds']:.0f}s", flush=True)
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
