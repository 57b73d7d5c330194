"""`seqrec finetune` for a non-neural baseline (model.kind != neural): fit on the training part of the
split, validate once, and write the same run folder a trained model gets (spec, run.json,
metrics.jsonl, checkpoints/best.pt holding the baseline's tensors)."""

from __future__ import annotations

import time

from seqrec_cli.atomic import append_jsonl, atomic_write_json, atomic_write_text
from seqrec_cli.core.baselines import BASELINES
from seqrec_cli.core.checkpoint import save_checkpoint
from seqrec_cli.core.evaluation import rank_cases
from seqrec_cli.core.metrics import mean_metrics, per_case_metrics
from seqrec_cli.errors import UserError
from seqrec_cli.events import Events, Note, TrainDone
from seqrec_cli.pipelines.common import BEST, load_dataset, rank_options, split_plan
from seqrec_cli.pipelines.finetune_result import FinetuneResult
from seqrec_cli.pipelines.paths import run_dir
from seqrec_cli.pipelines.run_folder import claim_run_dir, lock_run, stale_note
from seqrec_cli.pipelines.run_format import stamped
from seqrec_cli.spec.loader import dump_spec, spec_hash
from seqrec_cli.spec.models import ExperimentSpec


def fit_baseline(spec: ExperimentSpec, resume: bool, events: Events, restart: bool = False) -> FinetuneResult:
    lock = lock_run(run_dir(spec))  # the same run-folder lock as training
    try:
        if note := stale_note(lock):
            events(Note(note))
        return _fit(spec, resume, events, restart)
    finally:
        lock.release()


def _fit(spec: ExperimentSpec, resume: bool, events: Events, restart: bool) -> FinetuneResult:
    started = time.time()
    seqs, manifest, _ = load_dataset(spec)
    plan = split_plan(spec, seqs)
    folder = run_dir(spec)
    if resume and (folder / BEST).is_file():  # a baseline is fitted in one go: nothing to continue
        raise UserError("this baseline run is already fitted; --resume has nothing to continue",
                        where=str(folder), fix="evaluate it, or choose another name (--set name=...)")
    claim = claim_run_dir(folder, resume, restart)
    if claim.moved_to is not None:
        events(Note(f"--restart: the old run folder is now {claim.moved_to}"))
    kind = spec.model.kind
    state = BASELINES[kind].fit(seqs, plan.train_len, spec.train.seed)
    scorer = BASELINES[kind](state)
    ranked = rank_cases(scorer, seqs, plan.cases["valid"], rank_options(spec), "cpu")
    valid = mean_metrics(per_case_metrics(ranked.case_of, ranked.ranks, len(ranked.users), spec.eval.ks))
    fingerprint = manifest["fingerprint"]
    save_checkpoint(
        folder / BEST,
        stamped(
            {
                "kind": kind,
                "state": state,
                "epoch": 1,
                "valid": valid,
                "fingerprint": fingerprint["hash"],
                "spec_hash": spec_hash(spec),
            }
        ),
    )
    seconds = time.time() - started
    append_jsonl(folder / "metrics.jsonl", {"epoch": 1, "seconds": round(seconds, 3), "valid": valid})
    monitor = spec.train.monitor
    info = {"name": spec.name, "kind": kind, "spec_hash": spec_hash(spec), "seed": spec.train.seed,
            "dataset_fingerprint": fingerprint, "split": plan.describe(), "status": "finished",
            "stop_reason": "fitted", "best_epoch": 1, f"best_valid_{monitor}": valid.get(monitor),
            "epochs_run": 1, "seconds_this_session": round(seconds, 1)}
    atomic_write_text(folder / "spec.yaml", dump_spec(spec))
    atomic_write_json(folder / "run.json", stamped(info))
    events(TrainDone(run_dir=str(folder), stop_reason="fitted", run=info))
    return FinetuneResult(folder, "fitted", 1, float(valid.get(monitor, float("nan"))), 1, seconds)
