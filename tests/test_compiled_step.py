"""torch.compile'd training step (runtime.compile): compiled once, whatever the number of labelled
positions in a batch. Dynamo's graph capture runs here with its eager backend (no C++ toolchain
needed); the CUDA cases in test_cuda.py check the compiled numbers against eager."""

from __future__ import annotations

import functools

import pytest
import torch
import torch._dynamo
from torch._dynamo.utils import counters

from seqrec_cli.core.distributed import World
from seqrec_cli.core.losses import full_cross_entropy
from seqrec_cli.core.model import SeqRecModel
from seqrec_cli.core.runtime import resolve_runtime
from seqrec_cli.core.train import wrap_step
from seqrec_cli.spec.models import ModelSpec

N_ITEMS = 300


@pytest.fixture
def eager_backend(monkeypatch):
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    torch._dynamo.reset()
    counters.clear()
    yield
    torch._dynamo.reset()


def test_varying_labelled_counts_compile_one_graph(eager_backend):
    torch.manual_seed(0)
    model = SeqRecModel(ModelSpec(hidden=16, heads=1, layers=1, max_len=20, dropout=0.0), num_items=N_ITEMS)
    step = wrap_step(model, full_cross_entropy, resolve_runtime("cpu", "fp32"), World(), compile=True)
    counts = set()
    for width, unlabelled in [(17, 3), (12, 8), (9, 2), (14, 1)]:
        inputs = torch.randint(1, N_ITEMS + 1, (8, width))  # [B, W]
        labels = torch.randint(1, N_ITEMS + 1, (8, width))  # [B, W]
        labels[:, :unlabelled] = -100
        counts.add(int((labels >= 0).sum()))
        loss = step(inputs, labels)
        torch.testing.assert_close(
            loss, full_cross_entropy(model.encode(inputs), labels, model.item_weights())
        )
        loss.backward()
    assert len(counts) == 4  # four different numbers of labelled positions
    assert counters["stats"]["unique_graphs"] == 1  # one graph for the model; the loss is never traced
