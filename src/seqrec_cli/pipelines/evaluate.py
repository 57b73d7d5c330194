"""`seqrec evaluate`: full-ranking metrics of the run's best checkpoint on one split."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from seqrec_cli.atomic import atomic_write_json
from seqrec_cli.core.evaluation import evaluate_split
from seqrec_cli.data.io import sha256_file
from seqrec_cli.pipelines.build import build_model
from seqrec_cli.pipelines.cold_eval import evaluate_with_cold
from seqrec_cli.pipelines.common import BEST, load_dataset, load_trained, runtime_for
from seqrec_cli.pipelines.paths import output_root, run_dir
from seqrec_cli.pipelines.prepare import prepare
from seqrec_cli.pipelines.transfer import init_from
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


def evaluate(spec: ExperimentSpec, split: str, checkpoint: str = BEST, model_source: str | None = None,
             events=lambda kind, info: None) -> EvaluateResult:
    """The run's checkpoint on `split`; with `model_source` (a run, checkpoint or export, possibly of
    another dataset) that model as it is instead: zero-shot when it was trained elsewhere."""
    if model_source is not None:
        prepare(spec, events)  # zero-shot may be the first command run on this dataset
    seqs, manifest, prepared = load_dataset(spec)
    runtime = runtime_for(spec)
    if model_source is None:
        built, payload, ckpt_path = load_trained(spec, seqs, manifest, runtime, checkpoint, events)
        where = {"path": str(ckpt_path), "epoch": int(payload["epoch"]), "sha256": sha256_file(ckpt_path)}
    else:
        built = build_model(spec, seqs, prepared, events)
        done = init_from(built.model, built.items_info, model_source, manifest["fingerprint"]["hash"],
                         run_dir(spec).parent)
        built.model.to(runtime.device)
        where = {"source": model_source, "mode": done["mode"], "zero_shot": done["mode"] == "transfer"}
    started = time.perf_counter()
    cold_section = None
    if built.cold_items:
        metrics, ranks, cold_section = evaluate_with_cold(built.model, seqs, split, spec, runtime, built.cold_items)
    else:
        metrics, ranks = evaluate_split(built.model, seqs, split, spec.model.max_len, spec.eval.batch_size,
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
        "checkpoint": where,
        "items": built.items_info,
        **({"cold_start": cold_section} if cold_section is not None else {}),
        "runtime": runtime.describe(),
        "seconds": round(time.perf_counter() - started, 3),
    }
    # A model from elsewhere is reported outside the run folder: it never overwrites the run's own
    # report, and a later `finetune` of this spec still finds its run folder free.
    path = run_dir(spec) / "eval" / f"{split}.json" if model_source is None else \
        output_root(spec) / "evals" / f"{spec.name}-from-{Path(model_source).name}" / f"{split}.json"
    atomic_write_json(path, report)
    return EvaluateResult(path, report)
