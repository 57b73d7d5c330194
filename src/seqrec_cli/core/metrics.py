"""Ranking metrics as pure functions of the target's 1-based rank.

Ranks are pessimistic: rank = 1 + number of OTHER candidate items scoring >= the target, so a
model that scores everything equally ranks every target last, not first.
"""

from __future__ import annotations

import numpy as np
import torch

METRICS = ("HR", "NDCG", "MRR")


def pessimistic_ranks(
    scores: torch.Tensor, targets: torch.Tensor, exclude: torch.Tensor | None = None
) -> torch.Tensor:
    """scores: [B, N+1], targets: [B], exclude: [B, N+1] bool (items not to rank) -> ranks [B] (1-based).

    The target is never excluded, even when it is in the history (repeat consumption).
    """
    rows = torch.arange(len(targets), device=scores.device)  # [B]
    target_scores = scores[rows, targets]  # [B]
    others = scores.clone()  # [B, N+1]
    if exclude is not None:
        others[exclude] = float("-inf")
    others[rows, targets] = float("-inf")
    # -inf others never count; a -inf or NaN target ranks last among the finite candidates.
    beaten = (others >= target_scores.unsqueeze(1)).sum(dim=1)  # [B]
    finite = torch.isfinite(others).sum(dim=1)  # [B]
    bad_target = ~torch.isfinite(target_scores)  # [B]
    return torch.where(bad_target, finite, beaten) + 1


def metrics_at_k(ranks: np.ndarray, ks: list[int]) -> dict[str, float]:
    """Mean HR@K, NDCG@K and MRR@K over users from 1-based ranks."""
    ranks = np.asarray(ranks, dtype=np.float64)
    out: dict[str, float] = {}
    for k in ks:
        hit = ranks <= k
        out[f"HR@{k}"] = float(hit.mean())
        out[f"NDCG@{k}"] = float(np.where(hit, 1.0 / np.log2(ranks + 1.0), 0.0).mean())
        out[f"MRR@{k}"] = float(np.where(hit, 1.0 / ranks, 0.0).mean())
    return out


# --- per-case metrics over one or many targets ---------------------------------------------------
#
# A "case" is one ranking request (a user at a point in time) with one or more target items; each
# target has its own pessimistic rank among all other candidates (other targets included). Because
# ranks are pessimistic, the i-th best target rank is always >= i, so DCG never exceeds the ideal DCG.

CASE_METRICS = ("HR", "Recall", "Precision", "NDCG", "MRR", "MAP")


def per_case_metrics(
    case_of: np.ndarray, ranks: np.ndarray, num_cases: int, ks: list[int]
) -> dict[str, np.ndarray]:
    """case_of: [T] case index of each (case, target) pair, ranks: [T] 1-based -> {"NDCG@10": [E], ...}.

    With one target per case, Recall@K = HR@K, Precision@K = HR@K / K and MAP@K = MRR@K.
    Precision@K divides by K even when K exceeds the catalogue (the usual definition).
    """
    case_of = np.asarray(case_of, dtype=np.int64)
    ranks = np.asarray(ranks, dtype=np.float64)
    n_targets = np.bincount(case_of, minlength=num_cases).astype(np.float64)  # [E]
    if (n_targets == 0).any():
        raise ValueError("every case needs at least one target")
    # rank of each target among its own case's targets (1 = best), for MAP and the ideal DCG
    order = np.lexsort((ranks, case_of))
    starts = np.concatenate([[0], np.cumsum(n_targets[:-1])]).astype(np.int64)  # [E]
    position = np.empty(len(ranks), dtype=np.float64)
    position[order] = np.arange(len(ranks)) - np.repeat(starts, n_targets.astype(np.int64)) + 1
    out: dict[str, np.ndarray] = {}
    for k in ks:
        hit = ranks <= k  # [T]
        hits = np.bincount(case_of, weights=hit.astype(np.float64), minlength=num_cases)  # [E]
        dcg = np.bincount(
            case_of, weights=np.where(hit, 1.0 / np.log2(ranks + 1.0), 0.0), minlength=num_cases
        )
        ideal_n = np.minimum(n_targets, k)
        idcg = np.cumsum(1.0 / np.log2(np.arange(2, int(ideal_n.max()) + 2)))[ideal_n.astype(np.int64) - 1]
        best = np.full(num_cases, np.inf)
        np.minimum.at(best, case_of, ranks)
        # precision at each hit's own rank: targets ranked at or above it / its rank
        ap = np.bincount(case_of, weights=np.where(hit, position / ranks, 0.0), minlength=num_cases)
        out[f"HR@{k}"] = (hits > 0).astype(np.float64)
        out[f"Recall@{k}"] = hits / n_targets
        out[f"Precision@{k}"] = hits / k
        out[f"NDCG@{k}"] = dcg / idcg
        out[f"MRR@{k}"] = np.where(best <= k, 1.0 / best, 0.0)
        out[f"MAP@{k}"] = ap / ideal_n
    return out


def mean_metrics(per_case: dict[str, np.ndarray]) -> dict[str, float]:
    return {name: float(values.mean()) for name, values in per_case.items()}


# --- properties of the recommended lists ---------------------------------------------------------

def list_metrics(topk: np.ndarray, ks: list[int], train_counts: np.ndarray) -> dict[str, float]:
    """topk: [E, Kmax] recommended item ids, best first, -1 where fewer candidates than Kmax;
    train_counts: [N + 1] training interactions per item (index 0 = PAD, ignored).

    Coverage@K: distinct items recommended in any top-K / N. AvgPop@K: mean training count of the
    recommended items. Novelty@K: mean self-information -log2 p(i) of the recommended items, with
    p(i) = (count(i) + 1) / (training interactions + N) (add-one, so unseen items stay finite).
    """
    n_items = len(train_counts) - 1
    counts = np.asarray(train_counts, dtype=np.float64)
    info = -np.log2((counts + 1.0) / (counts[1:].sum() + n_items))  # [N + 1]
    out: dict[str, float] = {}
    for k in ks:
        top = topk[:, :k]  # [E, k]
        valid = top > 0
        items = top[valid]
        out[f"Coverage@{k}"] = float(len(np.unique(items)) / n_items)
        out[f"AvgPop@{k}"] = float(counts[items].mean()) if len(items) else 0.0
        out[f"Novelty@{k}"] = float(info[items].mean()) if len(items) else 0.0
    return out
