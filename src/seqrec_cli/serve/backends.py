"""Scoring backends: left-padded item indices [B, L] (and times) -> user vectors [B, D] float32.

One model copy per backend, loaded once. torch runs the exported weights through SeqRecModel;
onnx runs model.onnx (written by `seqrec export --format onnx`) on onnxruntime.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from seqrec_cli.errors import UserError

BackendKind = Literal["torch", "onnx"]


class Backend(Protocol):
    kind: str
    uses_times: bool

    def user_vectors(self, inputs: np.ndarray, times: np.ndarray | None) -> np.ndarray:
        """inputs [B, L] int64 left-padded, times [B, L] float64 or None -> [B, D] float32."""


class TorchBackend:
    kind = "torch"

    def __init__(self, folder: Path, threads: int | None, manifest: dict | None = None):
        """`manifest`: what the caller's `verify_export` returned, so the files are not hashed twice."""
        import torch

        from seqrec_cli.artifacts.recommender import Recommender

        if threads:
            torch.set_num_threads(threads)
        self.torch = torch
        loaded = Recommender.load(folder) if manifest is None else Recommender.from_verified(folder, manifest)
        self.model = loaded.model.eval()
        self.uses_times = bool(self.model.uses_times)

    def user_vectors(self, inputs: np.ndarray, times: np.ndarray | None) -> np.ndarray:
        torch = self.torch
        with torch.inference_mode():
            stamps = None if times is None else torch.from_numpy(times)
            return self.model.last_hidden(torch.from_numpy(inputs), stamps).float().numpy()  # [B, D]


class OnnxBackend:
    kind = "onnx"

    def __init__(self, folder: Path, threads: int | None, manifest: dict | None = None):
        # model.onnx is read as is: serving verifies the whole export before building a backend.
        path = Path(folder) / "model.onnx"
        if not path.is_file():
            raise UserError(
                "this export has no model.onnx",
                where=str(folder),
                fix="export with `seqrec export SPEC --format onnx`, or serve with --backend torch",
            )
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise UserError(
                "--backend onnx needs onnxruntime", where="--backend", fix="pip install 'seqrec[serve]'"
            ) from exc
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        timed = Path(folder) / "model_times.onnx"  # time-aware encoders: the graph that reads times
        self.timed = (
            ort.InferenceSession(str(timed), options, providers=["CPUExecutionProvider"])
            if timed.is_file()
            else None
        )
        self.uses_times = self.timed is not None

    def user_vectors(self, inputs: np.ndarray, times: np.ndarray | None) -> np.ndarray:
        if times is not None and self.timed is not None:
            out = self.timed.run(["user"], {"inputs": inputs, "times": times})[0]
        else:
            out = self.session.run(["user"], {"inputs": inputs})[0]
        return out.astype(np.float32, copy=False)  # [B, D]


BACKENDS: dict[str, type] = {"torch": TorchBackend, "onnx": OnnxBackend}
