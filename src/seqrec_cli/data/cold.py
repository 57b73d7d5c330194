"""Cold-start holdout: a seeded random set of items that training never sees.

A held-out ("cold") item is removed from every user's history except when it is that user's
final item, where it stays as the test target. So with leave-one-out, cold items are never a
training input or label, never a validation target or input, and never a test input; they can
only be test targets. Users left with fewer than `min_user_len` items are dropped. The catalogue
keeps every item (cold ones included), so a model that can score unseen items can rank them.
"""

from __future__ import annotations

import numpy as np

from seqrec_cli.data.batching import SPLIT_HOLDOUT
from seqrec_cli.data.process import Sequences
from seqrec_cli.errors import DataError


def draw_cold_items(num_items: int, fraction: float, seed: int) -> np.ndarray:
    """Sorted item ids (1..N) of round(fraction * N) items, at least one, drawn uniformly."""
    count = min(max(1, round(fraction * num_items)), num_items - 1)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(np.arange(1, num_items + 1), size=count, replace=False)).astype(np.int64)


def hold_out_items(seqs: Sequences, cold: np.ndarray, min_user_len: int) -> Sequences:
    is_cold = np.zeros(seqs.num_items + 1, dtype=bool)
    is_cold[cold] = True
    keep = ~is_cold[seqs.items]  # [R]
    keep[seqs.offsets[1:] - 1] = True  # each user's last item stays (it may be a cold test target)
    lengths = (
        np.add.reduceat(keep.astype(np.int64), seqs.offsets[:-1]) if len(keep) else np.zeros(0, np.int64)
    )
    users = np.flatnonzero(lengths >= min_user_len)
    if not len(users):
        raise DataError(
            "no user keeps enough items after holding out data.cold_items",
            where="data.cold_items",
            fix="lower data.cold_items.fraction",
        )
    row_user = np.repeat(np.arange(seqs.num_users), seqs.lengths())  # [R]
    keep &= np.isin(row_user, users)
    offsets = np.zeros(len(users) + 1, dtype=np.int64)
    np.cumsum(lengths[users], out=offsets[1:])
    return Sequences(
        items=seqs.items[keep],
        offsets=offsets,
        timestamps=None if seqs.timestamps is None else seqs.timestamps[keep],
        user_ids=[seqs.user_ids[u] for u in users],
        item_ids=seqs.item_ids,
    )


def split_targets(seqs: Sequences, split: str) -> np.ndarray:
    """[U] the item each user's `split` ranks (leave-one-out), in user order."""
    return seqs.items[seqs.offsets[1:] - SPLIT_HOLDOUT[split] - 1].astype(np.int64)


def candidates_per_user(seqs: Sequences, split: str, filter_seen: bool) -> np.ndarray:
    """[U] how many items compete for each user's target: the catalogue minus the seen ones when filtered."""
    if not filter_seen:
        return np.full(seqs.num_users, seqs.num_items, dtype=np.int64)
    ends = seqs.offsets[1:] - SPLIT_HOLDOUT[split] - 1
    seen = np.array(
        [len(np.unique(seqs.items[start:end])) for start, end in zip(seqs.offsets[:-1], ends, strict=True)]
    )
    return seqs.num_items - seen
