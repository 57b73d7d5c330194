"""The training loop: one plain function with explicit steps. Logging and checkpointing come in as callables."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch

from seqrec_cli.core.model import SeqRecModel
from seqrec_cli.core.runtime import Runtime
from seqrec_cli.data.batching import IGNORE, TrainBatcher


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
    """What the caller plugs in: validation, per-step progress and per-epoch persistence."""

    validate: Callable[[int], float]  # epoch -> monitored value (higher is better)
    on_step: Callable[[int, int, float], None] = lambda step, total, loss: None
    on_epoch: Callable[[EpochStats, dict | None], None] = lambda stats, val: None
    on_improved: Callable[[int], None] = lambda epoch: None
    save_state: Callable[[int], None] = lambda epoch: None


def train_epoch(model: SeqRecModel, batcher: TrainBatcher, optimizer: torch.optim.Optimizer, loss_fn: Callable,
                runtime: Runtime, rng: np.random.Generator, grad_clip: float | None,
                on_step: Callable[[int, int, float], None], scheduler=None) -> tuple[float, int]:
    """One pass over the training users; returns (mean loss per labelled position, positions)."""
    model.train()
    total_loss, total_pos = 0.0, 0
    for step, batch in enumerate(batcher.epoch(rng)):
        inputs = batch.inputs.to(runtime.device, non_blocking=True)  # [B, L]
        labels = batch.labels.to(runtime.device, non_blocking=True)  # [B, L]
        with runtime.autocast():
            hidden = model.encode(inputs)  # [B, L, D]
            loss = loss_fn(hidden, labels, model.item_weights())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        value, n = float(loss.detach()), int((labels != IGNORE).sum())  # one device sync each
        total_loss += value * n
        total_pos += n
        on_step(step + 1, len(batcher), value)
    return total_loss / max(total_pos, 1), total_pos


def train_loop(model: SeqRecModel, batcher: TrainBatcher, optimizer: torch.optim.Optimizer, loss_fn: Callable,
               runtime: Runtime, stopper: EarlyStopping, hooks: TrainHooks, *, start_epoch: int, epochs: int,
               eval_every: int, grad_clip: float | None, seed: int, deadline: float | None = None,
               scheduler=None) -> str:
    """Train epochs start_epoch..epochs; returns why it stopped: 'epochs', 'early_stop' or 'time_budget'."""
    for epoch in range(start_epoch, epochs + 1):
        rng = np.random.default_rng([seed, epoch])  # batch order depends only on (seed, epoch): resumable
        started = time.perf_counter()
        loss, positions = train_epoch(model, batcher, optimizer, loss_fn, runtime, rng, grad_clip, hooks.on_step,
                                      scheduler)
        stats = EpochStats(epoch, loss, positions, time.perf_counter() - started)
        validated = None
        if epoch % eval_every == 0 or epoch == epochs:
            value = hooks.validate(epoch)
            improved = stopper.update(value, epoch)
            validated = {"value": value, "improved": improved}
            if improved:
                hooks.on_improved(epoch)
        hooks.on_epoch(stats, validated)
        hooks.save_state(epoch)
        if stopper.should_stop:
            return "early_stop"
        if deadline is not None and time.time() > deadline:
            return "time_budget"
    return "epochs"
