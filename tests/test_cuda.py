"""CUDA cases. They skip without a GPU (CI has none); benchmarks/gpu_check.sh runs them on a lent GPU."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from seqrec_cli.core.distributed import World
from seqrec_cli.core.losses import full_cross_entropy
from seqrec_cli.core.model import SeqRecModel
from seqrec_cli.core.optim import make_optimizer
from seqrec_cli.core.runtime import Runtime, resolve_runtime
from seqrec_cli.core.train import LoopConfig, StepLoss, TrainParts, optimizer_step, wrap_step
from seqrec_cli.data.batching import TrainBatcher
from seqrec_cli.data.process import Sequences
from seqrec_cli.spec.models import ModelSpec

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
N_ITEMS, MAX_LEN = 1001, 12


@pytest.fixture
def no_tf32():
    """Exact fp32 on the GPU for comparisons with the CPU (resolve_runtime turns TF32 on)."""
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def batcher() -> TrainBatcher:
    rng = np.random.default_rng(0)
    seqs = [rng.integers(1, N_ITEMS + 1, size=5 + u % 11).tolist() for u in range(37)]
    offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
    np.cumsum([len(s) for s in seqs], out=offsets[1:])
    data = Sequences(
        items=np.array([i for s in seqs for i in s], dtype=np.int32),
        offsets=offsets,
        timestamps=None,
        user_ids=[str(u) for u in range(len(seqs))],
        item_ids=[""] + [str(i) for i in range(1, N_ITEMS + 1)],
    )
    return TrainBatcher(data, MAX_LEN, batch_size=8, bucket_by_length=True)


def model() -> SeqRecModel:
    torch.manual_seed(0)
    return SeqRecModel(
        ModelSpec(hidden=32, heads=2, layers=2, max_len=MAX_LEN, dropout=0.0), num_items=N_ITEMS
    )


def test_auto_picks_cuda_with_bf16_and_tf32():
    runtime = resolve_runtime("auto", "auto")
    assert runtime.device.type == "cuda"
    assert runtime.dtype == (torch.bfloat16 if torch.cuda.is_bf16_supported() else None)
    assert torch.backends.cuda.matmul.allow_tf32


def test_fused_ce_on_cuda_equals_cpu(no_tf32):
    torch.manual_seed(1)
    hidden = torch.randn(3, 7, 16)  # [B, L, D]
    labels = torch.randint(1, N_ITEMS + 1, (3, 7))  # [B, L]
    labels[0, :3] = -100
    weights = torch.randn(N_ITEMS + 1, 16) * 0.3  # [N + 1, D]
    results = []
    for device in ("cpu", "cuda"):
        # clone: .to("cpu") returns the tensor itself, which must stay a plain leaf for the CUDA copy
        h = hidden.to(device).clone().requires_grad_()
        w = weights.to(device).clone().requires_grad_()
        loss = full_cross_entropy(h, labels.to(device), w)
        loss.backward()
        results.append((loss.detach().cpu(), h.grad.cpu(), w.grad.cpu()))
    for cpu, cuda in zip(*results, strict=True):
        torch.testing.assert_close(cuda, cpu, rtol=1e-5, atol=1e-6)


def test_bf16_autocast_step_trains_and_tracks_fp32():
    plan = batcher()
    rows = plan.plan(np.random.default_rng(0))[:1]
    losses = {}
    for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        runtime = Runtime(torch.device("cuda"), dtype)
        net = model().cuda()
        before = copy.deepcopy(net.state_dict())
        opt = make_optimizer(net, lr=1e-3, weight_decay=0.0)
        parts = TrainParts(net, plan, opt, full_cross_entropy, runtime)
        losses[name], _ = optimizer_step(
            StepLoss(net, full_cross_entropy), parts, LoopConfig(epochs=1, grad_clip=1.0), rows, 0, 1
        )
        assert all(torch.isfinite(p).all() for p in net.parameters())
        assert not torch.equal(
            before["encoder.blocks.0.ffn.0.weight"], net.state_dict()["encoder.blocks.0.ffn.0.weight"]
        )
    assert np.isfinite(losses["bf16"])
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=2e-2)  # bf16 encoder, fp32 softmax


def test_fp16_step_uses_loss_scaling():
    plan = batcher()
    rows = plan.plan(np.random.default_rng(0))[:1]
    runtime = resolve_runtime("cuda", "fp16")
    assert runtime.dtype == torch.float16
    net = model().cuda()
    opt = make_optimizer(net, lr=1e-3, weight_decay=0.0)
    scaler = torch.amp.GradScaler("cuda")
    parts = TrainParts(net, plan, opt, full_cross_entropy, runtime, scaler=scaler)
    loss, _ = optimizer_step(
        StepLoss(net, full_cross_entropy), parts, LoopConfig(epochs=1, grad_clip=1.0), rows, 0, 1
    )
    assert np.isfinite(loss) and scaler.get_scale() > 0


def test_compiled_step_matches_eager_on_cuda(no_tf32):
    plan = batcher()
    batch = plan.make_batch(plan.plan(np.random.default_rng(0))[0])
    net = model().cuda()
    runtime = Runtime(torch.device("cuda"), None)
    eager = StepLoss(net, full_cross_entropy)(batch.inputs.cuda(), batch.labels.cuda())
    compiled = wrap_step(net, full_cross_entropy, runtime, World(), compile=True)(
        batch.inputs.cuda(), batch.labels.cuda()
    )
    torch.testing.assert_close(compiled.detach(), eager.detach(), rtol=1e-4, atol=1e-5)
