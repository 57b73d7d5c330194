"""Device and precision are resolved once, here. Explicit requests that cannot be met are errors."""

from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass

import numpy as np
import torch

from seqrec_cli.errors import UserError


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    dtype: torch.dtype | None  # autocast dtype; None = plain fp32

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def describe(self) -> dict:
        return {"device": str(self.device), "precision": "bf16" if self.dtype else "fp32"}


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


def resolve_runtime(device: str, precision: str, threads: int | None = None) -> Runtime:
    if threads:
        torch.set_num_threads(threads)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "mps" if _mps_available() else "cpu"
    elif device == "cuda" and not torch.cuda.is_available():
        raise UserError(
            "runtime.device is 'cuda' but this torch build sees no CUDA device",
            where="runtime.device",
            fix="use runtime.device=auto or cpu, or install a CUDA build of torch",
        )
    elif device == "mps" and not _mps_available():
        raise UserError("runtime.device is 'mps' but MPS is not available", where="runtime.device",
                        fix="use runtime.device=auto or cpu")
    dev = torch.device(device)
    if precision == "auto":
        dtype = torch.bfloat16 if dev.type == "cuda" and torch.cuda.is_bf16_supported() else None
    elif precision == "bf16":
        if dev.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise UserError("runtime.precision is bf16 but this GPU does not support bf16",
                            where="runtime.precision", fix="use runtime.precision=fp32")
        dtype = torch.bfloat16
    else:
        dtype = None
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return Runtime(device=dev, dtype=dtype)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
