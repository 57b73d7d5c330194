"""`seqrec finetune`: train with early stopping on validation, checkpointing as it goes; resumable."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from seqrec_cli.atomic import append_jsonl, atomic_write_json, atomic_write_text
from seqrec_cli.core.checkpoint import save_checkpoint
from seqrec_cli.core.distributed import World, evaluate_split_sharded, init_world
from seqrec_cli.core.evaluation import RankOptions, evaluate_split
from seqrec_cli.core.losses import make_loss
from seqrec_cli.core.methods import apply_method
from seqrec_cli.core.objectives import make_train_batcher, training_item_counts
from seqrec_cli.core.optim import make_optimizer
from seqrec_cli.core.runtime import Runtime, rng_state, seed_everything, set_rng_state
from seqrec_cli.core.schedule import make_scheduler
from seqrec_cli.core.train import (
    EarlyStopping,
    EpochStats,
    LoopConfig,
    LoopState,
    TrainHooks,
    TrainParts,
    steps_per_epoch,
    train_loop,
)
from seqrec_cli.data.process import Sequences
from seqrec_cli.data.splits import SplitPlan
from seqrec_cli.data.store import read_json_file
from seqrec_cli.errors import UserError
from seqrec_cli.events import (
    EpochDone,
    Events,
    InitializedFrom,
    Note,
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
from seqrec_cli.pipelines.run_folder import RunLock, claim_run_dir, lock_run, stale_note
from seqrec_cli.pipelines.run_format import load_run_checkpoint, stamped
from seqrec_cli.pipelines.tensorboard_log import epoch_logger
from seqrec_cli.pipelines.transfer import init_from
from seqrec_cli.spec.loader import dump_spec, spec_hash
from seqrec_cli.spec.models import ExperimentSpec

__all__ = ["FinetuneResult", "finetune"]


def _claim_run_dir(spec: ExperimentSpec, resume: bool, restart: bool, lock: RunLock,
                   events: Events) -> tuple[Path, bool]:
    """Create the run folder, reopen it for --resume or move it aside for --restart (run_folder.py's
    rules); never reuse another spec's folder."""
    folder = run_dir(spec)
    if note := stale_note(lock):
        events(Note(note))
    info_path = folder / "run.json"
    if resume and folder.is_dir() and any(folder.iterdir()):
        fix = "restore run.json, or pass --restart to start over"
        info = read_json_file(info_path, "the run's run.json", fix) if info_path.is_file() else {}
        if not isinstance(info, dict) or info.get("resumable_hash") != resumable_hash(spec):
            raise UserError("run folder was made by a different spec (only train.epochs, train.max_steps, "
                            "train.patience, train.max_minutes, train.checkpoint_every_steps and the runtime "
                            "section may change on --resume)", where=str(folder),
                            fix="use the original spec, or choose another name (--set name=...)")
    claim = claim_run_dir(folder, resume, restart)
    if claim.moved_to is not None:
        events(Note(f"--restart: the old run folder is now {claim.moved_to}"))
    if claim.note:
        events(Note(claim.note))
    return folder, claim.has_state


def _restore(path: Path, fingerprint: str, model, optimizer, scheduler, scaler, spec: ExperimentSpec,
             batches_per_step: int, built: BuiltModel) -> tuple[LoopState, EarlyStopping, int]:
    """Load everything --resume needs from the last checkpoint: (loop state, early stopping, metrics lines).
    Only this seqrec's run format is read (pipelines/run_format.py)."""
    state = load_run_checkpoint(path)
    if state["fingerprint"] != fingerprint:
        raise UserError("last checkpoint was trained on a different prepared dataset", where=str(path),
                        fix="choose another run name")
    check_text_vectors(state.get("items"), built, str(path))  # the adaptor knows only its own text vectors
    saved_group = int(state["batches_per_step"])
    if saved_group != batches_per_step:
        raise UserError(
            f"the run took {saved_group} batches per optimizer step (train.grad_accum x processes) and "
            f"this launch takes {batches_per_step}; resuming would change every later step",
            where=str(path),
            fix="resume with the same product of train.grad_accum and torchrun processes",
        )
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if state["scaler"]:
        scaler.load_state_dict(state["scaler"])
    set_rng_state(state["rng"])
    stopper = EarlyStopping(
        spec.train.patience, **{k: v for k, v in state["stopper"].items() if k != "patience"}
    )
    return LoopState(**state["loop"]), stopper, int(state["metrics_lines"])


