"""What `finetune` returns, for a trained network and a fitted baseline alike."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class FinetuneResult:
    run_dir: Path
    stop_reason: str
    best_epoch: int
    best_value: float
    epochs_run: int
    seconds: float
    is_main: bool = True  # False on torchrun's other processes, which write and print nothing
