"""Pieces several commands share: the prepared dataset of a spec, its run folder, its best model."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from seqrec_cli.core.evaluation import RankOptions
from seqrec_cli.core.methods import apply_method
from seqrec_cli.core.model import SeqRecModel
from seqrec_cli.core.runtime import Runtime, resolve_runtime
from seqrec_cli.data.process import Sequences
from seqrec_cli.data.splits import SplitPlan, make_plan
from seqrec_cli.data.store import load_prepared, read_json_file
from seqrec_cli.errors import UserError
from seqrec_cli.events import Events, no_events
from seqrec_cli.pipelines.build import BuiltModel, build_model, check_text_vectors
from seqrec_cli.pipelines.paths import prepared_dir, resolved_data_spec, run_dir
from seqrec_cli.pipelines.run_format import load_run_checkpoint
from seqrec_cli.spec.loader import monitor_problem
from seqrec_cli.spec.models import ExperimentSpec, RuntimeSpec

BEST = "checkpoints/best.pt"
LAST = "checkpoints/last.pt"


def runtime_for(spec: ExperimentSpec) -> Runtime:
    return resolve_runtime(spec.runtime.device, spec.runtime.precision, spec.runtime.threads)


def load_dataset(spec: ExperimentSpec) -> tuple[Sequences, dict, Path]:
    folder = prepared_dir(spec, resolved_data_spec(spec))
    seqs, manifest = load_prepared(folder)
    return seqs, manifest, folder


def split_plan(spec: ExperimentSpec, seqs: Sequences) -> SplitPlan:
    """The spec's split of this dataset; raises if anything held out could leak into training or inputs.
    With train.active_since, only the users active since then (and a train.replay share of the others)
    keep their training part: an update trains on what is new, not on the whole log again."""
    plan = make_plan(seqs, spec.data.split, spec.data.temporal)
    if spec.train.active_since is None:
        return plan
    if seqs.timestamps is None:
        raise UserError(
            "train.active_since needs timestamps, and this dataset has none",
            where="train.active_since",
            fix="map data.columns.time to the log's timestamp column, or unset train.active_since",
        )
    active = np.maximum.reduceat(seqs.timestamps, seqs.offsets[:-1]) >= spec.train.active_since  # [U]
    replayed = np.random.default_rng(spec.train.seed).random(seqs.num_users) < spec.train.replay  # [U]
    plan.train_len = np.where(active | replayed, plan.train_len, 0)  # 0: no training pair at all
    return plan


def check_monitor(spec: ExperimentSpec) -> None:
    """The loader's check, for specs built in code (the CLI's specs have passed it already)."""
    problem = monitor_problem(spec)
    if problem:
        raise UserError(f"train.monitor {problem}", where="train.monitor",
                        fix=f"use HR@K, NDCG@K or MRR@K with K in eval.ks {spec.eval.ks}")


def load_trained(
    spec: ExperimentSpec,
    seqs: Sequences,
    manifest: dict,
    runtime: Runtime,
    checkpoint: str = BEST,
    events: Events = no_events,
) -> tuple[BuiltModel, dict, Path]:
    """The run's checkpoint in the model its spec builds (text vectors, cold items, LoRA adapters)."""
    path = run_dir(spec) / checkpoint
    payload = load_run_checkpoint(path)
    if "kind" in payload and payload["kind"] != "neural":
        raise UserError(
            f"this run holds a fitted {payload['kind']!r} baseline, not a trained network",
            where=str(path),
            fix="evaluate baselines with `seqrec evaluate`; only networks are exported",
        )
    if payload.get("fingerprint") != manifest["fingerprint"]["hash"]:
        raise UserError("checkpoint was trained on a different prepared dataset", where=str(path),
                        fix="evaluate with the spec the run was trained with, or train again")
    built = build_model(spec, seqs, prepared_dir(spec, resolved_data_spec(spec)), events)
    check_text_vectors(payload.get("items"), built, str(path))
    if spec.train.method == "lora":  # the checkpoint holds the adapters beside the base weights
        apply_method(built.model, "lora", spec.model.encoder, spec.train.lora,
                     encoder_from_init=bool(spec.train.init_from))
    try:
        built.model.load_state_dict(payload["model"])
    except RuntimeError as exc:
        raise UserError(f"checkpoint does not fit the spec's model section ({exc})", where=str(path),
                        fix="use the same model and train.method sections as at training time") from exc
    built.model.to(runtime.device)
    return built, payload, path


def load_trained_model(spec: ExperimentSpec, seqs: Sequences, manifest: dict, runtime: Runtime,
                       checkpoint: str = BEST) -> tuple[SeqRecModel, dict, Path]:
    built, payload, path = load_trained(spec, seqs, manifest, runtime, checkpoint)
    return built.model, payload, path


def read_run_info(spec: ExperimentSpec) -> dict:
    path = run_dir(spec) / "run.json"
    return read_json_file(path, "the run's run.json", "restore run.json") if path.is_file() else {}


def resumable_hash(spec: ExperimentSpec) -> str:
    """Spec hash that ignores what a user may change when continuing a run: how long to train, how
    often to checkpoint, and where/how to run it (device, precision, threads, compile, paths)."""
    loose = spec.model_copy(deep=True)
    loose.train.epochs = 1
    loose.train.max_minutes = None
    loose.train.patience = 1
    loose.train.max_steps = None
    loose.train.checkpoint_every_steps = None
    loose.runtime = RuntimeSpec()
    for field in ("engine", "engine_memory_gb", "engine_threads"):  # how data is prepared, not what
        setattr(loose.data, field, type(loose.data).model_fields[field].default)
    # Only non-default values count, so adding a spec field (with a default) keeps runs resumable; a
    # changed default changes the run format version instead (pipelines/run_format.py).
    values = loose.model_dump(mode="json", exclude_defaults=True)
    canonical = json.dumps(values, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def rank_options(spec: ExperimentSpec, **extra) -> RankOptions:
    """How `evaluate` (and a baseline's fit) rank a split, from the spec's eval section."""
    return RankOptions(spec.model.max_len, spec.eval.batch_size, spec.eval.filter_seen,
                       chunk_items=spec.eval.chunk_items, **extra)
