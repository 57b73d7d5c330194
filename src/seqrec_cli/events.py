"""Progress events: what a pipeline reports to whoever drives it (the CLI's displays, a sweep, a test).

Each event is a frozen dataclass and `Events` is the one callback type; a consumer dispatches on the
event's type (`match event: case EpochDone(): ...`), never on strings. A pipeline runs the same
whether anyone listens: events carry facts, never requests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class PrepareReading:
    """prepare started reading a raw interaction log."""

    source: str


@dataclass(frozen=True)
class PrepareWritten:
    folder: str


@dataclass(frozen=True)
class PrepareReused:
    """The prepared dataset for this data section was already there (prepare is then a no-op)."""

    folder: str


@dataclass(frozen=True)
class TextEncoding:
    """Item texts are about to go through the text encoder (a cache miss)."""

    items: int
    with_text: int
    encoder: str


@dataclass(frozen=True)
class TextBatch:
    done: int
    total: int


@dataclass(frozen=True)
class TextEncoded:
    seconds: float
    path: str  # the cache file the vectors went to


@dataclass(frozen=True)
class TextReady:
    items: int
    without_text: int
    cached: bool  # the vectors came from the cache, not the encoder
    example: str


@dataclass(frozen=True)
class InitializedFrom:
    """train.init_from was loaded: all weights (same dataset) or a transfer across catalogues."""

    path: str
    mode: str  # "same_dataset" | "transfer" | "warm_start" (by raw item id, core/warm_start.py)
    moved: int = 0  # transfer: tensors that moved
    fresh: tuple[str, ...] = ()  # transfer: tensors that start fresh (the new id table)
    kept: int = 0  # warm_start: items whose raw id the source knows (their rows kept exactly)
    new: int = 0  # warm_start: items the source never saw
    dropped: int = 0  # warm_start: source items missing from this catalogue
    new_init: str = ""  # warm_start: how new items start ("mean_known_row" or "zero_id_part")


@dataclass(frozen=True)
class Resumed:
    epoch: int  # last completed epoch
    step: int  # optimizer steps done
    batches_done: int  # batches of the next epoch already done (a mid-epoch checkpoint)


@dataclass(frozen=True)
class TrainStarted:
    run_dir: str
    start_epoch: int
    epochs: int
    global_step: int
    steps_per_epoch: int
    total_steps: int
    parameters: int
    trainable_parameters: int
    method: str
    positions_per_epoch: int
    device: str
    precision: str
    run: dict[str, Any] = field(default_factory=dict)  # the run.json record as written


@dataclass(frozen=True)
class StepDone:
    step: int  # optimizer steps done in this epoch
    total: int  # optimizer steps in this epoch
    loss: float


@dataclass(frozen=True)
class EpochDone:
    """One line of metrics.jsonl, plus the early-stopping state after it."""

    epoch: int
    loss: float
    seconds: float
    positions: int
    positions_per_s: float
    monitor: str
    best_epoch: int
    best: float
    valid: dict[str, float] | None = None  # None when this epoch was not validated
    improved: bool = False

    @property
    def monitored(self) -> float | None:
        return None if self.valid is None else self.valid[self.monitor]


@dataclass(frozen=True)
class TrainDone:
    run_dir: str
    stop_reason: str
    run: dict[str, Any] = field(default_factory=dict)  # the final run.json record


@dataclass(frozen=True)
class Note:
    """A line worth telling the user that is not an error (e.g. a stale lock a dead process left)."""

    text: str


@dataclass(frozen=True)
class BacktestStarted:
    folder: str
    periods: tuple[float, ...]  # start of each period
    strategies: tuple[str, ...]
    interactions: int


@dataclass(frozen=True)
class BacktestTraining:
    """A backtest model is about to train (retrain from scratch, or update the previous period's)."""

    period: int
    strategy: str


@dataclass(frozen=True)
class BacktestEvaluated:
    period: int
    strategy: str
    ndcg10: float
    hr10: float
    train_seconds: float


@dataclass(frozen=True)
class BacktestDone:
    folder: str


Event = (
    PrepareReading | PrepareWritten | PrepareReused
    | TextEncoding | TextBatch | TextEncoded | TextReady
    | InitializedFrom | Resumed | TrainStarted | StepDone | EpochDone | TrainDone | Note
    | BacktestStarted | BacktestTraining | BacktestEvaluated | BacktestDone
)
Events = Callable[[Event], None]


def no_events(event: Event) -> None:
    """The default listener: nobody is listening."""
