"""Ranking metrics as pure functions of the target's 1-based rank.

Ranks are pessimistic: rank = 1 + number of OTHER candidate items scoring >= the target, so a
model that scores everything equally ranks every target last, not first.
"""

from __future__ import annotations

import numpy as np
import torch

METRICS = ("HR", "NDCG", "MRR")


def pessimistic_ranks(scores: torch.Tensor, targets: torch.Tensor, exclude: torch.Tensor | None = None) -> torch.Tensor:
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