def loop_config(spec: ExperimentSpec, deadline: float | None = None) -> LoopConfig:
    """The training loop's settings from the spec."""
    train = spec.train
    return LoopConfig(
        epochs=train.epochs,
        eval_every=train.eval_every,
        grad_clip=train.grad_clip,
        seed=train.seed,
        grad_accum=train.grad_accum,
        max_steps=train.max_steps,
        checkpoint_every=train.checkpoint_every_steps,
        deadline=deadline,
        compile=spec.runtime.compile,
        loss_norm=train.loss_norm,
    )


def _keep_metrics_lines(path: Path, count: int) -> None:
    """Drop epoch records written after the checkpoint we resume from (a kill can land in between)."""
    if path.is_file():
        lines = path.read_text().splitlines(keepends=True)
        if len(lines) > count:
            atomic_write_text(path, "".join(lines[:count]))


def _drop_partial_epoch(path: Path, count: int, epoch: int) -> int:
    """Remove the last record when it is the epoch about to be continued; returns the new line count."""
    if not path.is_file():
        return count
    lines = path.read_text().splitlines(keepends=True)
    try:
        last = json.loads(lines[-1]) if lines else {}
    except ValueError:
        return count
    if last.get("epoch") != epoch:
        return count
    atomic_write_text(path, "".join(lines[:-1]))
    return len(lines) - 1


def finetune(spec: ExperimentSpec, resume: bool = False, events: Events = no_events,
             restart: bool = False) -> FinetuneResult:
    """Train one run; under torchrun every process calls this and rank 0 alone writes files and events.
    The process holds the run folder's lock (run_folder.py) until it returns."""
    check_monitor(spec)
    if spec.model.kind != "neural":  # non-neural baselines are fitted, not trained
        prepare(spec, events)
        return fit_baseline(spec, resume, events, restart)
    world = init_world(spec.runtime.device)
    try:
        return _finetune(spec, resume, restart, events if world.is_main else no_events, world)
    finally:
        world.close()


def _finetune(spec: ExperimentSpec, resume: bool, restart: bool, events: Events,
              world: World) -> FinetuneResult:
    held: list[RunLock] = []  # rank 0's lock stays in rank 0 (on_main would hand a copy to every rank)
    world.on_main(lambda: held.append(lock_run(run_dir(spec))))  # first: a second process is refused at once
    lock = held[0] if held else None
    try:
        return _finetune_locked(spec, resume, restart, events, world, lock)
    finally:
        if lock is not None:
            lock.release()


@dataclass
class _Session:
    """One finetune session: what its steps build and the training loop's hooks share. The hooks are
    its methods (validate, on_improved, on_epoch, save_state), so their shared state is named here."""

    spec: ExperimentSpec
    world: World
    runtime: Runtime
    seqs: Sequences
    plan: SplitPlan
    folder: Path
    fingerprint: dict
    events: Events
    prepared: Path  # the prepared dataset's folder
    resuming: bool  # the run folder holds a checkpoint to continue from
    built: BuiltModel | None = None
    model: torch.nn.Module | None = None
    optimizer: torch.optim.Optimizer | None = None
    scheduler: object = None
    scaler: torch.amp.GradScaler | None = None
    batcher: object = None
    stopper: EarlyStopping | None = None
    loop: LoopState = field(default_factory=LoopState)
    metrics_lines: int = 0  # epoch records in metrics.jsonl that belong to this run
    info: dict = field(default_factory=dict)  # the run.json record
    last_valid: dict = field(default_factory=dict)  # the latest validation metrics
    tensorboard: object = None
    counts: object = None  # parameters and trainable parameters (core.methods)
    per_epoch: int = 0  # optimizer steps per epoch
    total_steps: int = 0  # optimizer steps the schedule spans

    def validate(self, epoch: int) -> float:
        spec = self.spec
        # validation keeps rank_cases' default block size (not eval.chunk_items), as it always has
        options = RankOptions(spec.model.max_len, spec.eval.batch_size, spec.eval.filter_seen)
        if self.world.size > 1:
            metrics, _ = evaluate_split_sharded(self.model, self.seqs, "valid", options, spec.eval.ks,
                                                self.runtime, self.world)
        else:
            metrics, _ = evaluate_split(self.model, self.seqs, "valid", options, spec.eval.ks, self.runtime,
                                        cases=self.plan.cases["valid"])
        self.last_valid = dict(metrics)
        return metrics[spec.train.monitor]

    def on_improved(self, epoch: int) -> None:
        if self.world.is_main:
            save_checkpoint(self.folder / BEST, stamped({
                "model": self.model.state_dict(), "epoch": epoch, "valid": dict(self.last_valid),
                "fingerprint": self.fingerprint["hash"], "spec_hash": self.info["spec_hash"],
                "items": self.built.items_info}))

    def on_epoch(self, stats: EpochStats, validated: dict | None) -> None:
        if not self.world.is_main:
            return
        record = {"epoch": stats.epoch, "loss": round(stats.loss, 6), "seconds": round(stats.seconds, 3),
                  "positions": stats.positions, "positions_per_s": round(stats.positions_per_second, 1)}
        if validated is not None:
            record["valid"] = dict(self.last_valid)
            record["improved"] = validated["improved"]
        append_jsonl(self.folder / "metrics.jsonl", record)
        self.metrics_lines += 1
        if self.tensorboard:
            self.tensorboard(record)
        self.events(EpochDone(**record, monitor=self.spec.train.monitor, best_epoch=self.stopper.best_epoch,
                              best=self.stopper.best))

    def save_state(self, state: LoopState) -> None:
        if self.world.is_main:
            save_checkpoint(self.folder / LAST, stamped({
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                "loop": state.state(), "epoch": state.epoch - 1, "stopper": self.stopper.state(),
                "rng": rng_state(), "batches_per_step": self.spec.train.grad_accum * self.world.size,
                "metrics_lines": self.metrics_lines, "fingerprint": self.fingerprint["hash"],
                "spec_hash": self.info["spec_hash"], "items": self.built.items_info}),
                about=state.state())

    def hooks(self) -> TrainHooks:
        return TrainHooks(validate=self.validate, on_step=lambda step, total, loss: self.events(
            StepDone(step, total, loss)), on_epoch=self.on_epoch, on_improved=self.on_improved,
            save_state=self.save_state)

    def write_run_json(self) -> None:
        if self.world.is_main:
            atomic_write_json(self.folder / "run.json", stamped(self.info))


