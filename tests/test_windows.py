"""Training windows (train.windows): sliding windows train every target position of the training
history, exactly once per epoch with stride = max_len; per-user sampling bounds an epoch; valid/test
targets never train; loss normalisation, accumulation and exact mid-epoch resume hold; masked batches."""

from __future__ import annotations

import copy
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from seqrec_cli.core.losses import full_cross_entropy
from seqrec_cli.core.model import SeqRecModel
from seqrec_cli.core.objectives import make_train_batcher
from seqrec_cli.core.optim import make_optimizer
from seqrec_cli.core.runtime import Runtime, rng_state, set_rng_state
from seqrec_cli.core.train import (
    EarlyStopping,
    LoopConfig,
    LoopState,
    TrainHooks,
    TrainParts,
    steps_per_epoch,
    train_loop,
)
from seqrec_cli.data.batching import IGNORE, PAD, TrainBatcher, left_pad_windows
from seqrec_cli.data.masked_batching import MASK, MaskedItemBatcher
from seqrec_cli.data.process import Sequences
from seqrec_cli.data.windows import training_windows
from seqrec_cli.spec.models import ExperimentSpec, ModelSpec, TrainSpec

torch.set_num_threads(1)
CPU = Runtime(device=torch.device("cpu"), dtype=None)
MAX_LEN = 4
LENGTHS = [3, 4, 5, 6, 9, 10, 13, 17]  # shorter than, equal to and several windows longer than max_len


