"""Training engine pieces: gradient accumulation, weight-decay groups, max_steps and the schedule,
exact mid-epoch resume inside the loop, RNG capture, checkpoint crash safety, precision checks."""

from __future__ import annotations

import copy
import json
import random

import numpy as np
import pytest
import torch

import seqrec_cli.core.checkpoint as checkpoint
import seqrec_cli.core.runtime as runtime_mod
from seqrec_cli.core.checkpoint import load_checkpoint, save_checkpoint
from seqrec_cli.core.losses import full_cross_entropy, plain_full_cross_entropy
from seqrec_cli.core.model import SeqRecModel
from seqrec_cli.core.optim import make_optimizer, param_groups
from seqrec_cli.core.runtime import Runtime, resolve_runtime, rng_state, set_rng_state
from seqrec_cli.core.schedule import make_scheduler
from seqrec_cli.core.train import (
    EarlyStopping,
    LoopConfig,
    LoopState,
    StepLoss,
    TrainHooks,
    TrainParts,
    optimizer_step,
    steps_per_epoch,
    train_loop,
)
from seqrec_cli.data.batching import IGNORE, TrainBatcher
from seqrec_cli.data.process import Sequences
from seqrec_cli.errors import UserError
from seqrec_cli.spec.models import ModelSpec

torch.set_num_threads(1)
CPU = Runtime(device=torch.device("cpu"), dtype=None)
N_ITEMS, MAX_LEN = 11, 5


def sequences(num_users: int = 23) -> Sequences:
    rng = np.random.default_rng(1)
    seqs = [rng.integers(1, N_ITEMS + 1, size=4 + u % 5).tolist() for u in range(num_users)]
    offsets = np.zeros(num_users + 1, dtype=np.int64)
    np.cumsum([len(s) for s in seqs], out=offsets[1:])
    return Sequences(
        items=np.array([i for s in seqs for i in s], dtype=np.int32),
        offsets=offsets,
        timestamps=None,
        user_ids=[str(u) for u in range(num_users)],
        item_ids=[""] + [str(i) for i in range(1, 12)],
    )


def tiny_model(dropout: float = 0.0, seed: int = 0) -> SeqRecModel:
    torch.manual_seed(seed)
    return SeqRecModel(
        ModelSpec(hidden=8, heads=2, layers=2, max_len=MAX_LEN, dropout=dropout), num_items=N_ITEMS
    )


# --- gradient accumulation ---------------------------------------------------------------------


def test_accumulated_step_is_the_mean_gradient_over_all_positions_of_the_group():
    batcher = TrainBatcher(sequences(), MAX_LEN, batch_size=4, bucket_by_length=True)
    group = batcher.plan(np.random.default_rng(0))[:3]  # batches of different widths and position counts
    counts = [batcher.positions(rows) for rows in group]
    assert counts == [int((batcher.make_batch(r).labels != IGNORE).sum()) for r in group]
    assert len(set(counts)) > 1

    model = tiny_model()
    reference = copy.deepcopy(model)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    parts = TrainParts(model, batcher, opt, full_cross_entropy, CPU)
    loss, positions = optimizer_step(StepLoss(model, full_cross_entropy), parts,
                                     LoopConfig(epochs=1, grad_accum=3, seed=0), group, 0, epoch=1)
    # By hand: the cross-entropy summed over every labelled position of the three batches, / their number.
    total = sum(plain_full_cross_entropy(reference.encode(b.inputs), b.labels, reference.item_weights()) * n
                for b, n in zip(map(batcher.make_batch, group), counts, strict=True)) / sum(counts)
    total.backward()
    total = float(total.detach())
    assert positions == sum(counts)
    assert loss == pytest.approx(total, rel=1e-5)
    for (name, p), q in zip(model.named_parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p.detach(), q.detach() - q.grad, rtol=1e-5, atol=1e-6, msg=name)


