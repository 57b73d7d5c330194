"""`seqrec finetune`: train with early stopping on validation, checkpointing as it goes; resumable."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from seqrec_cli.atomic import append_jsonl, atomic_write_json, atomic_write_text
from seqrec_cli.core.checkpoint import load_checkpoint, save_checkpoint
from seqrec_cli.core.distributed import World, evaluate_split_sharded, init_world
from seqrec_cli.core.evaluation import evaluate_split
from seqrec_cli.core.losses import make_loss
from seqrec_cli.core.methods import apply_method
from seqrec_cli.core.objectives import make_train_batcher, training_item_counts
from seqrec_cli.core.optim import make_optimizer, regroup_single_group_state
from seqrec_cli.core.runtime import rng_state, seed_everything, set_rng_state
from seqrec_cli.core.schedule import make_scheduler
from seqrec_cli.core.train import (
    EarlyStopping,
    EpochStats,
    LoopState,
    TrainHooks,
    steps_per_epoch,
    train_loop,
)
from seqrec_cli.errors import UserError
from seqrec_cli.events import (
    EpochDone,
    Events,
    InitializedFrom,
    Resumed,
    StepDone,
    TrainDone,
    TrainStarted,
    no_events,
)
from seqrec_cli.pipelines.build import BuiltModel, build_model, check_text_vectors
from seqrec_cli.pipelines.common import (
    BEST,
    LAST,
    OLD_DEFAULT_OVERRIDES,
    check_monitor,
    load_dataset,
    resumable_hash,
    runtime_for,
    split_plan,
)
from seqrec_cli.pipelines.finetune_result import FinetuneResult
from seqrec_cli.pipelines.fit_baseline import fit_baseline
from seqrec_cli.pipelines.paths import run_dir
from seqrec_cli.pipelines.prepare import prepare
from seqrec_cli.pipelines.tensorboard_log import epoch_logger
from seqrec_cli.pipelines.transfer import init_from
from seqrec_cli.spec.loader import dump_spec, spec_hash
from seqrec_cli.spec.models import ExperimentSpec

__all__ = ["FinetuneResult", "finetune"]


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
            raise UserError("run folder was made by a different spec (only train.epochs, train.max_steps, "
                            "train.patience, train.max_minutes, train.checkpoint_every_steps and the runtime "
                            "section may change on --resume)", where=str(folder),
                            fix="use the original spec, or choose another name (--set name=...); a run "
                            f"started under an older default resumes with {OLD_DEFAULT_OVERRIDES}")
        return folder, (folder / LAST).is_file()
    folder.mkdir(parents=True, exist_ok=True)
    return folder, False


def _restore(path: Path, fingerprint: str, model, optimizer, scheduler, scaler, spec: ExperimentSpec,
             batches_per_step: int, steps_per_epoch: int,
             built: BuiltModel | None = None) -> tuple[LoopState, EarlyStopping, int]:
    """Load everything --resume needs from the last checkpoint: (loop state, early stopping, metrics lines)."""
    state = load_checkpoint(path)
    if state.get("fingerprint") != fingerprint:
        raise UserError("last checkpoint was trained on a different prepared dataset", where=str(path),
                        fix="choose another run name")
    if built is not None:
        check_text_vectors(state.get("items"), built, str(path))
    saved_group = int(state.get("batches_per_step", batches_per_step))
    if saved_group != batches_per_step:
        raise UserError(f"the run took {saved_group} batches per optimizer step (train.grad_accum x processes) and "
                        f"this launch takes {batches_per_step}; resuming would change every later step",
                        where=str(path), fix="resume with the same product of train.grad_accum and torchrun processes")
    model.load_state_dict(state["model"])
    saved = state["optimizer"]
    if len(saved["param_groups"]) == 1 < len(optimizer.param_groups):  # written before weight-decay groups
        saved = regroup_single_group_state(saved, model, optimizer)
    try:
        optimizer.load_state_dict(saved)
    except ValueError as exc:
        raise UserError(f"the checkpoint's optimizer state does not fit this seqrec ({exc})", where=str(path),
                        fix="finish the run with the seqrec version that started it, or start a new run from its "
                        "weights with train.init_from") from exc
    if "scheduler" in state:  # checkpoints written before schedules existed ran at a constant lr
        scheduler.load_state_dict(state["scheduler"])
    if state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    if "rng" in state:
        set_rng_state(state["rng"])
    else:  # epoch-level checkpoints of earlier versions
        torch.set_rng_state(state["torch_rng"])
    loop = (LoopState(**state["loop"]) if "loop" in state else
            LoopState(epoch=int(state["epoch"]) + 1, global_step=(int(state["epoch"])) * steps_per_epoch))
    stopper = EarlyStopping(spec.train.patience, **{k: v for k, v in state["stopper"].items() if k != "patience"})
    return loop, stopper, int(state.get("metrics_lines", loop.epoch - 1))


def _keep_metrics_lines(path: Path, count: int) -> None:
    """Drop epoch records written after the checkpoint we resume from (a kill can land in between)."""
    if path.is_file():
        lines = path.read_text().splitlines(keepends=True)
        if len(lines) > count:
            atomic_write_text(path, "".join(lines[:count]))


def finetune(spec: ExperimentSpec, resume: bool = False, events: Events = no_events) -> FinetuneResult:
    """Train one run; under torchrun every process calls this and rank 0 alone writes files and events."""
    check_monitor(spec)
    if spec.model.kind != "neural":  # non-neural baselines are fitted, not trained
        prepare(spec, events)
        return fit_baseline(spec, resume, events)
    world = init_world(spec.runtime.device)
    try:
        return _finetune(spec, resume, events if world.is_main else no_events, world)
    finally:
        world.close()


def _finetune(spec: ExperimentSpec, resume: bool, events: Events, world: World) -> FinetuneResult:
    runtime = runtime_for(spec)  # first: a device or precision this machine cannot give fails fast
    world.on_main(lambda: prepare(spec, events))
    seqs, manifest, prepared_folder = load_dataset(spec)
    plan = split_plan(spec, seqs)  # raises on any leakage into training or inputs
    if world.size > 1 and plan.kind != "leave_one_out":
        raise UserError("several processes validate leave-one-out splits only", where="data.split",
                        fix="train temporal splits in one process")
    if world.size > 1 and runtime.device.type == "cuda":
        runtime = replace(runtime, device=world.device)
    folder, has_state = world.on_main(lambda: _claim_run_dir(spec, resume))
    fingerprint = manifest["fingerprint"]
    train = spec.train

    seed_everything(train.seed)
    built = build_model(spec, seqs, prepared_folder, events)
    model = built.model.to(runtime.device)
    if train.init_from and not has_state:
        done = init_from(model, built.items_info, train.init_from, fingerprint["hash"], folder.parent)
        events(InitializedFrom(path=str(done["path"]), mode=done["mode"], moved=done.get("moved", 0),
                               fresh=tuple(done.get("fresh", ()))))
    counts = apply_method(model, train.method, spec.model.encoder, train.lora,
                          encoder_from_init=bool(train.init_from))
    model.to(runtime.device)  # LoRA adapters are created on the CPU
    optimizer = make_optimizer(model, train.lr, train.weight_decay)  # trainable parameters only
    batcher = make_train_batcher(spec.model, train, seqs, plan.train_len)  # next-item or masked-item, by encoder
    per_epoch = steps_per_epoch(len(batcher), train.grad_accum, world.size)
    total_steps = train.max_steps or train.epochs * per_epoch  # the schedule spans the true step count
    scheduler = make_scheduler(optimizer, total_steps, train.warmup_steps, train.schedule)
    scaler = torch.amp.GradScaler("cuda", enabled=runtime.dtype == torch.float16)
    stopper = EarlyStopping(train.patience)
    loop = LoopState()
    metrics_lines = 0
    if has_state:
        loop, stopper, metrics_lines = _restore(folder / LAST, fingerprint["hash"], model, optimizer, scheduler,
                                                scaler, spec, train.grad_accum * world.size, per_epoch, built)
        if world.is_main:
            _keep_metrics_lines(folder / "metrics.jsonl", metrics_lines)
        events(Resumed(epoch=loop.epoch - 1, step=loop.global_step, batches_done=loop.batches_done))

    info = {
        "name": spec.name,
        "spec_hash": spec_hash(spec),
        "resumable_hash": resumable_hash(spec),
        "seed": train.seed,
        "dataset_fingerprint": fingerprint,
        "runtime": {**runtime.describe(), "processes": world.size, "compile": spec.runtime.compile},
        "parameters": counts.total,
        "method": train.method,
        "trainable_parameters": counts.trainable,
        "items": built.items_info,
        "train_positions_per_epoch": batcher.num_positions,
        "steps_per_epoch": per_epoch,
        "total_steps": total_steps,
        "status": "running",
    }
    if world.is_main:
        atomic_write_text(folder / "spec.yaml", dump_spec(spec))
        atomic_write_json(folder / "run.json", info)
    events(TrainStarted(run_dir=str(folder), start_epoch=loop.epoch, epochs=train.epochs,
                        global_step=loop.global_step, steps_per_epoch=per_epoch, total_steps=total_steps,
                        parameters=counts.total, trainable_parameters=counts.trainable, method=train.method,
                        positions_per_epoch=batcher.num_positions, device=info["runtime"]["device"],
                        precision=info["runtime"]["precision"], run=dict(info)))

    last_valid: dict = {}
    tensorboard = epoch_logger(folder, spec.train.tensorboard)

    def validate(epoch: int) -> float:
        if world.size > 1:
            metrics, _ = evaluate_split_sharded(model, seqs, "valid", spec.model.max_len, spec.eval.batch_size,
                                                spec.eval.filter_seen, spec.eval.ks, runtime, world)
        else:
            metrics, _ = evaluate_split(model, seqs, "valid", spec.model.max_len, spec.eval.batch_size,
                                        spec.eval.filter_seen, spec.eval.ks, runtime, cases=plan.cases["valid"])
        last_valid.clear()
        last_valid.update(metrics)
        return metrics[train.monitor]

    def on_improved(epoch: int) -> None:
        if world.is_main:
            save_checkpoint(folder / BEST, {"model": model.state_dict(), "epoch": epoch, "valid": dict(last_valid),
                                            "fingerprint": fingerprint["hash"], "spec_hash": info["spec_hash"],
                                            "items": built.items_info})

    def on_epoch(stats: EpochStats, validated: dict | None) -> None:
        nonlocal metrics_lines
        if not world.is_main:
            return
        record = {"epoch": stats.epoch, "loss": round(stats.loss, 6), "seconds": round(stats.seconds, 3),
                  "positions": stats.positions, "positions_per_s": round(stats.positions_per_second, 1)}
        if validated is not None:
            record["valid"] = dict(last_valid)
            record["improved"] = validated["improved"]
        append_jsonl(folder / "metrics.jsonl", record)
        metrics_lines += 1
        if tensorboard:
            tensorboard(record)
        events(EpochDone(**record, monitor=train.monitor, best_epoch=stopper.best_epoch, best=stopper.best))

    def save_state(state: LoopState) -> None:
        if world.is_main:
            save_checkpoint(folder / LAST, {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(), "loop": state.state(), "epoch": state.epoch - 1,
                "stopper": stopper.state(), "rng": rng_state(), "batches_per_step": train.grad_accum * world.size,
                "metrics_lines": metrics_lines, "fingerprint": fingerprint["hash"], "spec_hash": info["spec_hash"],
                "items": built.items_info},
                about=state.state())

    hooks = TrainHooks(validate=validate, on_step=lambda step, total, loss: events(StepDone(step, total, loss)),
                       on_epoch=on_epoch,
        on_improved=on_improved, save_state=save_state)
    started = time.time()
    deadline = started + 60 * train.max_minutes if train.max_minutes else None
    reason = "early_stop" if stopper.should_stop else "epochs"
    if not stopper.should_stop and (train.max_steps is not None or loop.epoch <= train.epochs):
        loss_fn = make_loss(train, training_item_counts(seqs))  # samplers draw from training counts
        reason = train_loop(model, batcher, optimizer, loss_fn, runtime, stopper, hooks,
                            epochs=train.epochs, eval_every=train.eval_every, grad_clip=train.grad_clip,
                            seed=train.seed, deadline=deadline, scheduler=scheduler, grad_accum=train.grad_accum,
                            max_steps=train.max_steps, checkpoint_every=train.checkpoint_every_steps, state=loop,
                            world=world, scaler=scaler, compile=spec.runtime.compile,
                            loss_norm=train.loss_norm)
    seconds = time.time() - started
    info.update({"status": "finished", "stop_reason": reason, "best_epoch": stopper.best_epoch,
                 f"best_valid_{train.monitor}": stopper.best, "epochs_run": metrics_lines,
                 "global_step": loop.global_step, "seconds_this_session": round(seconds, 1)})
    if world.is_main:
        atomic_write_json(folder / "run.json", info)
    events(TrainDone(run_dir=str(folder), stop_reason=reason, run=dict(info)))
    return FinetuneResult(folder, reason, stopper.best_epoch, stopper.best, metrics_lines, seconds, world.is_main)
