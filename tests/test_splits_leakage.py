"""Split plans: leave-one-out and a global temporal split, and the leakage check that guards both."""

from __future__ import annotations

import numpy as np
import pytest

from seqrec_cli.data.batching import TrainBatcher, case_batches
from seqrec_cli.data.process import Sequences
from seqrec_cli.data.splits import EvalCases, check_no_leakage, leave_one_out, make_plan, temporal
from seqrec_cli.errors import DataError
from seqrec_cli.spec.models import TemporalSplitSpec

# (item, time) per user, time-sorted. Cuts below: valid at t=10, test at t=20.
EVENTS = [
    [(1, 1), (2, 3), (3, 11), (4, 12), (5, 21)],  # train 1,2 | valid 3,4 | test 5
    [
        (6, 2),
        (7, 9),
        (8, 20),
        (9, 25),
    ],  # train 6,7 | valid none | test 8,9 (an event exactly at the cut is after it)
    [(2, 15), (3, 16), (1, 30)],  # nothing before the valid cut | test input 2,3 -> 1
    [(4, 5), (5, 6), (6, 7)],  # only training events
    [(7, 22), (8, 23), (9, 24)],  # new user after the test cut: never evaluated
]


def make_seqs(events=EVENTS, with_time=True) -> Sequences:
    items = np.array([i for user in events for i, _ in user], dtype=np.int32)
    times = np.array([t for user in events for _, t in user], dtype=np.float64)
    offsets = np.zeros(len(events) + 1, dtype=np.int64)
    np.cumsum([len(u) for u in events], out=offsets[1:])
    return Sequences(
        items=items,
        offsets=offsets,
        timestamps=times if with_time else None,
        user_ids=[f"u{u}" for u in range(len(events))],
        item_ids=[""] + [str(i) for i in range(1, 10)],
    )


def cases_of(seqs, plan, split):
    out = {}
    for batch in case_batches(seqs, plan.cases[split], max_len=10, batch_size=2):
        for row, u in enumerate(batch.users.tolist()):
            inputs = [i for i in batch.inputs[row].tolist() if i]
            targets = batch.target_items[batch.target_rows == row].tolist()
            out[u] = (inputs, targets)
    return out


SPEC = TemporalSplitSpec(valid_time=10, test_time=20, targets="all")


def test_temporal_split_on_a_constructed_example_has_no_future_leakage():
    seqs = make_seqs()
    plan = temporal(seqs, SPEC)
    assert plan.cuts == {"valid": 10.0, "test": 20.0}
    assert plan.train_len.tolist() == [2, 2, 0, 3, 0]
    assert cases_of(seqs, plan, "valid") == {0: ([1, 2], [3, 4])}
    assert cases_of(seqs, plan, "test") == {0: ([1, 2, 3, 4], [5]), 1: ([6, 7], [8, 9]), 2: ([2, 3], [1])}
    # every input event is strictly before its split's cut; every target at or after it
    times = {(u, i): t for u, user in enumerate(EVENTS) for i, t in user}
    for split in ("valid", "test"):
        cut = plan.cuts[split]
        for u, (inputs, targets) in cases_of(seqs, plan, split).items():
            assert all(times[(u, i)] < cut for i in inputs)
            assert all(times[(u, i)] >= cut for i in targets)
    # training rows only hold events before the valid cut, as inputs and as labels
    batcher = TrainBatcher(seqs, 4, batch_size=8, bucket_by_length=False, train_lengths=plan.train_len)
    for batch in batcher.epoch(np.random.default_rng(0)):
        used = set(batch.inputs[batch.inputs > 0].tolist()) | set(batch.labels[batch.labels > 0].tolist())
        assert used <= {1, 2, 6, 7, 4, 5}
        assert 3 not in used and 8 not in used  # valid/test items of the same users
    check_no_leakage(seqs, plan)


def test_temporal_next_keeps_only_the_first_item_after_the_cut():
    seqs = make_seqs()
    plan = temporal(seqs, SPEC.model_copy(update={"targets": "next"}))
    assert cases_of(seqs, plan, "test") == {0: ([1, 2, 3, 4], [5]), 1: ([6, 7], [8]), 2: ([2, 3], [1])}


