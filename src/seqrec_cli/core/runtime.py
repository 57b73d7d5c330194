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
        return {"device": str(self.device), "precision": PRECISION_NAMES[self.dtype]}


PRECISION_NAMES = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


def cpu_bf16_supported() -> bool:
    """Native bf16 matmuls on this CPU (AVX512-BF16 or AMX). Elsewhere CPU autocast would emulate
    bf16, which is slower than fp32 and less accurate, so it is refused rather than silently slow."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


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
    dtype = _autocast_dtype(dev, precision)
    if (
        dev.type == "cuda"
    ):  # TF32 matmuls on Ampere or newer: fp32 accuracy for this model at tensor-core speed
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return Runtime(device=dev, dtype=dtype)


def _autocast_dtype(dev: torch.device, precision: str) -> torch.dtype | None:
    if precision == "auto":
        return torch.bfloat16 if dev.type == "cuda" and torch.cuda.is_bf16_supported() else None
    if precision == "fp32":
        return None
    if precision == "fp16":
        if dev.type != "cuda":
            raise UserError(
                f"runtime.precision is fp16 but the device is {dev.type}; fp16 training needs CUDA "
                "(with loss scaling)",
                where="runtime.precision",
                fix="use runtime.precision=fp32 (or bf16 on a CPU with AVX512-BF16/AMX)",
            )
        return torch.float16
    if dev.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise UserError(
            "runtime.precision is bf16 but this GPU does not support bf16",
            where="runtime.precision",
            fix="use runtime.precision=fp16 or fp32",
        )
    if dev.type == "cpu" and not cpu_bf16_supported():
        raise UserError(
            "runtime.precision is bf16 but this CPU has no native bf16 (AVX512-BF16 or AMX); torch "
            "would emulate it, slower than fp32",
            where="runtime.precision",
            fix="use runtime.precision=fp32 (or auto) on this machine",
        )
    return torch.bfloat16


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """Every random stream a training step may touch (torch, CUDA, numpy's and Python's global
    generators), as tensors and primitives so a checkpoint still loads with weights_only=True."""
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = {"torch": torch.get_rng_state(), "numpy_keys": torch.from_numpy(keys.astype(np.int64)),
             "numpy_pos": int(pos), "numpy_gauss": [int(has_gauss), float(gauss)],
             "python": [version, list(internal), gauss_next]}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    has_gauss, gauss = state["numpy_gauss"]
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32), state["numpy_pos"],
                         int(has_gauss), float(gauss)))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
