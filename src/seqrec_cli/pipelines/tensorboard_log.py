"""Optional TensorBoard logging of the per-epoch record (loss, throughput, validation metrics).

Off by default (train.tensorboard); tensorboard is not a dependency. Asking for it without the
package installed is an error, not a silent no-op.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from seqrec_cli.errors import UserError


def epoch_logger(folder: Path, enabled: bool) -> Callable[[dict], None] | None:
    if not enabled:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        raise UserError(
            "train.tensorboard is on but the tensorboard package is not installed",
            where="train.tensorboard",
            fix="pip install tensorboard, or set train.tensorboard=false",
        ) from exc
    writer = SummaryWriter(log_dir=str(Path(folder) / "tensorboard"))

    def log(record: dict) -> None:
        step = record["epoch"]
        for key in ("loss", "positions_per_s", "seconds"):
            if key in record:
                writer.add_scalar(f"train/{key}", record[key], step)
        for name, value in record.get("valid", {}).items():
            writer.add_scalar(f"valid/{name}", value, step)
        writer.flush()

    return log