def test_epoch_loss_norm_divides_each_step_sum_by_the_epochs_mean_positions_per_step():
    # train.loss_norm: epoch. A short bucket's step must weigh less than a long one's, in proportion
    # to its positions, as if the positions had been spread over random batches.
    batcher = TrainBatcher(sequences(), MAX_LEN, batch_size=4, bucket_by_length=True)
    plan = batcher.plan(np.random.default_rng(0))
    group = plan[:2]
    step_positions = batcher.num_positions / steps_per_epoch(
        len(plan), grad_accum=2, world_size=1
    )  # 66 / 3 steps
    counts = [batcher.positions(rows) for rows in group]
    assert sum(counts) != step_positions
    model = tiny_model()
    reference = copy.deepcopy(model)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    parts = TrainParts(model, batcher, opt, full_cross_entropy, CPU)
    loss, positions = optimizer_step(StepLoss(model, full_cross_entropy), parts,
                                     LoopConfig(epochs=1, grad_accum=2, seed=0), group, 0, epoch=1,
                                     step_positions=step_positions)
    summed = sum(plain_full_cross_entropy(reference.encode(b.inputs), b.labels, reference.item_weights()) * n
                 for b, n in zip(map(batcher.make_batch, group), counts, strict=True))
    (summed / step_positions).backward()
    assert positions == sum(counts)
    assert loss == pytest.approx(
        float(summed.detach()) / sum(counts), rel=1e-5
    )  # the logged loss stays a mean
    for (name, p), q in zip(model.named_parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p.detach(), q.detach() - q.grad, rtol=1e-5, atol=1e-6, msg=name)


def test_steps_per_epoch_counts_groups_of_accumulated_batches_over_processes():
    assert steps_per_epoch(9, 1, 1) == 9
    assert steps_per_epoch(9, 2, 1) == 5 == steps_per_epoch(9, 1, 2)
    assert steps_per_epoch(8, 2, 2) == 2


# --- weight decay ---------------------------------------------------------------------------


def test_weight_decay_skips_embeddings_norms_and_biases():
    model = tiny_model()
    decay, keep = param_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and keep["weight_decay"] == 0.0
    linear = {
        f"encoder.blocks.{i}.{name}.weight"
        for i in range(2)
        for name in ("attn.qkv", "attn.out", "ffn.0", "ffn.3")
    }
    assert set(decay["names"]) == linear
    assert {
        "item_emb.weight",
        "encoder.positions.weight",
        "encoder.norm.weight",
        "encoder.norm.bias",
        "encoder.blocks.0.norm1.weight",
        "encoder.blocks.1.attn.qkv.bias",
        "encoder.blocks.1.ffn.3.bias",
    } <= set(keep["names"])
    every = [n for n, _ in model.named_parameters()]
    assert sorted(decay["names"] + keep["names"]) == sorted(every)  # each parameter exactly once
    assert all(
        p is dict(model.named_parameters())[n]
        for g in (decay, keep)
        for n, p in zip(g["names"], g["params"], strict=True)
    )


def test_adamw_decays_only_the_decay_group():
    model = tiny_model()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = make_optimizer(model, lr=0.1, weight_decay=0.5)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # no gradient: any change is weight decay alone
    opt.step()
    decayed = set(param_groups(model, 0.5)[0]["names"])
    for name, p in model.named_parameters():
        expected = before[name] * (1 - 0.1 * 0.5) if name in decayed else before[name]
        torch.testing.assert_close(p.detach(), expected, rtol=1e-6, atol=0, msg=name)


@pytest.mark.parametrize("loss_norm", ["step", "epoch"])
def test_train_loop_passes_the_epochs_mean_positions_per_step_only_for_epoch_loss_norm(
    monkeypatch, loss_norm
):
    import seqrec_cli.core.train as train_module

    seen = []
    real_step = train_module.optimizer_step
    monkeypatch.setattr(train_module, "optimizer_step",
                        lambda *args: seen.append(args[-1]) or real_step(*args))
    batcher = TrainBatcher(sequences(), MAX_LEN, batch_size=4, bucket_by_length=True)
    model = tiny_model()
    parts = TrainParts(model, batcher, torch.optim.SGD(model.parameters(), lr=0.1), full_cross_entropy, CPU)
    train_loop(parts, LoopConfig(epochs=1, eval_every=1, seed=0, grad_accum=2, loss_norm=loss_norm),
               EarlyStopping(patience=5), TrainHooks(validate=lambda epoch: 0.0))
    assert len(seen) == 3  # 6 batches, 2 per step
    assert seen == ([None] * 3 if loss_norm == "step" else [66 / 3] * 3)


