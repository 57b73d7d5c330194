"""Ranking metrics and pessimistic ranks, checked against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from seqrec_cli.core.metrics import metrics_at_k, pessimistic_ranks

torch.set_num_threads(1)

INF = float("inf")


def test_metrics_at_k_hand_values():
    out = metrics_at_k(np.array([1, 3, 11]), [1, 5, 10])
    assert set(out) == {f"{m}@{k}" for m in ("HR", "NDCG", "MRR") for k in (1, 5, 10)}
    # K=1: only rank 1 hits.
    assert out["HR@1"] == pytest.approx(1 / 3)
    assert out["NDCG@1"] == pytest.approx((1 / math.log2(2)) / 3)
    assert out["MRR@1"] == pytest.approx((1 / 1) / 3)
    # K=5 and K=10: ranks 1 and 3 hit, rank 11 misses.
    for k in (5, 10):
        assert out[f"HR@{k}"] == pytest.approx(2 / 3)
        assert out[f"NDCG@{k}"] == pytest.approx((1 / math.log2(2) + 1 / math.log2(4)) / 3)  # (1 + 0.5) / 3
        assert out[f"MRR@{k}"] == pytest.approx((1 / 1 + 1 / 3) / 3)
    assert out["NDCG@5"] == pytest.approx(0.5)


def test_metrics_rank_exactly_k_is_a_hit():
    out = metrics_at_k([5, 6], [5])
    assert out["HR@5"] == pytest.approx(0.5)
    assert out["NDCG@5"] == pytest.approx((1 / math.log2(6)) / 2)
    assert out["MRR@5"] == pytest.approx((1 / 5) / 2)


def test_metrics_k_larger_than_catalogue():
    # 4 candidates: every rank is <= 4, so K=100 counts every user as a hit.
    ranks = [1, 2, 4, 4]
    out = metrics_at_k(ranks, [100])
    assert out["HR@100"] == 1.0
    assert out["NDCG@100"] == pytest.approx((1 + 1 / math.log2(3) + 2 / math.log2(5)) / 4)
    assert out["MRR@100"] == pytest.approx((1 + 1 / 2 + 1 / 4 + 1 / 4) / 4)


def test_pessimistic_ranks_basic():
    # column 0 is PAD at -inf; items 1..4
    scores = torch.tensor([[-INF, 0.1, 0.9, 0.5, 0.3],
                           [-INF, 0.1, 0.9, 0.5, 0.3]])
    ranks = pessimistic_ranks(scores, torch.tensor([2, 1]))
    assert ranks.tolist() == [1, 4]


def test_pessimistic_ties_count_against_target():
    scores = torch.full((2, 6), 0.7)
    scores[:, 0] = -INF
    # All 5 real items tie: the target ranks last (5), not first.
    assert pessimistic_ranks(scores, torch.tensor([1, 5])).tolist() == [5, 5]
    # One tie with a better item and one with an equal item.
    scores = torch.tensor([[-INF, 0.2, 0.5, 0.5, 0.9, 0.1]])
    assert pessimistic_ranks(scores, torch.tensor([2])).tolist() == [3]  # 4 (0.9) and 3 (tie) beat it


def test_pessimistic_exclusion_removes_items():
    scores = torch.tensor([[-INF, 0.9, 0.8, 0.1, 0.7]])
    target = torch.tensor([3])
    assert pessimistic_ranks(scores, target).tolist() == [4]
    exclude = torch.zeros_like(scores, dtype=torch.bool)
    exclude[0, [1, 4]] = True
    assert pessimistic_ranks(scores, target, exclude).tolist() == [2]  # only item 2 still beats it


def test_pessimistic_target_never_excluded():
    scores = torch.tensor([[-INF, 0.9, 0.8, 0.1, 0.7],
                           [-INF, 0.9, 0.8, 0.1, 0.7]])
    exclude = torch.zeros_like(scores, dtype=torch.bool)
    exclude[:, 3] = True  # the target itself is in the history (repeat consumption)
    exclude[1, 1] = True
    ranks = pessimistic_ranks(scores, torch.tensor([3, 3]), exclude)
    # Not pushed to -inf / last-of-nothing: ranked by its own score among the others.
    assert ranks.tolist() == [4, 3]
    # The caller's mask is not modified.
    assert exclude[:, 3].all() and int(exclude.sum()) == 3


def test_pessimistic_pad_column_never_counts():
    # Every real item scores below 0 but PAD is -inf: PAD must not be counted as beating anything.
    scores = torch.tensor([[-INF, -5.0, -1.0, -3.0]])
    assert pessimistic_ranks(scores, torch.tensor([1])).tolist() == [3]
    assert pessimistic_ranks(scores, torch.tensor([2])).tolist() == [1]


@pytest.mark.parametrize("bad", [float("nan"), -INF])
def test_pessimistic_nonfinite_target_ranks_last(bad):
    scores = torch.tensor([[-INF, 0.3, 0.2, 0.1, 0.0],
                           [-INF, 0.3, 0.2, 0.1, 0.0]])
    scores[0, 2] = bad
    exclude = torch.zeros_like(scores, dtype=torch.bool)
    exclude[1, 4] = True
    scores[1, 1] = bad
    ranks = pessimistic_ranks(scores, torch.tensor([2, 1]), exclude)
    # Row 0: 3 finite other items -> last = 4. Row 1: item 4 excluded -> 2 finite others -> 3.
    assert ranks.tolist() == [4, 3]


def test_pessimistic_ranks_match_brute_force():
    gen = torch.Generator().manual_seed(0)
    B, N = 7, 13
    scores = torch.randint(0, 4, (B, N + 1), generator=gen).float()  # many ties on purpose
    scores[:, 0] = -INF
    targets = torch.randint(1, N + 1, (B,), generator=gen)
    exclude = torch.rand(B, N + 1, generator=gen) < 0.3
    ranks = pessimistic_ranks(scores, targets, exclude).tolist()
    for b in range(B):
        t = int(targets[b])
        others = [i for i in range(1, N + 1) if i != t and not bool(exclude[b, i])]
        expected = 1 + sum(float(scores[b, i]) >= float(scores[b, t]) for i in others)
        assert ranks[b] == expected