def test_temporal_cuts_from_quantiles():
    seqs = make_seqs()
    plan = temporal(seqs, TemporalSplitSpec(valid_quantile=0.5, test_quantile=0.75))
    assert plan.cuts["valid"] == pytest.approx(np.quantile(seqs.timestamps, 0.5))
    assert plan.cuts["test"] == pytest.approx(np.quantile(seqs.timestamps, 0.75))


def test_temporal_without_timestamps_or_with_crossed_cuts_is_a_data_error():
    with pytest.raises(DataError, match="needs timestamps"):
        make_plan(make_seqs(with_time=False), "temporal", SPEC)
    with pytest.raises(DataError, match="must come before"):
        temporal(make_seqs(), TemporalSplitSpec(valid_time=20, test_time=10))


def test_leakage_check_catches_training_on_targets():
    seqs = make_seqs()
    plan = leave_one_out(seqs)
    check_no_leakage(seqs, plan)
    plan.train_len[1] += 1  # user 1 would train on its validation target
    with pytest.raises(DataError, match="training reads held-out targets for 1 user.*'u1'"):
        check_no_leakage(seqs, plan)


def test_leakage_check_catches_an_input_that_reaches_the_target():
    seqs = make_seqs()
    plan = leave_one_out(seqs)
    plan.cases["test"].input_end[0] += 1  # the test input would contain the test target
    with pytest.raises(DataError, match="input reaches the target"):
        check_no_leakage(seqs, plan)


def test_leakage_check_catches_future_events_across_users_in_a_temporal_split():
    seqs = make_seqs()
    plan = temporal(seqs, SPEC)
    plan.train_len[4] = (
        1  # user 4 (never evaluated) would train on t=22: after user 0's targets at t=11 and 21
    )
    with pytest.raises(DataError, match="not after the latest training event") as caught:
        check_no_leakage(seqs, plan)
    assert "training reads held-out targets" not in str(caught.value)  # only the cross-user check sees it


def reference_case_batch(seqs: Sequences, cases, idx: np.ndarray, width: int) -> dict[str, list]:
    """The batch a case list makes, case by case in plain Python (what case_batches vectorises)."""
    out = {"inputs": [], "times": [], "seen": [], "targets": []}
    for row, c in enumerate(idx):
        base = int(seqs.offsets[cases.users[c]])
        history = seqs.items[base: base + cases.input_end[c]].tolist()
        stamps = seqs.timestamps[base: base + cases.input_end[c]].tolist()
        window = history[-width:] if width else []
        out["inputs"].append([0] * (width - len(window)) + window)
        out["times"].append([0.0] * (width - len(window)) + (stamps[-width:] if window else []))
        out["seen"] += [(row, i) for i in history]
        distinct = list(
            dict.fromkeys(seqs.items[base + cases.target_start[c] : base + cases.target_end[c]].tolist())
        )
        out["targets"] += [(row, i) for i in distinct]
    return out


@pytest.mark.parametrize("multi_target", [False, True])
def test_case_batches_match_a_case_by_case_reference(multi_target):
    rng = np.random.default_rng(3)
    lengths = rng.integers(2, 14, size=23)
    events = [[(int(i), float(t)) for t, i in enumerate(rng.integers(1, 10, size=n))] for n in lengths]
    seqs = make_seqs(events)
    input_end = np.array([rng.integers(0, n - 1) for n in lengths])  # 0: a case with no history at all
    span = np.array(
        [rng.integers(1, n - e) if multi_target else 1 for n, e in zip(lengths, input_end, strict=True)]
    )
    cases = EvalCases(np.arange(len(lengths)), input_end, input_end, input_end + span)
    for batch in case_batches(seqs, cases, max_len=6, batch_size=5, trim=True):
        width = batch.inputs.shape[1]
        assert width == max(1, min(6, int(input_end[batch.cases].max())))
        want = reference_case_batch(seqs, cases, batch.cases, width)
        assert batch.inputs.tolist() == want["inputs"]
        assert batch.times.tolist() == want["times"]
        assert list(zip(batch.seen_rows.tolist(), batch.seen_items.tolist(), strict=True)) == want["seen"]
        assert (
            list(zip(batch.target_rows.tolist(), batch.target_items.tolist(), strict=True)) == want["targets"]
        )
        assert batch.history_len.tolist() == input_end[batch.cases].tolist()