# --- max_steps, schedules and resume inside the loop -----------------------------------------


def run(epochs: int, *, max_steps=None, grad_accum=1, state=None, snapshots=None, checkpoint_every=None,
        model=None, opt=None, sched=None, validations=None, batch_size=4):
    seqs = sequences()
    batcher = TrainBatcher(seqs, MAX_LEN, batch_size=batch_size, bucket_by_length=True)
    model = model or tiny_model(dropout=0.3)
    opt = opt or make_optimizer(model, lr=1e-2, weight_decay=0.01)
    total = max_steps or epochs * steps_per_epoch(len(batcher), grad_accum, 1)
    sched = sched or make_scheduler(opt, total, 2, "linear")
    validations = [] if validations is None else validations

    def save_state(loop: LoopState) -> None:
        if snapshots is not None:
            snapshots.append(
                copy.deepcopy(
                    {
                        "loop": loop.state(),
                        "model": model.state_dict(),
                        "opt": opt.state_dict(),
                        "sched": sched.state_dict(),
                        "rng": rng_state(),
                    }
                )
            )

    hooks = TrainHooks(
        validate=lambda epoch: validations.append(epoch) or float(len(validations)), save_state=save_state
    )
    config = LoopConfig(epochs=epochs, eval_every=1, grad_clip=1.0, seed=7, grad_accum=grad_accum,
                        max_steps=max_steps, checkpoint_every=checkpoint_every)
    parts = TrainParts(model, batcher, opt, full_cross_entropy, CPU, scheduler=sched)
    reason = train_loop(parts, config, EarlyStopping(patience=50), hooks, state)
    return reason, model, opt, sched, len(batcher)


def test_schedule_spans_the_true_step_count_and_reaches_zero():
    reason, _, opt, sched, batches = run(2, grad_accum=2)
    assert reason == "epochs"
    assert sched.last_epoch == 2 * -(-batches // 2)  # optimizer steps, not batches
    assert opt.param_groups[0]["lr"] == 0.0  # the linear decay ends exactly at the last step


def test_max_steps_replaces_epochs_and_stops_mid_epoch():
    validations: list[int] = []
    reason, _, opt, sched, batches = run(1, max_steps=8, validations=validations)
    assert batches == 6 and reason == "max_steps"
    assert sched.last_epoch == 8 and opt.param_groups[0]["lr"] == 0.0
    assert validations == [1, 2]  # end of epoch 1, then where the steps ran out (inside epoch 2)


def test_resume_from_a_mid_epoch_state_is_exact():
    snapshots: list[dict] = []
    _, whole, *_ = run(3, grad_accum=2, snapshots=snapshots, checkpoint_every=1)
    middle = next(s for s in snapshots if s["loop"]["epoch"] == 2 and s["loop"]["batches_done"] == 2)
    model = tiny_model(dropout=0.3, seed=99)  # different init: everything must come from the snapshot
    model.load_state_dict(middle["model"])
    opt = make_optimizer(model, lr=1e-2, weight_decay=0.01)
    sched = make_scheduler(opt, 3 * 3, 2, "linear")  # built first, as finetune does: it sets the lr ...
    opt.load_state_dict(middle["opt"])  # ... which the optimizer's saved state then restores
    sched.load_state_dict(middle["sched"])
    set_rng_state(middle["rng"])
    torch.manual_seed(12345)  # disturb the global stream: dropout must not depend on it
    run(3, grad_accum=2, state=LoopState(**middle["loop"]), model=model, opt=opt, sched=sched)
    for (name, p), q in zip(whole.state_dict().items(), model.state_dict().values(), strict=True):
        assert torch.equal(p, q), name


def test_rng_state_round_trip_through_a_weights_only_checkpoint(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    np.random.normal()  # leaves a cached gaussian in numpy's state
    save_checkpoint(tmp_path / "rng.pt", {"rng": rng_state()})
    expected = (random.random(), np.random.normal(), np.random.rand(3).tolist(), torch.rand(3))
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    set_rng_state(load_checkpoint(tmp_path / "rng.pt")["rng"])
    again = (random.random(), np.random.normal(), np.random.rand(3).tolist(), torch.rand(3))
    assert expected[:3] == again[:3] and torch.equal(expected[3], again[3])


# --- checkpoint integrity ----------------------------------------------------------------------


def test_sidecar_records_digest_and_what_the_checkpoint_holds(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"w": torch.arange(5)}, about={"epoch": 3, "global_step": 40})
    record = json.loads((tmp_path / "last.pt.sha256").read_text())
    import hashlib

    assert record["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert record["bytes"] == path.stat().st_size and record["epoch"] == 3 and record["global_step"] == 40


def test_a_crash_between_sidecar_and_checkpoint_leaves_the_previous_checkpoint_loadable(
    tmp_path, monkeypatch
):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"step": 1})
    real = checkpoint.atomic_write

    def die(target, write):
        if target == path:
            raise KeyboardInterrupt  # killed after the sidecar rename, before the checkpoint's
        real(target, write)

    monkeypatch.setattr(checkpoint, "atomic_write", die)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"step": 2})
    monkeypatch.setattr(checkpoint, "atomic_write", real)
    assert load_checkpoint(path) == {"step": 1}
    save_checkpoint(path, {"step": 3})
    assert load_checkpoint(path) == {"step": 3}
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(UserError, match="truncated or corrupted"):
        load_checkpoint(path)


