"""`seqrec finetune`: train with early stopping on validation, checkpointing as it goes; resumable."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from seqrec_cli.atomic import append_jsonl, atomic_write_json, atomic_write_text
from seqrec_cli.core.checkpoint import load_checkpoint, save_checkpoint
from seqrec_cli.core.evaluation import evaluate_split
from seqrec_cli.core.losses import LOSSES
from seqrec_cli.core.model import SeqRecModel
from seqrec_cli.core.runtime import seed_everything
from seqrec_cli.core.schedule import make_scheduler
from seqrec_cli.core.train import EarlyStopping, EpochStats, TrainHooks, train_loop
from seqrec_cli.data.batching import TrainBatcher
from seqrec_cli.errors import UserError
from seqrec_cli.pipelines.common import (
    BEST,
    LAST,
    check_monitor,
    load_dataset,
    resumable_hash,
    runtime_for,
    split_plan,
)
from seqrec_cli.pipelines.paths import run_dir
from seqrec_cli.pipelines.prepare import prepare
from seqrec_cli.pipelines.tensorboard_log import epoch_logger
from seqrec_cli.spec.loader import dump_spec, spec_hash
from seqrec_cli.spec.models import ExperimentSpec

Events = Callable[[str, dict], None]


@dataclass
class FinetuneResult:
    run_dir: Path
    stop_reason: str
    best_epoch: int
    best_value: float
    epochs_run: int
    seconds: float


def _claim_run_dir(spec: ExperimentSpec, resume: bool) -> tuple[Path, bool]:
    """Create the run folder, or reopen it for --resume; never reuse another spec's folder."""
    folder = run_dir(spec)
    info_path = folder / "run.json"
    if folder.exists() and any(folder.iterdir()):
        if not resume:
            raise UserError("run folder already exists; refusing to overwrite it", where=str(folder),
                            fix="pass --resume to continue it, or choose another name (--set name=...)")
        info = json.loads(info_path.read_text()) if info_path.is_file() else {}
        if info.get("resumable_hash") != resumable_hash(spec):
            raise UserError("run folder was made by a different spec (only train.epochs, train.patience, "
                            "train.max_minutes and the runtime section may change on --resume)", where=str(folder),
                            fix="use the original spec, or choose another name (--set name=...)")
        return folder, (folder / LAST).is_file()
    folder.mkdir(parents=True, exist_ok=True)
    return folder, False


def init_weights(model: SeqRecModel, source: str, fingerprint: str, runs_root: Path) -> None:
    """Load model weights from a run (its name, or its folder: the best checkpoint) or a checkpoint file."""
    path = runs_root / source if (runs_root / source).is_dir() else Path(source).expanduser()
    if path.is_dir():
        path = path / BEST
    payload = load_checkpoint(path)
    if payload.get("fingerprint") != fingerprint:
        raise UserError("train.init_from checkpoint was trained on a different prepared dataset", where=str(path),
                        fix="point train.init_from at a run of the same data section")
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as exc:
        raise UserError(f"train.init_from checkpoint does not fit this spec's model section ({exc})",
                        where=str(path), fix="use the same model section as the source run") from exc


def _restore(path: Path, fingerprint: str, model, optimizer, scheduler, spec: ExperimentSpec) -> tuple[int, EarlyStopping]:
    """Load everything --resume needs from the last checkpoint; returns (next epoch, early-stopping state)."""
    state = load_checkpoint(path)
    if state.get("fingerprint") != fingerprint:
        raise UserError("last checkpoint was trained on a different prepared dataset", where=str(path),
                        fix="choose another run name")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if "scheduler" in state:  # checkpoints written before schedules existed ran at a constant lr
        scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    stopper = EarlyStopping(spec.train.patience, **{k: v for k, v in state["stopper"].items() if k != "patience"})
    return int(state["epoch"]) + 1, stopper


