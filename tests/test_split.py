"""Leave-one-out batching: training pairs, bucketing, and the valid/test evaluation windows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqrec_cli.data.batching import IGNORE, PAD, TrainBatcher, eval_batches, left_pad_windows
from seqrec_cli.data.process import Sequences

torch.set_num_threads(1)

MAX_LEN = 4
USERS = [
    [1, 2, 3, 4, 5, 6, 7, 8, 9],  # 9 items: train part 7 items -> capped to 4 pairs
    [10, 11, 3],  # 3 items: train part is one item -> no training pair
    [4, 6, 8, 10, 2],  # 2 pairs
    [11, 9, 7, 5, 3, 1, 2],  # train part 5 items -> 4 pairs (exactly max_len + 1 window)
    [3, 5, 7, 9, 11, 2, 4, 6, 8, 10],  # 4 pairs (capped)
    [2, 3, 4, 5],  # 1 pair
]
N_ITEMS = 11


def make_seqs(users: list[list[int]] = USERS) -> Sequences:
    items = np.array([i for s in users for i in s], dtype=np.int32)
    offsets = np.zeros(len(users) + 1, dtype=np.int64)
    np.cumsum([len(s) for s in users], out=offsets[1:])
    return Sequences(
        items=items,
        offsets=offsets,
        timestamps=None,
        user_ids=[str(u) for u in range(len(users))],
        item_ids=[""] + [str(i) for i in range(1, N_ITEMS + 1)],
    )


def expected_pairs(s: list[int], max_len: int) -> tuple[list[int], list[int]]:
    """(inputs, labels) of a user's training row, without padding: labels are s[1:-2]'s last max_len."""
    train = s[:-2]
    labels = train[1:][-max_len:]
    inputs = train[:-1][-max_len:]
    return inputs, labels


def rows_of(batch) -> list[tuple[list[int], list[int], list[int], list[int]]]:
    """Per row: (unpadded inputs, unpadded labels, full input row, full label row)."""
    out = []
    for inp, lab in zip(batch.inputs.tolist(), batch.labels.tolist(), strict=True):
        keep = [t for t in range(len(lab)) if lab[t] != IGNORE]
        out.append(([inp[t] for t in keep], [lab[t] for t in keep], inp, lab))
    return out


def user_of(labels: list[int]) -> int:
    matches = [u for u, s in enumerate(USERS) if expected_pairs(s, MAX_LEN)[1] == labels]
    assert len(matches) == 1, labels
    return matches[0]


def test_left_pad_windows():
    seqs = make_seqs()
    w = left_pad_windows(seqs, 2, MAX_LEN)
    assert w.shape == (len(USERS), MAX_LEN) and w.dtype == np.int64
    assert w[0].tolist() == [4, 5, 6, 7]
    assert w[1].tolist() == [PAD, PAD, PAD, 10]
    assert w[5].tolist() == [PAD, PAD, 2, 3]
    assert left_pad_windows(seqs, 0, MAX_LEN)[1].tolist() == [PAD, 10, 11, 3]


@pytest.mark.parametrize("bucket", [True, False])
def test_train_rows_are_exact_and_exclude_holdouts(bucket):
    batcher = TrainBatcher(make_seqs(), MAX_LEN, batch_size=2, bucket_by_length=bucket)
    assert batcher.num_positions == 4 + 0 + 2 + 4 + 4 + 1
    assert len(batcher) == 3  # 5 trainable users, batches of 2
    seen = []
    for batch in batcher.epoch(np.random.default_rng(0)):
        assert batch.inputs.dtype == torch.int64 and batch.labels.dtype == torch.int64
        assert batch.inputs.shape == batch.labels.shape
        assert batch.inputs.shape[1] <= MAX_LEN
        for inputs, labels, full_in, full_lab in rows_of(batch):
            u = user_of(labels)
            seen.append(u)
            s = USERS[u]
            assert (inputs, labels) == expected_pairs(s, MAX_LEN)
            # label[t] is the item right after input[t] in the user's history
            for a, b in zip(inputs, labels, strict=True):
                assert any(s[j] == a and s[j + 1] == b for j in range(len(s) - 3))
            # valid (s[-2]) and test (s[-1]) targets are never training labels: labels only come from
            # positions 1..len-3, and the row holds nothing after them
            assert labels == s[1 : len(s) - 2][-MAX_LEN:]
            assert full_lab[-1] == s[-3] and full_in[-1] == s[-4]
            # left padding: IGNORE exactly where the input is PAD, and only at the start
            n = len(labels)
            assert full_in[: len(full_in) - n] == [PAD] * (len(full_in) - n)
            assert full_lab[: len(full_lab) - n] == [IGNORE] * (len(full_lab) - n)
    assert sorted(seen) == [0, 2, 3, 4, 5]  # every trainable user exactly once; user 1 has no pair


def test_bucketing_groups_similar_lengths_and_trims_width():
    batcher = TrainBatcher(make_seqs(), MAX_LEN, batch_size=2, bucket_by_length=True)
    for seed in range(5):
        batches = list(batcher.epoch(np.random.default_rng(seed)))
        counts = [sorted(len(r[1]) for r in rows_of(b)) for b in batches]
        # lengths (pair counts) 1, 2, 4, 4, 4 sorted and cut in twos: {1, 2}, {4, 4}, {4}
        assert sorted(counts) == [[1, 2], [4], [4, 4]]
        for b, c in zip(batches, counts, strict=True):
            assert b.inputs.shape[1] == max(c)  # width = the batch's own longest row


def test_same_seed_same_batches_and_shuffling_happens():
    batcher = TrainBatcher(make_seqs(), MAX_LEN, batch_size=2, bucket_by_length=False)

    def run(seed):
        return [(b.inputs.tolist(), b.labels.tolist()) for b in batcher.epoch(np.random.default_rng(seed))]

    assert run(7) == run(7)
    assert len({str(run(seed)) for seed in range(8)}) > 1  # the rng really drives the order


def test_user_with_too_few_items_gives_no_training_rows():
    batcher = TrainBatcher(make_seqs([[1, 2, 3], [4, 5, 6]]), MAX_LEN, batch_size=4, bucket_by_length=True)
    assert len(batcher) == 0 and batcher.num_positions == 0
    assert list(batcher.epoch(np.random.default_rng(0))) == []


def collect(split: str, batch_size: int = 4):
    out = {}
    for batch in eval_batches(make_seqs(), split, MAX_LEN, batch_size):
        assert batch.inputs.shape == (len(batch.users), MAX_LEN)
        assert batch.targets.shape == (len(batch.users),)
        for row, u in enumerate(batch.users.tolist()):
            seen = batch.seen_items[batch.seen_rows == row].tolist()
            out[u] = (batch.inputs[row].tolist(), int(batch.targets[row]), seen)
    return out


def padded(items: list[int]) -> list[int]:
    items = items[-MAX_LEN:]
    return [PAD] * (MAX_LEN - len(items)) + items


def test_eval_valid_split():
    got = collect("valid")
    assert sorted(got) == list(range(len(USERS)))  # every user once, across two batches
    for u, s in enumerate(USERS):
        inputs, target, seen = got[u]
        assert inputs == padded(s[:-2])
        assert target == s[-2]
        assert seen == s[:-2]  # the full history before the target, in order
    assert got[0][0] == [4, 5, 6, 7] and got[0][2] == [1, 2, 3, 4, 5, 6, 7]  # history longer than max_len
    assert got[1] == ([PAD, PAD, PAD, 10], 11, [10])


def test_eval_test_split_includes_valid_item():
    got = collect("test", batch_size=5)
    for u, s in enumerate(USERS):
        inputs, target, seen = got[u]
        assert inputs == padded(s[:-1])
        assert inputs[-1] == s[-2]  # the valid item is the most recent input
        assert target == s[-1]
        assert seen == s[:-1]
    assert got[4] == ([2, 4, 6, 8], 10, [3, 5, 7, 9, 11, 2, 4, 6, 8])


def test_eval_batch_boundaries_are_independent():
    a = collect("test", batch_size=1)
    b = collect("test", batch_size=100)
    assert a == b
