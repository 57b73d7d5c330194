"""Multi-target and list metrics, and the chunked full-ranking engine, against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from seqrec_cli.core.evaluation import DenseScorer, RankOptions, rank_cases
from seqrec_cli.core.metrics import list_metrics, metrics_at_k, per_case_metrics
from seqrec_cli.data.process import Sequences
from seqrec_cli.data.splits import EvalCases

torch.set_num_threads(1)


def L(r: float) -> float:
    return 1.0 / math.log2(r + 1.0)


def test_per_case_metrics_hand_values_with_ties_and_large_k():
    # case 0: two targets at ranks 1 and 3; case 1: one target at rank 2; case 2: two targets tied at rank 5
    case_of = np.array([0, 0, 1, 2, 2])
    ranks = np.array([3, 1, 2, 5, 5])
    out = per_case_metrics(case_of, ranks, 3, [3, 100])
    # K = 3
    assert out["HR@3"].tolist() == [1.0, 1.0, 0.0]
    assert out["Recall@3"].tolist() == [1.0, 1.0, 0.0]
    assert out["Precision@3"] == pytest.approx([2 / 3, 1 / 3, 0.0])
    assert out["NDCG@3"] == pytest.approx([(1 + L(3)) / (1 + L(2)), L(2), 0.0])
    assert out["MRR@3"] == pytest.approx([1.0, 0.5, 0.0])
    # AP: precision at each hit's rank = (targets ranked at or above it) / rank, over min(|T|, K)
    assert out["MAP@3"] == pytest.approx([(1 / 1 + 2 / 3) / 2, 1 / 2, 0.0])
    # K = 100 (larger than any catalogue here): every target hits; Precision still divides by K
    assert out["HR@100"].tolist() == [1.0, 1.0, 1.0]
    assert out["Precision@100"] == pytest.approx([2 / 100, 1 / 100, 2 / 100])
    assert out["NDCG@100"][2] == pytest.approx(2 * L(5) / (1 + L(2)))
    assert out["MRR@100"][2] == pytest.approx(1 / 5)
    # tied targets take positions 1 and 2 at rank 5 (pessimistic: not both 2/5)
    assert out["MAP@100"][2] == pytest.approx((1 / 5 + 2 / 5) / 2)


def test_single_target_reduces_to_hr_ndcg_mrr():
    ranks = np.array([1, 3, 11, 4])
    out = per_case_metrics(np.arange(4), ranks, 4, [1, 5, 10])
    classic = metrics_at_k(ranks, [1, 5, 10])
    for k in (1, 5, 10):
        for name in ("HR", "NDCG", "MRR"):
            assert out[f"{name}@{k}"].mean() == pytest.approx(classic[f"{name}@{k}"])
        assert np.array_equal(out[f"Recall@{k}"], out[f"HR@{k}"])
        assert np.allclose(out[f"Precision@{k}"], out[f"HR@{k}"] / k)
        assert np.allclose(out[f"MAP@{k}"], out[f"MRR@{k}"])


def test_list_metrics_hand_values():
    counts = np.array([0, 10, 5, 0, 1], dtype=float)  # PAD, items 1..4; 16 training interactions
    topk = np.array([[1, 2, 3], [1, 4, -1]])  # second list has only 2 candidates (K beyond them)
    out = list_metrics(topk, [2, 3, 10], counts)
    p = lambda c: (c + 1) / (16 + 4)  # noqa: E731 - add-one smoothed training share
    assert out["Coverage@2"] == pytest.approx(3 / 4)  # items 1, 2, 4
    assert out["AvgPop@2"] == pytest.approx((10 + 5 + 10 + 1) / 4)
    assert out["Novelty@2"] == pytest.approx(-(2 * math.log2(p(10)) + math.log2(p(5)) + math.log2(p(1))) / 4)
    assert out["Coverage@3"] == 1.0
    assert out["AvgPop@3"] == pytest.approx((10 + 5 + 0 + 10 + 1) / 5)
    assert out["Coverage@10"] == 1.0 and out["AvgPop@10"] == out["AvgPop@3"]


def make_seqs(users: list[list[int]], n_items: int) -> Sequences:
    items = np.array([i for s in users for i in s], dtype=np.int32)
    offsets = np.zeros(len(users) + 1, dtype=np.int64)
    np.cumsum([len(s) for s in users], out=offsets[1:])
    return Sequences(
        items=items,
        offsets=offsets,
        timestamps=None,
        user_ids=[f"u{u}" for u in range(len(users))],
        item_ids=[""] + [f"i{i}" for i in range(1, n_items + 1)],
    )


N = 11


def brute_rank(
    scores: np.ndarray, target: int, others_targets: list[int], seen: set[int], filter_seen: bool
) -> int:
    beaten = 0
    for i in range(1, N + 1):
        if i == target or (filter_seen and i in seen and i not in others_targets):
            continue
        beaten += scores[i] >= scores[target]
    return beaten + 1


@pytest.mark.parametrize("filter_seen", [True, False])
@pytest.mark.parametrize("chunk", [1, 3, 4, 1000])
def test_rank_cases_matches_brute_force_in_any_chunking(filter_seen, chunk):
    gen = torch.Generator().manual_seed(3)
    users = [[1, 2, 3, 4, 5, 2], [6, 7, 8, 9], [3, 3, 10, 11, 1], [5, 4]]
    seqs = make_seqs(users, N)
    # inputs end before the target window; targets include repeats and a history item (never removed)
    cases = EvalCases(users=np.array([0, 1, 2, 3]), input_end=np.array([3, 2, 2, 1]),
                      target_start=np.array([3, 2, 2, 1]), target_end=np.array([6, 3, 5, 2]))
    table = torch.randint(0, 3, (len(users), N + 1), generator=gen).float()  # [U, N + 1] many ties on purpose

    def score_all(inputs: torch.Tensor) -> torch.Tensor:
        # look up the user's row by its history window (each window is unique here)
        rows = [
            next(
                u
                for u in range(len(users))
                if list(inputs[b][inputs[b] > 0]) == users[u][: cases.input_end[u]]
            )
            for b in range(len(inputs))
        ]
        return table[rows]  # [B, N + 1]

    ranked = rank_cases(
        DenseScorer(score_all, N),
        seqs,
        cases,
        RankOptions(max_len=3, batch_size=3, filter_seen=filter_seen, top_k=5, chunk_items=chunk),
        torch.device("cpu"),
    )
    expected_pairs = []
    for c, u in enumerate(cases.users):
        s = users[u]
        history = set(s[: cases.input_end[c]])
        targets = list(dict.fromkeys(s[cases.target_start[c]: cases.target_end[c]]))
        scores = table[u].numpy()
        for t in targets:
            expected_pairs.append((c, t, brute_rank(scores, t, targets, history, filter_seen)))
    got = list(zip(ranked.case_of.tolist(), ranked.target_items.tolist(), ranked.ranks.tolist(), strict=True))
    assert got == expected_pairs
    assert ranked.history_len.tolist() == [3, 2, 2, 1]
    # top-5: the best candidates by score (PAD never, seen items only when not filtered)
    for c, u in enumerate(cases.users):
        banned = set(users[u][: cases.input_end[c]]) if filter_seen else set()
        candidates = [i for i in range(1, N + 1) if i not in banned]
        top = ranked.topk[c]
        assert len(set(top.tolist())) == 5 and all(i in candidates for i in top)
        scores = table[u].numpy()
        assert sorted(scores[top], reverse=True) == sorted(scores[candidates], reverse=True)[:5]


def test_collapsed_scores_rank_every_target_last_in_chunks():
    seqs = make_seqs([[1, 2, 3], [4, 5, 6]], N)
    cases = EvalCases(np.array([0, 1]), np.array([2, 2]), np.array([2, 2]), np.array([3, 3]))
    ranked = rank_cases(DenseScorer(lambda x: torch.zeros(len(x), N + 1), N), seqs, cases,
                        RankOptions(4, 2, True, chunk_items=4), torch.device("cpu"))
    assert ranked.ranks.tolist() == [N - 2, N - 2]  # 2 history items removed: last of the 9 candidates