def _finetune_locked(spec: ExperimentSpec, resume: bool, restart: bool, events: Events, world: World,
                     lock: RunLock | None) -> FinetuneResult:
    session = _open_session(spec, resume, restart, events, world, lock)
    _build_model(session)
    _restore_or_start(session)
    _start_record(session)
    return _train(session)


def _open_session(spec: ExperimentSpec, resume: bool, restart: bool, events: Events, world: World,
                  lock: RunLock | None) -> _Session:
    """Data, split and run folder."""
    runtime = runtime_for(spec)  # first: a device or precision this machine cannot give fails fast
    world.on_main(lambda: prepare(spec, events))
    seqs, manifest, prepared_folder = load_dataset(spec)
    plan = split_plan(spec, seqs)  # raises on any leakage into training or inputs
    if world.size > 1 and plan.kind != "leave_one_out":
        raise UserError("several processes validate leave-one-out splits only", where="data.split",
                        fix="train temporal splits in one process")
    if world.size > 1 and runtime.device.type == "cuda":
        runtime = replace(runtime, device=world.device)
    folder, has_state = world.on_main(lambda: _claim_run_dir(spec, resume, restart, lock, events))
    return _Session(
        spec,
        world,
        runtime,
        seqs,
        plan,
        folder,
        manifest["fingerprint"],
        events,
        prepared_folder,
        resuming=has_state,
    )


def _build_model(session: _Session) -> None:
    """Model (initialised from train.init_from for a new run), training method, optimizer, batches,
    schedule and loss scaler."""
    spec, world, train = session.spec, session.world, session.spec.train
    seed_everything(train.seed)
    built = build_model(spec, session.seqs, session.prepared, session.events)
    model = built.model.to(session.runtime.device)
    if train.init_from and not session.resuming:
        done = init_from(model, built.items_info, train.init_from, session.fingerprint["hash"],
                         session.folder.parent, item_ids=session.seqs.item_ids, init_items=train.init_items)
        session.events(InitializedFrom(path=str(done["path"]), mode=done["mode"], moved=done.get("moved", 0),
                                       fresh=tuple(done.get("fresh", ())), kept=done.get("kept", 0),
                                       new=done.get("new", 0), dropped=done.get("dropped", 0),
                                       new_init=done.get("new_init", "")))
    counts = apply_method(model, train.method, spec.model.encoder, train.lora,
                          encoder_from_init=bool(train.init_from))
    model.to(session.runtime.device)  # LoRA adapters are created on the CPU
    session.built, session.model = built, model
    session.optimizer = make_optimizer(model, train.lr, train.weight_decay)  # trainable parameters only
    # next-item or masked-item, by encoder
    session.batcher = make_train_batcher(spec.model, train, session.seqs, session.plan.train_len)
    session.counts = counts
    session.per_epoch = steps_per_epoch(len(session.batcher), train.grad_accum, world.size)
    # the schedule spans the true step count
    session.total_steps = train.max_steps or train.epochs * session.per_epoch
    session.scheduler = make_scheduler(
        session.optimizer, session.total_steps, train.warmup_steps, train.schedule
    )
    session.scaler = torch.amp.GradScaler("cuda", enabled=session.runtime.dtype == torch.float16)
    session.stopper = EarlyStopping(train.patience)


