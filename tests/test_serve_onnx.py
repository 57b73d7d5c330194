"""ONNX parity: every encoder's exported user tower gives torch's top-k and scores within 1e-4.

Distinct sizes (B=3, L=5 traced at up to 8; N=11 items, D=8) and shapes other than the traced one,
so a graph that froze the batch or length axis fails. Weights are random: parity is about the graph.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from seqrec_cli.artifacts.onnx_export import TIMES_GRAPH, write_onnx  # noqa: E402
from seqrec_cli.core.encoders import ENCODERS  # noqa: E402
from seqrec_cli.core.model import SeqRecModel  # noqa: E402
from seqrec_cli.serve.backends import OnnxBackend  # noqa: E402
from seqrec_cli.spec.models import ModelSpec, TextSpec  # noqa: E402

torch.set_num_threads(1)
N, D, MAX_LEN = 11, 8, 9


def batch(rows: int, width: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(1, N + 1, (rows, width), generator=g)  # [B, L]
    for r in range(rows):
        x[r, : r % width] = 0  # left padding of different lengths
    return x


def check_parity(model: SeqRecModel, folder: Path, times: bool = False) -> None:
    model.eval()
    write_onnx(model, folder / "model.onnx", MAX_LEN)
    backend = OnnxBackend(folder, threads=1)
    table = model.item_weights().detach().numpy()  # [N + 1, D]
    for rows, width in ((3, 5), (1, MAX_LEN), (4, 2)):
        x = batch(rows, width, seed=rows * 10 + width)
        stamps = torch.cumsum(torch.rand(rows, width, dtype=torch.float64) * 1e4, 1) if times else None
        with torch.no_grad():
            ref = model.score_all(x, stamps).numpy()  # [B, N + 1]
        user = backend.user_vectors(x.numpy(), None if stamps is None else stamps.numpy())  # [B, D]
        got = user @ table.T
        got[:, 0] = -np.inf
        assert np.allclose(got[:, 1:], ref[:, 1:], atol=1e-4), np.abs(got[:, 1:] - ref[:, 1:]).max()
        k = 5
        assert (
            np.argsort(-got[:, 1:], 1, kind="stable")[:, :k]
            == np.argsort(-ref[:, 1:], 1, kind="stable")[:, :k]
        ).all()


@pytest.mark.parametrize("encoder", sorted(ENCODERS))
def test_every_encoder_exports_with_parity(encoder: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = SeqRecModel(ModelSpec(encoder=encoder, max_len=MAX_LEN, hidden=D, layers=2, heads=2), N)
    check_parity(model, tmp_path, times=False)


@pytest.mark.parametrize("layout", ["original", "post_ln"])
def test_every_block_layout_exports_with_parity(layout: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    spec = ModelSpec(
        encoder="sasrec", block=layout, positions="from_start", max_len=MAX_LEN, hidden=D, layers=2, heads=2
    )
    check_parity(SeqRecModel(spec, N), tmp_path, times=False)


def test_time_aware_hstu_exports_a_times_graph(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = SeqRecModel(ModelSpec(encoder="hstu", max_len=MAX_LEN, hidden=D, layers=2, heads=2), N)
    check_parity(model, tmp_path, times=True)
    assert (tmp_path / TIMES_GRAPH).is_file()


def test_text_item_table_exports(tmp_path: Path) -> None:
    torch.manual_seed(0)
    spec = ModelSpec(
        encoder="sasrec",
        items="id+text",
        text=TextSpec(template="{title}"),
        max_len=MAX_LEN,
        hidden=D,
        layers=1,
        heads=2,
    )
    model = SeqRecModel(spec, N, torch.randn(N + 1, 6))
    check_parity(model, tmp_path)
