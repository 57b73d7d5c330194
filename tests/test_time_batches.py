"""Timestamps travel with the items they belong to: training and evaluation batches carry them
aligned with the inputs, and a time-aware encoder (HSTU) uses them in training, evaluation and the
exported recommender alike."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqrec_cli.artifacts import Recommender
from seqrec_cli.core.evaluation import ModelScorer, RankOptions, rank_cases
from seqrec_cli.core.losses import full_cross_entropy
from seqrec_cli.core.model import SeqRecModel
from seqrec_cli.core.runtime import resolve_runtime
from seqrec_cli.core.train import StepLoss
from seqrec_cli.data.batching import PAD, TrainBatcher, case_batches
from seqrec_cli.data.process import Sequences
from seqrec_cli.data.splits import leave_one_out
from seqrec_cli.spec.models import ModelSpec

torch.set_num_threads(1)
N, L, D = 11, 5, 8
USERS = [[1, 2, 3, 4, 5, 6, 7], [3, 9, 2], [10, 4, 8, 1, 11, 6], [5, 7, 9, 2, 3, 4, 8, 10, 1]]


def stamp(user: int, item: int) -> float:
    return 1000.0 * user + 10.0 * item  # a unique, checkable time per (user, item)


def timed_seqs(with_times: bool = True) -> Sequences:
    items = np.array([i for s in USERS for i in s], dtype=np.int32)
    offsets = np.zeros(len(USERS) + 1, dtype=np.int64)
    np.cumsum([len(s) for s in USERS], out=offsets[1:])
    times = np.array([stamp(u, i) for u, s in enumerate(USERS) for i in s], dtype=np.float64)
    return Sequences(
        items=items,
        offsets=offsets,
        timestamps=times if with_times else None,
        user_ids=[str(u) for u in range(len(USERS))],
        item_ids=[""] + [str(i) for i in range(1, N + 1)],
    )


def expected_times(inputs: torch.Tensor, users: np.ndarray) -> torch.Tensor:
    want = torch.zeros(inputs.shape, dtype=torch.float64)
    for row, user in enumerate(users):
        for col, item in enumerate(inputs[row].tolist()):
            if item != PAD:
                want[row, col] = stamp(int(user), item)
    return want


def test_training_batches_carry_the_inputs_times():
    seqs = timed_seqs()
    batcher = TrainBatcher(seqs, L, 3, bucket_by_length=False, with_times=True)
    for rows in batcher.plan(np.random.default_rng(0)):
        batch = batcher.make_batch(rows)
        assert batch.times.shape == batch.inputs.shape
        torch.testing.assert_close(batch.times, expected_times(batch.inputs, batcher.users[rows]))
    assert TrainBatcher(seqs, L, 3, bucket_by_length=False).make_batch(np.arange(2)).times is None
    assert (
        TrainBatcher(timed_seqs(False), L, 3, False, with_times=True).make_batch(np.arange(2)).times is None
    )


@pytest.mark.parametrize("split", ["valid", "test"])
def test_evaluation_batches_carry_the_inputs_times(split):
    seqs = timed_seqs()
    for batch in case_batches(seqs, leave_one_out(seqs).cases[split], L, 3, trim=True):
        torch.testing.assert_close(batch.times, expected_times(batch.inputs, batch.users))
    assert all(
        b.times is None for b in case_batches(timed_seqs(False), leave_one_out(seqs).cases[split], L, 3)
    )


def hstu_model() -> SeqRecModel:
    torch.manual_seed(0)
    model = SeqRecModel(ModelSpec(encoder="hstu", hidden=D, heads=2, layers=1, max_len=L, dropout=0.0), N)
    with torch.no_grad():
        model.encoder.rel_time.weight.normal_()  # away from init so the time bias matters
    return model.eval()


def test_hstu_ranks_with_times_in_evaluation():
    seqs, model = timed_seqs(), hstu_model()
    runtime = resolve_runtime("cpu", "fp32")
    cases = leave_one_out(seqs).cases["test"]
    ranked = rank_cases(
        ModelScorer(model, runtime), seqs, cases, RankOptions(L, 3, False, chunk_items=4), runtime.device
    )
    # the same ranks from whole-catalogue scores computed with the batch's times
    want = []
    for batch in case_batches(seqs, cases, L, 3, trim=True):
        scores = model.score_all(batch.inputs, batch.times)  # [B, N + 1]
        target = scores[torch.arange(len(batch.users)), batch.targets]  # [B]
        others = scores.clone()
        others[torch.arange(len(batch.users)), batch.targets] = float("-inf")
        want += ((others >= target.unsqueeze(1)).sum(dim=1) + 1).tolist()
    assert ranked.ranks.tolist() == want
    batch = next(case_batches(seqs, cases, L, 3, trim=True))
    scorer = ModelScorer(model, runtime)
    assert not torch.allclose(scorer.begin(batch.inputs, batch.users, batch.times).hidden,
                              scorer.begin(batch.inputs, batch.users).hidden)  # the times change the state


def test_hstu_trains_its_time_bias_only_with_times():
    seqs, model = timed_seqs(), hstu_model().train()
    step = StepLoss(model, full_cross_entropy)
    batcher = TrainBatcher(seqs, L, 4, bucket_by_length=False, with_times=True)
    batch = batcher.make_batch(np.arange(len(batcher.users)))
    step(batch.inputs, batch.labels, batch.times).backward()
    assert model.encoder.rel_time.weight.grad.abs().sum() > 0
    model.zero_grad(set_to_none=True)
    step(batch.inputs, batch.labels).backward()
    assert model.encoder.rel_time.weight.grad is None


def test_recommender_takes_times():
    model = hstu_model()
    rec = Recommender(model, [""] + [str(i) for i in range(1, N + 1)], L, manifest={})
    history, times = ["3", "99", "5", "7"], [100.0, 150.0, 2e4, 3e6]  # "99" is unknown: dropped with its time
    top = rec.recommend(history, k=N, exclude_history=False, times=times)
    inputs = torch.tensor([[PAD, PAD, 3, 5, 7]])
    stamps = torch.tensor([[0.0, 0.0, 100.0, 2e4, 3e6]], dtype=torch.float64)
    order = torch.argsort(model.score_all(inputs, stamps)[0, 1:], descending=True) + 1
    assert [item for item, _ in top] == [str(i) for i in order.tolist()]
    assert not torch.allclose(rec.scores([history], times=[times]), rec.scores([history]))
    with pytest.raises(ValueError, match="one timestamp per history item"):
        rec.recommend(history, times=times[:2])


def test_hstu_with_timestamps_through_finetune_evaluate_export(tmp_path):
    from tests.test_eval_cli import ok, write_log, write_spec

    from seqrec_cli.pipelines.common import load_dataset, load_trained
    from seqrec_cli.spec.loader import load_spec

    log = write_log(tmp_path / "log.csv")  # user_id,item_id,timestamp
    spec_path = write_spec(tmp_path, "timed", log)
    sets = ["--set", "model.encoder=hstu", "--set", "model.heads=2", "--set", "train.epochs=2"]
    ok("finetune", spec_path, *sets)
    ok("evaluate", spec_path, *sets)
    ok("export", spec_path, *sets)
    spec = load_spec(spec_path, [s for s in sets if s != "--set"])
    seqs, manifest, _ = load_dataset(spec)
    built, _, _ = load_trained(spec, seqs, manifest, resolve_runtime("cpu", "fp32"))
    assert seqs.timestamps is not None and built.model.uses_times
    user = 4
    lo, hi = seqs.offsets[user], seqs.offsets[user + 1]
    history = [seqs.item_ids[i] for i in seqs.items[lo:hi]]
    times = seqs.timestamps[lo:hi].tolist()
    rec = Recommender.load(tmp_path / "out" / "exports" / "timed")
    inputs, stamps = rec.encode_histories([history], [times])
    torch.testing.assert_close(rec.scores([history], exclude_history=False, times=[times]),
                               built.model.eval().score_all(inputs, stamps))
