"""Checkpoints hold tensors and primitives only, so they load with torch.load(weights_only=True)."""

from __future__ import annotations

from pathlib import Path

import torch

from seqrec_cli.atomic import atomic_write
from seqrec_cli.errors import UserError


def save_checkpoint(path: Path, payload: dict) -> None:
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(
            "checkpoint not found",
            where=str(path),
            fix="run `seqrec finetune SPEC` first (or check the spec's name and runtime.output_root)",
        )
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # a truncated or foreign file: report, never half-load
        raise UserError(f"checkpoint cannot be read ({type(exc).__name__}: {exc})", where=str(path),
                        fix="delete it and train again, or point at another run") from exc
