"""Exact top-k over the item table, in blocks of items so a [B, N] score matrix never exists at once."""

from __future__ import annotations

import numpy as np

BLOCK = 100_000


def blocked_topk(
    vectors: np.ndarray,
    table: np.ndarray,
    k: int,
    invalid: np.ndarray,
    exclude: list[np.ndarray],
    block: int = BLOCK,
) -> tuple[np.ndarray, np.ndarray]:
    """vectors [B, D], table [N + 1, D], invalid [N + 1] bool (PAD, unrankable), exclude: per row the item
    indices to drop -> ([B, k] scores, [B, k] indices), best first; -inf scores where fewer than k remain."""
    b = len(vectors)
    best_s = np.full((b, 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((b, 0), dtype=np.int64)
    for start in range(0, len(table), block):
        stop = min(start + block, len(table))
        s = vectors @ table[start:stop].T  # [B, b]
        s[:, invalid[start:stop]] = -np.inf
        for row, items in enumerate(exclude):
            inside = items[(items >= start) & (items < stop)] - start
            s[row, inside] = -np.inf
        kk = min(k, stop - start)
        part = np.argpartition(-s, kk - 1, axis=1)[:, :kk]  # [B, kk]
        best_s = np.concatenate([best_s, np.take_along_axis(s, part, 1)], axis=1)
        best_i = np.concatenate([best_i, part + start], axis=1)
        order = np.argsort(-best_s, axis=1, kind="stable")[:, :k]  # [B, <=k]
        best_s, best_i = np.take_along_axis(best_s, order, 1), np.take_along_axis(best_i, order, 1)
    return best_s, best_i