def unique_items(lengths=LENGTHS) -> Sequences:
    """Every position holds its own item (flat index + 1), so a label names the position it came from."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    total = int(offsets[-1])
    return Sequences(items=np.arange(1, total + 1, dtype=np.int32), offsets=offsets,
                     timestamps=np.arange(total, dtype=np.float64) * 10.0,
                     user_ids=[str(u) for u in range(len(lengths))],
                     item_ids=[""] + [str(i) for i in range(1, total + 1)])


def training_targets(seqs: Sequences) -> Counter:
    """Leave-one-out training targets: positions 1 .. n-3 of each history (s[:-2] minus its first item)."""
    return Counter(int(seqs.items[seqs.offsets[u] + p]) for u in range(seqs.num_users)
                   for p in range(1, seqs.lengths()[u] - 2))


def labelled(batcher, rng_seed: int = 0) -> Counter:
    out: Counter = Counter()
    for rows in batcher.plan(np.random.default_rng(rng_seed)):
        labels = batcher.make_batch(rows).labels
        out.update(labels[labels != IGNORE].tolist())
    return out


@pytest.mark.parametrize("bucket", [True, False])
def test_sliding_with_stride_max_len_trains_every_target_position_exactly_once(bucket):
    seqs = unique_items()
    batcher = TrainBatcher(
        seqs, MAX_LEN, batch_size=3, bucket_by_length=bucket, windows="sliding", stride=MAX_LEN
    )
    seen = labelled(batcher)
    assert seen == training_targets(seqs)  # every position once, and nothing else (no valid/test target)
    assert batcher.num_positions == sum(seen.values()) == sum(n - 3 for n in LENGTHS)
    assert len(batcher) == len(batcher.plan(np.random.default_rng(1)))


def test_each_label_sees_only_its_own_left_context_up_to_max_len():
    seqs = unique_items()
    batcher = TrainBatcher(seqs, MAX_LEN, batch_size=4, bucket_by_length=True, windows="sliding", stride=2)
    for rows in batcher.plan(np.random.default_rng(0)):
        batch = batcher.make_batch(rows)
        assert batch.inputs.shape[1] <= MAX_LEN
        for r, c in zip(*np.nonzero((batch.labels != IGNORE).numpy()), strict=True):
            target = int(batch.labels[r, c])
            context = [i for i in batch.inputs[r, : c + 1].tolist() if i != PAD]
            user = int(np.searchsorted(seqs.offsets, target - 1, side="right") - 1)
            start = int(seqs.offsets[user])
            # the items right before it, up to max_len of them, never another user's
            assert 1 <= len(context) <= MAX_LEN and context == list(range(target - len(context), target))
            assert context[0] >= start + 1


def test_overlapping_stride_trains_every_target_at_least_once_and_only_training_ones():
    seqs = unique_items()
    batcher = TrainBatcher(seqs, MAX_LEN, batch_size=5, bucket_by_length=True, windows="sliding", stride=1)
    seen, wanted = labelled(batcher), training_targets(seqs)
    assert set(seen) == set(wanted) and min(seen.values()) >= 1 and max(seen.values()) > 1


def test_last_windows_are_the_most_recent_max_len_items_as_before():
    seqs = unique_items()
    batcher = TrainBatcher(seqs, MAX_LEN, batch_size=3, bucket_by_length=True)  # windows: last
    old = left_pad_windows(seqs, 2, MAX_LEN + 1)  # [U, L+1]: the matrix the batcher used to build
    for rows in batcher.plan(np.random.default_rng(0)):
        batch = batcher.make_batch(rows)
        width = batch.inputs.shape[1] + 1
        block = old[batcher.users[rows], -width:]
        assert torch.equal(batch.inputs, torch.from_numpy(block[:, :-1]))
    assert batcher.users.tolist() == list(range(1, 8)) and len(batcher) == 3  # user 0 has no training pair


def test_sliding_times_align_with_their_inputs():
    seqs = unique_items()
    batcher = TrainBatcher(seqs, MAX_LEN, batch_size=8, bucket_by_length=False, with_times=True,
                           windows="sliding", stride=MAX_LEN)
    batch = batcher.make_batch(np.arange(len(batcher.users)))
    real = batch.inputs != PAD
    torch.testing.assert_close(batch.times[real], (batch.inputs[real] - 1).double() * 10.0)
    assert (batch.times[~real] == 0).all()


def test_temporal_train_lengths_bound_every_window():
    seqs = unique_items()
    train_len = np.array([2, 3, 1, 6, 4, 10, 0, 12])  # e.g. a temporal split's cut per user
    batcher = TrainBatcher(seqs, MAX_LEN, batch_size=4, bucket_by_length=True, train_lengths=train_len,
                           windows="sliding", stride=3)
    allowed = {
        int(seqs.items[seqs.offsets[u] + p]) for u in range(seqs.num_users) for p in range(1, train_len[u])
    }
    assert set(labelled(batcher)) == allowed
    for rows in batcher.plan(np.random.default_rng(0)):
        inputs = batcher.make_batch(rows).inputs
        for r, u in enumerate(batcher.users[rows]):
            assert all(i - 1 < seqs.offsets[u] + train_len[u] for i in inputs[r].tolist() if i != PAD)


def test_per_user_sampling_caps_windows_and_redraws_each_epoch():
    seqs = unique_items()
    batcher = TrainBatcher(
        seqs, MAX_LEN, batch_size=2, bucket_by_length=True, windows="sliding", stride=MAX_LEN, per_user=2
    )
    full = TrainBatcher(seqs, MAX_LEN, batch_size=2, bucket_by_length=True, windows="sliding", stride=MAX_LEN)
    assert max(Counter(full.users.tolist()).values()) > 2  # some users have more windows than the cap
    samples = []
    for epoch in range(40):
        plan = batcher.plan(np.random.default_rng([3, epoch]))
        rows = np.concatenate(plan)
        assert len(plan) == len(batcher) and len(rows) == len(set(rows.tolist()))
        assert max(Counter(batcher.users[rows].tolist()).values()) <= 2
        assert set(batcher.users[rows].tolist()) == set(full.users.tolist())  # every user still trains
        samples.append(np.sort(rows))
        assert [a.tolist() for a in plan] == [
            a.tolist() for a in batcher.plan(np.random.default_rng([3, epoch]))
        ]
    assert len({tuple(s.tolist()) for s in samples}) > 1  # a new draw per epoch
    mean = np.mean([batcher.positions(s) for s in samples])
    assert batcher.num_positions == pytest.approx(mean, rel=0.1)  # loss_norm epoch uses the expectation
    assert batcher.num_positions < full.num_positions


def test_window_table_counts():
    table = training_windows(
        np.array([0, 10]), np.array([10]), width=5, min_items=2, mode="sliding", stride=4
    )
    assert table.ends.tolist() == [10, 6, 2] and table.counts.tolist() == [5, 5, 2]
    with pytest.raises(ValueError, match="stride"):
        training_windows(np.array([0, 10]), np.array([10]), width=5, min_items=2, mode="sliding", stride=5)


# --- masked batches (BERT4Rec) -------------------------------------------------------------------


def test_masked_sliding_windows_tile_every_training_item_exactly_once():
    seqs = unique_items()
    batcher = MaskedItemBatcher(seqs, MAX_LEN, batch_size=3, bucket_by_length=True, mask_prob=0.5,
                                last_item_mask_prob=0.0, windows="sliding")
    items: Counter = Counter()
    for rows in batcher.plan(np.random.default_rng(0)):
        torch.manual_seed(0)
        batch = batcher.make_batch(rows)
        assert batch.inputs.shape[1] <= MAX_LEN
        visible = torch.where(batch.inputs == MASK, batch.labels, batch.inputs)  # un-mask
        items.update(visible[visible != PAD].tolist())
        assert ((batch.labels != IGNORE) == (batch.inputs == MASK)).all()
    wanted = Counter(int(seqs.items[seqs.offsets[u] + p]) for u in range(seqs.num_users)
                     for p in range(seqs.lengths()[u] - 2))
    assert items == wanted


def test_make_train_batcher_passes_the_window_settings_for_both_objectives():
    seqs = unique_items()
    train = TrainSpec(windows="sliding", window_stride=2, windows_per_user=3)
    for encoder, kind in (("sasrec", TrainBatcher), ("bert4rec", MaskedItemBatcher)):
        batcher = make_train_batcher(ModelSpec(encoder=encoder, max_len=MAX_LEN), train, seqs)
        assert type(batcher) is kind and batcher.table.per_user == 3
        assert len(batcher.users) > seqs.num_users


def test_window_settings_are_validated():
    with pytest.raises(ValueError, match="train.window_stride applies to train.windows sliding"):
        TrainSpec(windows="last", window_stride=3)
    with pytest.raises(ValueError, match="train.windows_per_user applies"):
        TrainSpec(windows="last", windows_per_user=3)
    assert TrainSpec().windows == "sliding" and TrainSpec(window_stride=3).window_stride == 3  # the default
    with pytest.raises(ValueError, match="larger than model.max_len"):
        ExperimentSpec(name="x", data={"path": "x"}, model={"max_len": 4},
                       train={"windows": "sliding", "window_stride": 5})


# --- the loop: loss normalisation, accumulation, exact mid-epoch resume --------------------------


def tiny_model(objective: str, seed: int = 0) -> SeqRecModel:
    torch.manual_seed(seed)
    spec = ModelSpec(encoder=objective, hidden=8, heads=2, layers=1, max_len=MAX_LEN, dropout=0.3)
    return SeqRecModel(spec, num_items=int(unique_items().items.max()))


def make_batcher(encoder: str):
    seqs = unique_items()
    if encoder == "bert4rec":
        return MaskedItemBatcher(seqs, MAX_LEN, 3, True, mask_prob=0.4, last_item_mask_prob=0.2,
                                 windows="sliding", stride=3, per_user=2)
    return TrainBatcher(seqs, MAX_LEN, 3, True, windows="sliding", stride=3, per_user=2)


def run(encoder: str, epochs: int, *, state=None, snapshots=None, model=None, opt=None):
    batcher = make_batcher(encoder)
    model = model or tiny_model(encoder)
    opt = opt or make_optimizer(model, lr=1e-2, weight_decay=0.01)

    def save_state(loop: LoopState) -> None:
        if snapshots is not None:
            snapshots.append(copy.deepcopy({"loop": loop.state(), "model": model.state_dict(),
                                            "opt": opt.state_dict(), "rng": rng_state()}))

    hooks = TrainHooks(validate=lambda epoch: 0.0, save_state=save_state)
    config = LoopConfig(epochs=epochs, eval_every=1, grad_clip=1.0, seed=7, grad_accum=2, checkpoint_every=1,
                        loss_norm="epoch")
    parts = TrainParts(model, batcher, opt, full_cross_entropy, CPU)
    train_loop(parts, config, EarlyStopping(patience=50), hooks, state)
    return model


@pytest.mark.parametrize("encoder", ["sasrec", "bert4rec"])
def test_resume_mid_epoch_with_sampled_sliding_windows_is_exact(encoder):
    snapshots: list[dict] = []
    whole = run(encoder, 3, snapshots=snapshots)
    middle = next(s for s in snapshots if s["loop"]["epoch"] == 2 and s["loop"]["batches_done"] == 2)
    model = tiny_model(encoder, seed=99)
    model.load_state_dict(middle["model"])
    opt = make_optimizer(model, lr=1e-2, weight_decay=0.01)
    opt.load_state_dict(middle["opt"])
    set_rng_state(middle["rng"])
    torch.manual_seed(12345)  # the window sample, the masks and dropout must not depend on the global stream
    run(encoder, 3, state=LoopState(**middle["loop"]), model=model, opt=opt)
    for (name, p), q in zip(whole.state_dict().items(), model.state_dict().values(), strict=True):
        assert torch.equal(p, q), name


def test_epoch_loss_norm_uses_the_sampled_epochs_expected_positions(monkeypatch):
    import seqrec_cli.core.train as train_module

    seen = []
    real_step = train_module.optimizer_step
    monkeypatch.setattr(
        train_module, "optimizer_step", lambda *args: seen.append(args[-1]) or real_step(*args)
    )
    batcher = make_batcher("sasrec")
    model = tiny_model("sasrec")
    parts = TrainParts(model, batcher, torch.optim.SGD(model.parameters(), lr=0.1), full_cross_entropy, CPU)
    train_loop(parts, LoopConfig(epochs=1, eval_every=1, seed=0, grad_accum=2, loss_norm="epoch"),
               EarlyStopping(patience=5), TrainHooks(validate=lambda epoch: 0.0))
    steps = steps_per_epoch(len(batcher), 2, 1)
    assert len(seen) == steps and seen == [pytest.approx(batcher.num_positions / steps)] * steps


def test_bad_window_settings_exit_2_naming_the_keys():
    from typer.testing import CliRunner

    from seqrec_cli.cli.app import app

    spec = str(Path(__file__).resolve().parents[1] / "experiments/ml100k/sasrec.yaml")
    cases = [(["train.windows=sliding", "train.window_stride=500"], "train.window_stride 500 is larger than"),
             (["train.windows=last", "train.windows_per_user=2"],
              "train.windows_per_user applies to train.windows sliding"),
             (["train.windows=slide"], "train.windows")]
    for sets, message in cases:
        args = ["finetune", spec, "--dry-run"] + [a for s in sets for a in ("--set", s)]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2 and message in " ".join(result.output.split()), result.output
    ok = CliRunner().invoke(app, ["finetune", spec, "--dry-run", "--set", "train.windows=sliding"])
    assert ok.exit_code == 0, ok.output
