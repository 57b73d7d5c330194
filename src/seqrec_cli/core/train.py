"""The training loop: one plain function with explicit steps. Logging and checkpointing come in as callables.

One optimizer step consumes a *group* of `grad_accum x processes` consecutive batches of the epoch's
plan; each process takes its `grad_accum` of them. Every batch's loss is weighted by its share of
the group's labelled positions, so a step's gradient is the mean over all the group's positions no
matter how the group is split: one process with grad_accum=2 and two processes with grad_accum=1
take the same steps (up to float summation order). With `step_positions` (train.loss_norm: epoch)
the sum is divided by that fixed number (the epoch's mean positions per step) instead of the
group's own count, so every labelled position weighs the same over the epoch even when
length-bucketed groups hold very different numbers of positions. Dropout is re-seeded per batch
from (seed, epoch, batch index), so its masks do not depend on the split, nor on where a run was
resumed.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from seqrec_cli.core.distributed import World
from seqrec_cli.core.model import SeqRecModel
from seqrec_cli.core.runtime import Runtime
from seqrec_cli.data.batching import TrainBatcher


@dataclass
class EarlyStopping:
    """Tracks the best validation value; stops after `patience` validations without improvement."""

    patience: int
    best: float = -math.inf
    best_epoch: int = 0
    bad: int = 0

    def update(self, value: float, epoch: int) -> bool:
        if value > self.best:
            self.best, self.best_epoch, self.bad = value, epoch, 0
            return True
        self.bad += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.bad >= self.patience

    def state(self) -> dict:
        return asdict(self)


@dataclass
class LoopState:
    """Where training stands. With the module, optimizer, scheduler and RNG states it is everything
    an exact mid-epoch resume needs (the epoch's batch plan is recomputed from (seed, epoch))."""

    epoch: int = 1  # the epoch in progress, or the next one to start
    batches_done: int = 0  # batches of this epoch's plan consumed, by all processes together
    global_step: int = 0  # optimizer steps taken since the start of the run
    loss_sum: float = 0.0  # this epoch so far: sum of the loss over labelled positions
    positions: int = 0  # this epoch so far: labelled positions
    seconds: float = 0.0  # this epoch so far: training seconds, over every session (a resume adds to it)

    def state(self) -> dict:
        return asdict(self)


@dataclass
class EpochStats:
    epoch: int
    loss: float
    positions: int
    seconds: float

    @property
    def positions_per_second(self) -> float:
        return self.positions / max(self.seconds, 1e-9)


@dataclass
class TrainHooks:
    """What the caller plugs in: validation, per-step progress and persistence."""

    validate: Callable[[int], float]  # epoch -> monitored value (higher is better); called on every process
    on_step: Callable[[int, int, float], None] = lambda step, total, loss: None  # step in epoch, steps, loss
    on_epoch: Callable[[EpochStats, dict | None], None] = lambda stats, val: None
    on_improved: Callable[[int], None] = lambda epoch: None
    save_state: Callable[[LoopState], None] = lambda state: None  # after each epoch and every N steps


@dataclass(frozen=True)
class LoopConfig:
    """The loop's settings, fixed for a run (the spec's train section, plus the wall-clock deadline)."""

    epochs: int
    eval_every: int = 1
    grad_clip: float | None = None
    seed: int = 0
    grad_accum: int = 1  # batches per process per optimizer step
    max_steps: int | None = None  # stop after this many optimizer steps instead of `epochs`
    checkpoint_every: int | None = None  # also call hooks.save_state every N optimizer steps
    deadline: float | None = None  # time.time() after which the loop stops at the end of an epoch
    compile: bool = False
    loss_norm: str = "step"  # 'step': each step's mean over its positions; 'epoch': see the module doc


@dataclass
class TrainParts:
    """The objects a run trains with; the loop calls them and never builds them."""

    model: SeqRecModel
    batcher: TrainBatcher
    optimizer: torch.optim.Optimizer
    loss_fn: Callable
    runtime: Runtime
    scheduler: Any = None
    scaler: torch.amp.GradScaler = field(default_factory=lambda: torch.amp.GradScaler("cuda", enabled=False))
    world: World = field(default_factory=World)


class StepLoss(nn.Module):
    """Model and loss as one forward, so DDP and torch.compile see the whole training computation."""

    def __init__(self, model: SeqRecModel, loss_fn: Callable):
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(
        self, inputs: torch.Tensor, labels: torch.Tensor, times: torch.Tensor | None = None
    ) -> torch.Tensor:
        hidden = self.model.encode(inputs, times)  # [B, L, D]
        if self.model.repeat is None:
            return self.loss_fn(hidden, labels, self.model.item_weights())  # []
        offsets = self.model.repeat.every_position(inputs, hidden)  # one row per [B, L] position
        return self.loss_fn(hidden, labels, self.model.item_weights(), offsets=offsets)  # []


def batch_seed(seed: int, epoch: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


def steps_per_epoch(num_batches: int, grad_accum: int, world_size: int) -> int:
    return -(-num_batches // (grad_accum * world_size))


def wrap_step(
    model: SeqRecModel, loss_fn: Callable, runtime: Runtime, world: World, compile: bool
) -> nn.Module:
    if compile:
        # The losses pick the labelled positions (a data-dependent count) and loop over chunks of them:
        # traced, every new count is a new graph and a recompilation (seconds each, every step). They are
        # matmul-bound anyway, so only the model is compiled and the loss runs eagerly.
        loss_fn = torch.compiler.disable(loss_fn)
    step: nn.Module = StepLoss(model, loss_fn)
    if world.size > 1:
        ids = [runtime.device.index] if runtime.device.type == "cuda" else None
        step = nn.parallel.DistributedDataParallel(step, device_ids=ids)
    if compile:
        step = torch.compile(step, dynamic=True)  # dynamic: batch widths vary with length bucketing
    return step


def optimizer_step(forward: nn.Module, parts: TrainParts, config: LoopConfig, group: list[np.ndarray],
                   first_index: int, epoch: int, step_positions: float | None = None) -> tuple[float, int]:
    """One optimizer step over a group of batches; returns (mean loss over the group's positions,
    positions). The loss summed over the group is divided by `step_positions` when given, else by the
    group's positions."""
    batcher, optimizer, scaler, runtime, world = (
        parts.batcher,
        parts.optimizer,
        parts.scaler,
        parts.runtime,
        parts.world,
    )
    grad_accum, grad_clip, seed = config.grad_accum, config.grad_clip, config.seed
    counts = [batcher.positions(rows) for rows in group]
    total = sum(counts)
    norm = step_positions or total
    mine = list(range(world.rank * grad_accum, min((world.rank + 1) * grad_accum, len(group))))
    # DDP averages gradients over processes, hence the x size; a process left without a batch by the
    # epoch's last group still joins the gradient sync, with a zero-weighted batch.
    weights = [counts[i] / norm * world.size for i in mine] or [0.0]
    mine = mine or [0]
    optimizer.zero_grad(set_to_none=True)
    local = 0.0
    for j, (i, weight) in enumerate(zip(mine, weights, strict=True)):
        torch.manual_seed(batch_seed(seed, epoch, first_index + i))  # dropout masks: a function of the batch
        batch = batcher.make_batch(group[i])
        inputs = batch.inputs.to(runtime.device, non_blocking=True)  # [B, L]
        labels = batch.labels.to(runtime.device, non_blocking=True)  # [B, L]
        times = None if batch.times is None else batch.times.to(runtime.device, non_blocking=True)  # [B, L]
        last = j == len(mine) - 1
        sync = contextlib.nullcontext() if last or world.size == 1 else forward.no_sync()
        with sync:
            with runtime.autocast():
                loss = forward(inputs, labels, times)  # []
            scaler.scale(loss * weight).backward()
        if weight:
            local += float(loss.detach()) * counts[i]  # one device sync per batch
    if grad_clip:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], grad_clip)
    scaler.step(optimizer)
    scaler.update()
    if parts.scheduler is not None:
        parts.scheduler.step()
    (loss_sum,) = world.sum([local])
    return loss_sum / max(total, 1), total


def train_loop(parts: TrainParts, config: LoopConfig, stopper: EarlyStopping, hooks: TrainHooks,
               state: LoopState | None = None) -> str:
    """Train from `state` (default: the start of epoch 1) until `config.epochs` are done or, when
    `config.max_steps` is set, until that many optimizer steps are. Returns why it stopped: 'epochs',
    'max_steps', 'early_stop' or 'time_budget'."""
    state = state or LoopState()
    if config.max_steps is not None and state.global_step >= config.max_steps:
        return "max_steps"
    forward = wrap_step(parts.model, parts.loss_fn, parts.runtime, parts.world, config.compile)
    while config.max_steps is not None or state.epoch <= config.epochs:
        started = time.perf_counter() - state.seconds  # a resumed epoch counts its earlier sessions' time
        out_of_steps, plan_len = _train_epoch(forward, parts, config, hooks, state, started)
        epoch = state.epoch
        stats = EpochStats(epoch, state.loss_sum / max(state.positions, 1), state.positions,
                           time.perf_counter() - started)
        validated = None
        last = config.max_steps is None and epoch == config.epochs
        if epoch % config.eval_every == 0 or out_of_steps or last:
            value = hooks.validate(epoch)
            improved = stopper.update(value, epoch)
            validated = {"value": value, "improved": improved}
            if improved:
                hooks.on_improved(epoch)
        if state.batches_done >= plan_len:  # the epoch is complete: the state points at the next one
            state.epoch, state.batches_done, state.loss_sum, state.positions = epoch + 1, 0, 0.0, 0
            state.seconds = 0.0
        else:
            state.seconds = stats.seconds
        hooks.on_epoch(stats, validated)
        hooks.save_state(state)
        if out_of_steps:
            return "max_steps"
        if stopper.should_stop:
            return "early_stop"
        if config.deadline is not None and parts.world.any(time.time() > config.deadline):
            return "time_budget"
    return "epochs"


def _train_epoch(forward: nn.Module, parts: TrainParts, config: LoopConfig, hooks: TrainHooks,
                 state: LoopState, started: float) -> tuple[bool, int]:
    """The optimizer steps of `state.epoch` from where it stands; returns (whether max_steps ran out,
    batches in the epoch's plan)."""
    plan = parts.batcher.plan(
        np.random.default_rng([config.seed, state.epoch])
    )  # depends only on (seed, epoch)
    group_size = config.grad_accum * parts.world.size
    steps = -(-len(plan) // group_size)
    step_positions = parts.batcher.num_positions / steps if config.loss_norm == "epoch" else None
    forward.train()
    while state.batches_done < len(plan):
        first = state.batches_done
        group = plan[first : first + group_size]
        loss, positions = optimizer_step(forward, parts, config, group, first, state.epoch, step_positions)
        state.batches_done = min(first + group_size, len(plan))
        state.global_step += 1
        state.loss_sum += loss * positions
        state.positions += positions
        hooks.on_step(-(-state.batches_done // group_size), steps, loss)
        if config.max_steps is not None and state.global_step >= config.max_steps:
            return True, len(plan)
        every = config.checkpoint_every
        if every and state.global_step % every == 0 and state.batches_done < len(plan):
            state.seconds = time.perf_counter() - started
            hooks.save_state(state)
    return False, len(plan)
