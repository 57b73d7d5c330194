"""`seqrec evaluate`: full-ranking metrics of the run's best checkpoint on one split."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from seqrec_cli.atomic import atomic_write_json
from seqrec_cli.core.evaluation import evaluate_split
from seqrec_cli.data.io import sha256_file
from seqrec_cli.pipelines.common import BEST, load_dataset, load_trained_model, runtime_for
from seqrec_cli.pipelines.paths import run_dir
from seqrec_cli.spec.loader import spec_hash
from seqrec_cli.spec.models import ExperimentSpec

PROTOCOL = {
    "split": "leave_one_out",
    "ranking": "full catalogue",
    "ties": "pessimistic: rank = 1 + number of other items scoring >= the target",
}


@dataclass
class EvaluateResult:
    path: Path
    report: dict


def evaluate(spec: ExperimentSpec, split: str, checkpoint: str = BEST) -> EvaluateResult:
    seqs, manifest, _ = load_dataset(spec)
    runtime = runtime_for(spec)
    model, payload, ckpt_path = load_trained_model(spec, seqs, manifest, runtime, checkpoint)
    started = time.perf_counter()
    metrics, ranks = evaluate_split(model, seqs, split, spec.model.max_len, spec.eval.batch_size,
                                    spec.eval.filter_seen, spec.eval.ks, runtime)
    report = {
        "split": split,
        "metrics": metrics,
        "filter_seen": spec.eval.filter_seen,
        "users": int(len(ranks)),
        "num_items": seqs.num_items,
        "protocol": PROTOCOL,
        "dataset_fingerprint": manifest["fingerprint"],
        "spec_hash": spec_hash(spec),
        "seed": spec.train.seed,
        "checkpoint": {"path": str(ckpt_path), "epoch": int(payload["epoch"]), "sha256": sha256_file(ckpt_path)},
        "runtime": runtime.describe(),
        "seconds": round(time.perf_counter() - started, 3),
    }
    path = run_dir(spec) / "eval" / f"{split}.json"
    atomic_write_json(path, report)
    return EvaluateResult(path, report)
