"""Early stopping, a tiny end-to-end training run, repeatability and checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqrec_cli.core.checkpoint import load_checkpoint, save_checkpoint, trust_checkpoint
from seqrec_cli.core.evaluation import RankOptions, evaluate_split
from seqrec_cli.core.losses import full_cross_entropy
from seqrec_cli.core.model import SeqRecModel
from seqrec_cli.core.runtime import Runtime, seed_everything
from seqrec_cli.core.train import EarlyStopping, LoopConfig, LoopState, TrainHooks, TrainParts, train_loop
from seqrec_cli.data.batching import TrainBatcher
from seqrec_cli.data.process import Sequences
from seqrec_cli.errors import UserError
from seqrec_cli.spec.models import ModelSpec

torch.set_num_threads(1)

CPU = Runtime(device=torch.device("cpu"), dtype=None)
N_ITEMS = 11
MAX_LEN = 6


def cycle_sequences(num_users: int = 66) -> Sequences:
    """User u starts at item (u % N) + 1 and always moves to the next item, wrapping N -> 1."""
    seqs = []
    for u in range(num_users):
        start, length = u % N_ITEMS, 6 + u % 4
        seqs.append([(start + t) % N_ITEMS + 1 for t in range(length)])
    items = np.array([i for s in seqs for i in s], dtype=np.int32)
    offsets = np.zeros(num_users + 1, dtype=np.int64)
    np.cumsum([len(s) for s in seqs], out=offsets[1:])
    return Sequences(
        items=items,
        offsets=offsets,
        timestamps=None,
        user_ids=[str(u) for u in range(num_users)],
        item_ids=[""] + [str(i) for i in range(1, N_ITEMS + 1)],
    )


def test_early_stopping_patience_and_best_epoch():
    stop = EarlyStopping(patience=2)
    assert stop.update(0.1, 1) is True
    assert stop.update(0.3, 2) is True
    assert stop.update(0.2, 3) is False
    assert not stop.should_stop
    assert stop.update(0.3, 4) is False  # a tie is not an improvement
    assert stop.should_stop
    assert (stop.best, stop.best_epoch, stop.bad) == (0.3, 2, 2)
    assert stop.state() == {"patience": 2, "best": 0.3, "best_epoch": 2, "bad": 2}


def test_early_stopping_resets_on_improvement():
    stop = EarlyStopping(patience=2)
    for epoch, value in enumerate([0.5, 0.4, 0.6, 0.1], start=1):
        stop.update(value, epoch)
    assert not stop.should_stop and stop.bad == 1 and stop.best_epoch == 3
    stop.update(0.59, 5)
    assert stop.should_stop


def run_training(seed: int, epochs: int, seqs: Sequences | None = None):
    seqs = seqs or cycle_sequences()
    seed_everything(seed)
    model = SeqRecModel(
        ModelSpec(hidden=16, heads=2, layers=1, max_len=MAX_LEN, dropout=0.0), num_items=N_ITEMS
    )
    batcher = TrainBatcher(seqs, MAX_LEN, batch_size=8, bucket_by_length=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses, step_losses, validated, saved = [], [], [], []

    def validate(epoch: int) -> float:
        metrics, _ = evaluate_split(
            model, seqs, "valid", RankOptions(MAX_LEN, 32, filter_seen=False), ks=[1, 5], runtime=CPU
        )
        validated.append(metrics)
        return metrics["HR@1"]

    hooks = TrainHooks(
        validate=validate,
        on_step=lambda step, total, loss: step_losses.append(loss),
        on_epoch=lambda stats, val: losses.append(stats.loss),
        save_state=lambda state: saved.append(state.epoch - 1),
    )
    stopper = EarlyStopping(patience=10)
    parts = TrainParts(model, batcher, optimizer, full_cross_entropy, CPU)
    reason = train_loop(
        parts, LoopConfig(epochs=epochs, eval_every=1, grad_clip=1.0, seed=seed), stopper, hooks
    )
    return model, reason, losses, step_losses, validated, saved, stopper


def test_train_loop_learns_a_cycle():
    seqs = cycle_sequences()
    _, reason, losses, step_losses, validated, saved, stopper = run_training(seed=3, epochs=3, seqs=seqs)
    assert reason == "epochs"
    assert saved == [1, 2, 3] and len(losses) == 3 and len(validated) == 3
    assert len(step_losses) == 3 * (-(-66 // 8))
    assert losses[-1] < losses[0] < np.log(N_ITEMS) + 0.5
    chance = 1 / N_ITEMS
    assert validated[-1]["HR@1"] > 0.8 > 5 * chance  # a deterministic successor is easy to learn
    assert validated[-1]["HR@5"] >= validated[-1]["HR@1"]
    assert stopper.best == max(v["HR@1"] for v in validated)


def test_same_seed_identical_losses():
    a = run_training(seed=5, epochs=2)
    b = run_training(seed=5, epochs=2)
    assert a[3] == b[3]  # every step's loss, bit for bit
    assert a[2] == b[2]
    for (name, p), q in zip(a[0].state_dict().items(), b[0].state_dict().values(), strict=True):
        assert torch.equal(p, q), name
    c = run_training(seed=6, epochs=1)
    assert c[3] != a[3][: len(c[3])]  # the seed matters


def test_train_loop_early_stop_and_eval_every():
    seqs = cycle_sequences(12)
    seed_everything(0)
    model = SeqRecModel(
        ModelSpec(hidden=8, heads=2, layers=1, max_len=MAX_LEN, dropout=0.0), num_items=N_ITEMS
    )
    batcher = TrainBatcher(seqs, MAX_LEN, batch_size=16, bucket_by_length=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    calls, epochs_seen = [], []
    hooks = TrainHooks(validate=lambda epoch: calls.append(epoch) or 0.5,
                       on_epoch=lambda stats, val: epochs_seen.append((stats.epoch, val)))
    stopper = EarlyStopping(patience=2)
    parts = TrainParts(model, batcher, optimizer, full_cross_entropy, CPU)
    reason = train_loop(parts, LoopConfig(epochs=20, eval_every=2, seed=0), stopper, hooks)
    assert reason == "early_stop"
    assert calls == [2, 4, 6]  # improves once (from -inf), then two validations without improvement
    assert stopper.best_epoch == 2
    assert [e for e, _ in epochs_seen] == [1, 2, 3, 4, 5, 6]
    assert epochs_seen[0][1] is None and epochs_seen[1][1] == {"value": 0.5, "improved": True}


def test_train_loop_validates_on_last_epoch_and_honours_deadline():
    seqs = cycle_sequences(12)
    model = SeqRecModel(
        ModelSpec(hidden=8, heads=2, layers=1, max_len=MAX_LEN, dropout=0.0), num_items=N_ITEMS
    )
    batcher = TrainBatcher(seqs, MAX_LEN, batch_size=16, bucket_by_length=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    calls = []
    hooks = TrainHooks(validate=lambda epoch: calls.append(epoch) or float(epoch))
    parts = TrainParts(model, batcher, optimizer, full_cross_entropy, CPU)
    reason = train_loop(parts, LoopConfig(epochs=3, eval_every=5, seed=0), EarlyStopping(patience=5), hooks,
                        LoopState(epoch=2))
    assert reason == "epochs" and calls == [3]  # not a multiple of eval_every, but the last epoch
    reason = train_loop(
        parts, LoopConfig(epochs=10, eval_every=1, seed=0, deadline=0.0), EarlyStopping(patience=5), hooks
    )
    assert reason == "time_budget" and calls == [3, 1]


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    model = SeqRecModel(ModelSpec(hidden=8, heads=2, layers=2, max_len=5, dropout=0.0), num_items=N_ITEMS)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss = model.score_all(torch.tensor([[1, 2, 3]]))[:, 1:].logsumexp(-1).sum()
    loss.backward()
    optimizer.step()
    stopper = EarlyStopping(patience=3, best=0.25, best_epoch=4, bad=1)
    payload = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": 7,
               "stopper": stopper.state(), "rng": torch.get_rng_state(), "name": "toy"}
    path = tmp_path / "run" / "last.pt"
    save_checkpoint(path, payload)
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.pt", "last.pt.sha256"]  # no temp file left
    loaded = load_checkpoint(path)
    assert loaded["epoch"] == 7 and loaded["name"] == "toy" and loaded["stopper"] == stopper.state()
    assert torch.equal(loaded["rng"], payload["rng"])
    for key, value in payload["model"].items():
        assert torch.equal(loaded["model"][key], value), key
    fresh = SeqRecModel(ModelSpec(hidden=8, heads=2, layers=2, max_len=5, dropout=0.0), num_items=N_ITEMS)
    fresh.load_state_dict(loaded["model"])
    fresh_opt = torch.optim.Adam(fresh.parameters(), lr=1e-3)
    fresh_opt.load_state_dict(loaded["optimizer"])
    x = torch.tensor([[4, 5, 6]])
    with torch.no_grad():
        torch.testing.assert_close(fresh.eval().score_all(x), model.eval().score_all(x), atol=0, rtol=0)


def test_truncated_checkpoint_is_user_error(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"w": torch.randn(64, 64), "epoch": 1})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="truncated or corrupted"):  # the sidecar's sha256 catches it first
        load_checkpoint(path)
    (tmp_path / "last.pt.sha256").unlink()  # without a sidecar nothing vouches for the bytes: refused
    with pytest.raises(UserError, match="no digest file") as err:
        load_checkpoint(path)
    assert "seqrec trust" in str(err.value)
    with pytest.raises(UserError, match="cannot be read"):  # vouching checks that torch can read it first
        trust_checkpoint(path)
    assert not (tmp_path / "last.pt.sha256").exists()
    path.write_bytes(b"")
    with pytest.raises(UserError, match="cannot be read"):
        trust_checkpoint(path)


def test_missing_or_foreign_checkpoint_is_user_error(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")
    path = tmp_path / "foreign.pt"
    torch.save({"stopper": EarlyStopping(patience=1)}, path)  # a pickled class: refused by weights_only
    with pytest.raises(UserError, match="no digest file"):
        load_checkpoint(path)
    with pytest.raises(UserError, match="cannot be read"):  # not even `seqrec trust` vouches for a pickle
        trust_checkpoint(path)
