"""The user tower of a model as an ONNX graph: item indices [B, L] (and times) -> user vectors [B, D].

Only the sequence encoder goes to ONNX; scoring (user vector x item table) stays outside the graph so
the service can pick exact blocked top-k or an approximate index over the same `item_table`. Batch
and length axes are dynamic: the service trims left padding to the longest history of a batch.

Every encoder of core/encoders.ENCODERS exports (tests/test_serve_onnx.py checks each one against
torch). A time-aware encoder (HSTU) gets a second graph, model_times.onnx, whose second input is `times`
[B, L] float64 seconds; model.onnx scores such a model from item order alone, as torch does without times.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from seqrec_cli.data.batching import PAD
from seqrec_cli.errors import UserError

OPSET = 17
TIMES_GRAPH = "model_times.onnx"


class UserTower(nn.Module):
    """last_hidden of a SeqRecModel, the part of scoring that depends on the history."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, inputs: torch.Tensor, times: torch.Tensor | None = None) -> torch.Tensor:
        return self.model.last_hidden(inputs, times)  # [B, D]


def write_onnx(model: nn.Module, path: Path, max_len: int) -> None:
    """Trace the eval-mode user tower at a small example and write it with dynamic batch/length axes."""
    try:
        import onnx  # noqa: F401  (torch.onnx needs it; checked here for a clear message)
    except ImportError as exc:
        raise UserError(
            "ONNX export needs the onnx package", where="--format onnx", fix="pip install 'seqrec[serve]'"
        ) from exc
    tower = UserTower(model).eval()
    length = min(max_len, 8)
    inputs = torch.randint(1, model.num_items + 1, (2, length))  # [2, L]
    inputs[0, : length // 2] = PAD  # one left-padded row, so padding paths are traced too
    _export(tower, (inputs,), path)
    if model.uses_times:  # a second graph that also reads the times (the first scores from order alone)
        times = torch.cumsum(torch.rand(2, length, dtype=torch.float64) * 1e5, dim=1)  # [2, L]
        _export(tower, (inputs, times), path.with_name(TIMES_GRAPH))
    model.eval()  # export restores the wrapper's (training) mode onto the model; keep it in eval


def _export(tower: nn.Module, args: tuple, path: Path) -> None:
    names = ["inputs", "times"][: len(args)]
    axes = {name: {0: "batch", 1: "length"} for name in names} | {"user": {0: "batch"}}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about python ints: the axes are declared dynamic
        torch.onnx.export(
            tower,
            args,
            str(path),
            input_names=names,
            output_names=["user"],
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )
    tower.eval()  # export restores the wrapper's previous mode; keep the model in eval
