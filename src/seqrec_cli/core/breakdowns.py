"""Metrics by bucket: how long the user's history is, and how popular the target item is.

Bucket edges are half-open [lo, hi). History length counts every item before the target (not only
the model's window). Target popularity is the target's number of training interactions; with
several targets per case, each (case, target) pair is scored as its own single-target case.
"""

from __future__ import annotations

import numpy as np

from seqrec_cli.core.metrics import per_case_metrics

HISTORY_EDGES = (1, 5, 10, 20, 50, 100, 200, 500)  # last bucket: >= 500
POPULARITY_EDGES = (0, 1, 10, 50, 100, 500, 1000, 5000)  # last bucket: >= 5000


def bucket_labels(edges: tuple[int, ...]) -> list[str]:
    return [
        f"{lo}-{hi - 1}" if hi - 1 > lo else f"{lo}" for lo, hi in zip(edges[:-1], edges[1:], strict=True)
    ] + [f">={edges[-1]}"]


def _by_bucket(keys: np.ndarray, values: dict[str, np.ndarray], edges: tuple[int, ...]) -> list[dict]:
    index = np.searchsorted(np.asarray(edges), keys, side="right") - 1  # -1: below the first edge
    out = []
    for b, label in enumerate(bucket_labels(edges)):
        mask = index == b
        if mask.any():
            out.append({"bucket": label, "cases": int(mask.sum()),
                        **{name: float(v[mask].mean()) for name, v in values.items()}})
    return out


def history_breakdown(history_len: np.ndarray, per_case: dict[str, np.ndarray]) -> list[dict]:
    return _by_bucket(np.asarray(history_len), per_case, HISTORY_EDGES)


def popularity_breakdown(target_items: np.ndarray, ranks: np.ndarray, train_counts: np.ndarray,
                         ks: list[int], names: tuple[str, ...] = ("HR", "NDCG", "MRR")) -> list[dict]:
    pairs = per_case_metrics(np.arange(len(ranks)), ranks, len(ranks), ks)
    keep = {f"{n}@{k}": pairs[f"{n}@{k}"] for k in ks for n in names}
    return _by_bucket(np.asarray(train_counts)[target_items], keep, POPULARITY_EDGES)