def test_unreadable_sidecar_is_a_user_error(tmp_path):
    path = tmp_path / "best.pt"
    save_checkpoint(path, {"x": 1})
    (tmp_path / "best.pt.sha256").write_text("{not json")
    with pytest.raises(UserError, match="digest file is unreadable"):
        load_checkpoint(path)


# --- precision and device --------------------------------------------------------------------


def test_fp16_on_cpu_is_refused():
    with pytest.raises(UserError, match="fp16 training needs CUDA") as err:
        resolve_runtime("cpu", "fp16")
    assert err.value.where == "runtime.precision"


def test_bf16_on_cpu_follows_native_support(monkeypatch):
    monkeypatch.setattr(runtime_mod, "cpu_bf16_supported", lambda: False)
    with pytest.raises(UserError, match="no native bf16"):
        resolve_runtime("cpu", "bf16")
    monkeypatch.setattr(runtime_mod, "cpu_bf16_supported", lambda: True)
    assert resolve_runtime("cpu", "bf16").dtype == torch.bfloat16
    assert resolve_runtime("cpu", "auto").dtype is None  # auto never picks bf16 on a CPU
    assert resolve_runtime("cpu", "fp32").describe() == {"device": "cpu", "precision": "fp32"}


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_cuda_without_cuda_is_refused():
    with pytest.raises(UserError, match="sees no CUDA device"):
        resolve_runtime("cuda", "auto")


def test_bf16_autocast_step_keeps_the_loss_in_fp32():
    """Autocast must not reach into the fused cross-entropy (its out= matmuls are fp32). CPU autocast
    runs bf16 everywhere, emulated where not native, so this guards the CUDA path too."""
    batcher = TrainBatcher(sequences(), MAX_LEN, batch_size=4, bucket_by_length=True)
    group = batcher.plan(np.random.default_rng(0))[:2]
    losses = []
    for dtype in (None, torch.bfloat16):
        model = tiny_model()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        parts = TrainParts(model, batcher, opt, full_cross_entropy, Runtime(torch.device("cpu"), dtype))
        loss, _ = optimizer_step(StepLoss(model, full_cross_entropy), parts,
                                 LoopConfig(epochs=1, grad_accum=2, grad_clip=1.0, seed=0), group, 0, epoch=1)
        assert all(torch.isfinite(p).all() for p in model.parameters())
        losses.append(loss)
    assert losses[1] == pytest.approx(losses[0], rel=2e-2)