def finetune(spec: ExperimentSpec, resume: bool = False, events: Events = lambda kind, info: None) -> FinetuneResult:
    check_monitor(spec)
    prepare(spec, events)
    if spec.model.kind != "neural":  # non-neural baselines are fitted, not trained
        from seqrec_cli.pipelines.fit_baseline import fit_baseline

        return fit_baseline(spec, resume, events)
    seqs, manifest, _ = load_dataset(spec)
    plan = split_plan(spec, seqs)  # raises on any leakage into training or inputs
    runtime = runtime_for(spec)
    folder, has_state = _claim_run_dir(spec, resume)
    fingerprint = manifest["fingerprint"]

    seed_everything(spec.train.seed)
    model = SeqRecModel(spec.model, seqs.num_items).to(runtime.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.train.lr, weight_decay=spec.train.weight_decay,
                                  betas=(0.9, 0.98))
    batcher = TrainBatcher(seqs, spec.model.max_len, spec.train.batch_size, spec.train.bucket_by_length,
                           train_lengths=plan.train_len)
    scheduler = make_scheduler(optimizer, spec.train.epochs * len(batcher), spec.train.warmup_steps,
                               spec.train.schedule)
    stopper = EarlyStopping(spec.train.patience)
    start_epoch = 1
    if spec.train.init_from and not has_state:
        init_weights(model, spec.train.init_from, fingerprint["hash"], folder.parent)
        events("finetune.init_from", {"path": spec.train.init_from})
    if has_state:
        start_epoch, stopper = _restore(folder / LAST, fingerprint["hash"], model, optimizer, scheduler, spec)
        events("finetune.resumed", {"epoch": start_epoch - 1})

    info = {
        "name": spec.name,
        "spec_hash": spec_hash(spec),
        "resumable_hash": resumable_hash(spec),
        "seed": spec.train.seed,
        "dataset_fingerprint": fingerprint,
        "runtime": runtime.describe(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_positions_per_epoch": batcher.num_positions,
        "status": "running",
    }
    atomic_write_text(folder / "spec.yaml", dump_spec(spec))
    atomic_write_json(folder / "run.json", info)
    events("finetune.start", {**info, "run_dir": str(folder), "start_epoch": start_epoch,
                              "epochs": spec.train.epochs, "steps_per_epoch": len(batcher)})

    last_valid: dict = {}
    tensorboard = epoch_logger(folder, spec.train.tensorboard)

    def validate(epoch: int) -> float:
        metrics, _ = evaluate_split(model, seqs, "valid", spec.model.max_len, spec.eval.batch_size,
                                    spec.eval.filter_seen, spec.eval.ks, runtime, cases=plan.cases["valid"])
        last_valid.clear()
        last_valid.update(metrics)
        return metrics[spec.train.monitor]

    def on_improved(epoch: int) -> None:
        save_checkpoint(folder / BEST, {"model": model.state_dict(), "epoch": epoch, "valid": dict(last_valid),
                                        "fingerprint": fingerprint["hash"], "spec_hash": info["spec_hash"]})

    def on_epoch(stats: EpochStats, validated: dict | None) -> None:
        record = {"epoch": stats.epoch, "loss": round(stats.loss, 6), "seconds": round(stats.seconds, 3),
                  "positions": stats.positions, "positions_per_s": round(stats.positions_per_second, 1)}
        if validated is not None:
            record["valid"] = dict(last_valid)
            record["improved"] = validated["improved"]
        append_jsonl(folder / "metrics.jsonl", record)
        if tensorboard:
            tensorboard(record)
        events("finetune.epoch", {**record, "best_epoch": stopper.best_epoch, "best": stopper.best,
                                  "monitor": spec.train.monitor})

    def save_state(epoch: int) -> None:
        save_checkpoint(folder / LAST, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                        "scheduler": scheduler.state_dict(),
                                        "epoch": epoch, "stopper": stopper.state(), "torch_rng": torch.get_rng_state(),
                                        "fingerprint": fingerprint["hash"], "spec_hash": info["spec_hash"]})

    hooks = TrainHooks(validate=validate, on_step=lambda step, total, loss: events(
        "finetune.step", {"step": step, "total": total, "loss": loss}), on_epoch=on_epoch,
        on_improved=on_improved, save_state=save_state)
    started = time.time()
    deadline = started + 60 * spec.train.max_minutes if spec.train.max_minutes else None
    reason = "early_stop" if stopper.should_stop else "epochs"
    if start_epoch <= spec.train.epochs and not stopper.should_stop:
        reason = train_loop(model, batcher, optimizer, LOSSES[spec.train.loss], runtime, stopper, hooks,
                            start_epoch=start_epoch, epochs=spec.train.epochs, eval_every=spec.train.eval_every,
                            grad_clip=spec.train.grad_clip, seed=spec.train.seed, deadline=deadline,
                            scheduler=scheduler)
    seconds = time.time() - started
    epochs_run = len((folder / "metrics.jsonl").read_text().splitlines()) if (folder / "metrics.jsonl").exists() else 0
    info.update({"status": "finished", "stop_reason": reason, "best_epoch": stopper.best_epoch,
                 f"best_valid_{spec.train.monitor}": stopper.best, "epochs_run": epochs_run,
                 "seconds_this_session": round(seconds, 1)})
    atomic_write_json(folder / "run.json", info)
    events("finetune.done", info)
    return FinetuneResult(folder, reason, stopper.best_epoch, stopper.best, epochs_run, seconds)