def _restore_or_start(session: _Session) -> None:
    """On --resume of a run with a checkpoint: everything the loop needs to continue exactly."""
    if not session.resuming:
        return
    spec, train, world = session.spec, session.spec.train, session.world
    metrics = session.folder / "metrics.jsonl"
    session.loop, session.stopper, session.metrics_lines = _restore(
        session.folder / LAST,
        session.fingerprint["hash"],
        session.model,
        session.optimizer,
        session.scheduler,
        session.scaler,
        spec,
        train.grad_accum * world.size,
        session.built,
    )
    loop = session.loop
    if world.is_main:
        _keep_metrics_lines(metrics, session.metrics_lines)
        if loop.batches_done and (train.max_steps is None or loop.global_step < train.max_steps):
            # a run that ended mid-epoch (max_steps) recorded that part-epoch; it is written again whole
            session.metrics_lines = _drop_partial_epoch(metrics, session.metrics_lines, loop.epoch)
    session.events(Resumed(epoch=loop.epoch - 1, step=loop.global_step, batches_done=loop.batches_done))


def _start_record(session: _Session) -> None:
    """run.json and spec.yaml as the session starts, and the TrainStarted event."""
    spec, train, world, loop = session.spec, session.spec.train, session.world, session.loop
    counts = session.counts
    session.info = {
        "name": spec.name,
        "spec_hash": spec_hash(spec),
        "resumable_hash": resumable_hash(spec),
        "seed": train.seed,
        "dataset_fingerprint": session.fingerprint,
        "runtime": {**session.runtime.describe(), "processes": world.size, "compile": spec.runtime.compile},
        "parameters": counts.total,
        "method": train.method,
        "trainable_parameters": counts.trainable,
        "items": session.built.items_info,
        "train_positions_per_epoch": session.batcher.num_positions,
        "steps_per_epoch": session.per_epoch,
        "total_steps": session.total_steps,
        "status": "running",
    }
    info = session.info
    if world.is_main:
        atomic_write_text(session.folder / "spec.yaml", dump_spec(spec))
    session.write_run_json()
    session.events(
        TrainStarted(
            run_dir=str(session.folder),
            start_epoch=loop.epoch,
            epochs=train.epochs,
            global_step=loop.global_step,
            steps_per_epoch=info["steps_per_epoch"],
            total_steps=info["total_steps"],
            parameters=info["parameters"],
            trainable_parameters=info["trainable_parameters"],
            method=train.method,
            positions_per_epoch=session.batcher.num_positions,
            device=info["runtime"]["device"],
            precision=info["runtime"]["precision"],
            run=dict(info),
        )
    )
    session.tensorboard = epoch_logger(session.folder, train.tensorboard)


def _train(session: _Session) -> FinetuneResult:
    """The training loop until it stops; run.json records how it ended."""
    train, loop, stopper, world = session.spec.train, session.loop, session.stopper, session.world
    started = time.time()
    deadline = started + 60 * train.max_minutes if train.max_minutes else None
    reason = "early_stop" if stopper.should_stop else "epochs"
    try:
        if not stopper.should_stop and (train.max_steps is not None or loop.epoch <= train.epochs):
            loss_fn = make_loss(
                train, training_item_counts(session.seqs)
            )  # samplers draw from training counts
            parts = TrainParts(session.model, session.batcher, session.optimizer, loss_fn, session.runtime,
                               session.scheduler, session.scaler, world)
            reason = train_loop(parts, loop_config(session.spec, deadline), stopper, session.hooks(), loop)
    except KeyboardInterrupt:  # Ctrl-C: say so in run.json; the last checkpoint is what --resume continues
        session.info.update({"status": "interrupted", "epochs_run": session.metrics_lines,
                             "global_step": loop.global_step,
                             "seconds_this_session": round(time.time() - started, 1)})
        session.write_run_json()
        raise
    seconds = time.time() - started
    session.info.update({"status": "finished", "stop_reason": reason, "best_epoch": stopper.best_epoch,
                         f"best_valid_{train.monitor}": stopper.best, "epochs_run": session.metrics_lines,
                         "global_step": loop.global_step, "seconds_this_session": round(seconds, 1)})
    session.write_run_json()
    session.events(TrainDone(run_dir=str(session.folder), stop_reason=reason, run=dict(session.info)))
    return FinetuneResult(session.folder, reason, stopper.best_epoch, stopper.best, session.metrics_lines,
                          seconds, world.is_main)
