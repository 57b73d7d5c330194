"""Pieces several commands share: the prepared dataset of a spec, its run folder, its best model."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from seqrec_cli.core.checkpoint import load_checkpoint
from seqrec_cli.core.methods import apply_method
from seqrec_cli.core.model import SeqRecModel
from seqrec_cli.core.runtime import Runtime, resolve_runtime
from seqrec_cli.data.process import Sequences
from seqrec_cli.data.splits import SplitPlan, make_plan
from seqrec_cli.data.store import load_prepared
from seqrec_cli.errors import UserError
from seqrec_cli.events import Events, no_events
from seqrec_cli.pipelines.build import BuiltModel, build_model, check_text_vectors
from seqrec_cli.pipelines.paths import prepared_dir, resolved_data_spec, run_dir
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
    """The spec's split of this dataset; raises if anything held out could leak into training or inputs."""
    return make_plan(seqs, spec.data.split, spec.data.temporal)


def check_monitor(spec: ExperimentSpec) -> None:
    name, _, k = spec.train.monitor.partition("@")
    if name not in ("HR", "NDCG", "MRR") or not k.isdigit() or int(k) not in spec.eval.ks:
        raise UserError(f"train.monitor {spec.train.monitor!r} is not a metric this spec computes",
                        where="train.monitor",
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
    payload = load_checkpoint(path)
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
    return json.loads(path.read_text()) if path.is_file() else {}


# Fields whose default changed -> the default they had first (loss_norm: "epoch" since 0.2). The resume
# hash and the reading of saved run specs both go by these.
FIRST_DEFAULTS = {("train", "loss_norm"): "step"}
OLD_DEFAULT_OVERRIDES = " ".join(f"--set {section}.{key}={value}"
                                 for (section, key), value in FIRST_DEFAULTS.items())


def saved_spec_overrides(saved: dict) -> list[str]:
    """--set overrides for a spec.yaml that a run folder saved: that file lists every field, so one
    missing a field whose default has since changed was written before the change and trained under
    the first default, which the current default must not replace."""
    return [f"{section}.{key}={first_default}"
            for (section, key), first_default in FIRST_DEFAULTS.items()
            if key not in (saved.get(section) or {})]


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
    # Only non-default values count, so a later seqrec that adds spec fields can still resume old runs.
    values = loose.model_dump(mode="json", exclude_defaults=True)
    # A field whose default changed counts against its first default, so a run started under the old
    # default refuses the new one (its steps would change) and an explicit old setting still matches.
    for (section, key), first_default in FIRST_DEFAULTS.items():
        value = getattr(getattr(loose, section), key)
        if value == first_default:
            values.get(section, {}).pop(key, None)
        else:
            values.setdefault(section, {})[key] = value
    canonical = json.dumps(values, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()
