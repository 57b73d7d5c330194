"""train.windows last vs sliding at equal wall-clock training time (docs/windows.md).

For each dataset, the shipped SASRec spec (experiments/<dataset>/sasrec.yaml) trains twice, once per
window mode, with the same train.max_minutes budget; the two runs start together so they share the
machine's load. Each best checkpoint (on validation) is evaluated on test, and the two are compared
user by user (`seqrec compare`: paired bootstrap CI, t-test, Wilcoxon). Results merge into
benchmarks/results/windows_default.json, one entry per dataset (replaced when rerun).

  python benchmarks/windows_default.py --datasets beauty --minutes 15
  python benchmarks/windows_default.py --datasets ml1m --minutes 30 --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODES = ("last", "sliding")
DATASETS = {"beauty": "Amazon Beauty (S3-Rec version, 12,101 items), len 50",
            "ml1m": "MovieLens-1M (SASRec version, 3,416 items), len 200"}


def seqrec(*args: str, log: Path | None = None) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    out = open(log, "w") if log else subprocess.PIPE  # noqa: SIM115 - closed with the process
    return subprocess.Popen([sys.executable, "-m", "seqrec_cli", *args], env=env, stdout=out,
                            stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen, what: str) -> None:
    if proc.wait() != 0:
        raise SystemExit(f"{what} failed (exit {proc.returncode}); see its log")


def epochs_of(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def run_dataset(dataset: str, minutes: float, threads: int, root: Path) -> dict:
    spec = str(ROOT / f"experiments/{dataset}/sasrec.yaml")
    common = ["--set", f"runtime.output_root={root}", "--set", f"runtime.threads={threads}",
              "--set", f"train.max_minutes={minutes}"]
    names = {mode: f"{dataset}-windows-{mode}" for mode in MODES}
    sets = {
        mode: [*common, "--set", f"name={names[mode]}", "--set", f"train.windows={mode}"] for mode in MODES
    }
    root.mkdir(parents=True, exist_ok=True)
    finish(seqrec("prepare", spec, *common, log=root / f"{dataset}-prepare.log"), "prepare")
    started = time.time()
    procs = {mode: seqrec("finetune", spec, *sets[mode], log=root / f"{names[mode]}.log") for mode in MODES}
    for mode, proc in procs.items():
        finish(proc, f"finetune {names[mode]}")
    wall = time.time() - started
    out: dict = {
        "dataset": DATASETS[dataset],
        "spec": f"experiments/{dataset}/sasrec.yaml",
        "budget_minutes": minutes,
        "threads": threads,
        "both_runs_wall_seconds": round(wall, 1),
        "runs": {},
    }
    for mode in MODES:
        finish(
            seqrec("evaluate", spec, *sets[mode], "--split", "test", log=root / f"{names[mode]}-eval.log"),
            "evaluate",
        )
        run = root / "runs" / names[mode]
        epochs = epochs_of(run)
        valid = [e for e in epochs if e.get("valid")]
        best = max(valid, key=lambda e: e["valid"]["NDCG@10"])
        test = json.loads((run / "eval/test.json").read_text())
        out["runs"][mode] = {
            "run": names[mode],
            "epochs_trained": len(epochs),
            "positions_per_epoch": epochs[0]["positions"],
            "train_seconds": round(sum(e["seconds"] for e in epochs), 1),
            "best_valid_epoch": best["epoch"],
            "best_valid_NDCG@10": best["valid"]["NDCG@10"],
            "test": {
                k: test["metrics"][k]
                for k in ("NDCG@10", "HR@10", "NDCG@20", "HR@20")
                if k in test["metrics"]
            },
        }
    cmp_path = root / f"{dataset}-compare.json"
    finish(seqrec("compare", str(root / "runs" / names["sliding"]), str(root / "runs" / names["last"]),
                  "--out", str(cmp_path), log=root / f"{dataset}-compare.log"), "compare")
    result = json.loads(cmp_path.read_text())
    out["paired_test_sliding_minus_last"] = {k: result["metrics"][k] for k in ("NDCG@10", "HR@10")}
    out["paired_test_users"] = result["cases"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="beauty,ml1m")
    ap.add_argument("--minutes", type=float, required=True, help="train.max_minutes of every run")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--output-root", default=str(ROOT / ".bench/windows"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/windows_default.json"))
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from seqrec_cli.atomic import atomic_write_json

    path = Path(args.out)
    for dataset in args.datasets.split(","):
        entry = run_dataset(dataset, args.minutes, args.threads, Path(args.output_root))
        entry["machine"] = (
            f"2-core shared CPU ({platform.machine()}), runs started together, seed from the spec"
        )
        entry["command"] = (
            f"python benchmarks/windows_default.py --datasets {dataset} --minutes {args.minutes:g} "
            f"--threads {args.threads}"
        )
        # read just before writing: another invocation (another dataset) may have written meanwhile
        results = json.loads(path.read_text()) if path.is_file() else {"entries": {}}
        results["entries"][dataset] = entry
        atomic_write_json(path, results)
        print(json.dumps(entry, indent=1))


if __name__ == "__main__":
    main()
