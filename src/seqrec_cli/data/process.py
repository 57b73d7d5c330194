"""Raw interactions -> per-user chronological item sequences with dense ids.

Order of operations (documented in docs/data.md): rating threshold, stable time sort, dedup,
iterative k-core, id assignment. Ties in time keep the original row order of the file, so the
same file always gives the same sequences.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seqrec_cli.data.raw import RawInteractions
from seqrec_cli.errors import DataError
from seqrec_cli.spec.models import DataSpec


@dataclass
class Sequences:
    """Compact per-user sequences: user u's items are items[offsets[u]:offsets[u+1]] (ids 1..N)."""

    items: np.ndarray  # [R] int32, item ids 1..N, chronological within each user
    offsets: np.ndarray  # [U+1] int64
    timestamps: np.ndarray | None  # [R] float64 or None
    user_ids: list[str]  # raw id of user u
    item_ids: list[str]  # raw id of item i is item_ids[i]; item_ids[0] = "" (PAD)

    @property
    def num_users(self) -> int:
        return len(self.offsets) - 1

    @property
    def num_items(self) -> int:
        return len(self.item_ids) - 1

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)  # [U]

    def user_items(self, u: int) -> np.ndarray:
        return self.items[self.offsets[u] : self.offsets[u + 1]]


def _natural_order(raw_ids: np.ndarray) -> np.ndarray:
    """Unique raw ids sorted numerically when they are all integers (keeps 1..N files as 1..N)."""
    unique = np.unique(raw_ids.astype(str))
    try:
        return unique[np.argsort(unique.astype(np.int64), kind="stable")]
    except (ValueError, OverflowError):  # not integers, or integers beyond int64 (e.g. hashed ids)
        return unique


def _kcore(user_codes: np.ndarray, item_codes: np.ndarray, user_min: int, item_min: int) -> np.ndarray:
    """Boolean keep-mask after iteratively dropping users/items below their minimum count."""
    keep = np.ones(len(user_codes), dtype=bool)
    while True:
        u_counts = np.bincount(user_codes[keep], minlength=user_codes.max() + 1)
        i_counts = np.bincount(item_codes[keep], minlength=item_codes.max() + 1)
        bad = keep & ((u_counts[user_codes] < user_min) | (i_counts[item_codes] < item_min))
        if not bad.any():
            return keep
        keep &= ~bad


def build_sequences(raw: RawInteractions, spec: DataSpec) -> Sequences:
    users, items = raw.users, raw.items
    rows = np.arange(len(raw), dtype=np.int64)
    keep = np.ones(len(raw), dtype=bool)

    if spec.min_rating is not None:
        if raw.ratings is None:
            raise DataError(
                "data.min_rating is set but the interactions have no rating column",
                where=raw.source,
                fix="remove data.min_rating, or name the rating column in data.columns.rating",
            )
        keep &= raw.ratings >= spec.min_rating

    _, user_codes = np.unique(users.astype(str), return_inverse=True)
    _, item_codes = np.unique(items.astype(str), return_inverse=True)

    # Stable chronological order: (user, timestamp, original row). lexsort's last key is primary.
    if raw.timestamps is not None:
        order = np.lexsort((rows, raw.timestamps, user_codes))
    else:
        order = np.lexsort((rows, user_codes))
    order = order[keep[order]]

    if spec.dedup != "none":
        pair = user_codes[order].astype(np.int64) * (item_codes.max() + 1) + item_codes[order]
        if spec.dedup == "first":
            _, idx = np.unique(pair, return_index=True)
        else:  # "last": first occurrence in the reversed order
            _, ridx = np.unique(pair[::-1], return_index=True)
            idx = len(pair) - 1 - ridx
        order = order[np.sort(idx)]  # sorted positions keep the chronological order

    user_min = max(spec.user_core, spec.min_user_len)
    if len(order):
        sub_keep = _kcore(user_codes[order], item_codes[order], user_min, spec.item_core)
        order = order[sub_keep]
    if not len(order):
        raise DataError(
            "no interactions left after filtering "
            f"(min_rating={spec.min_rating}, user_core={spec.user_core}, item_core={spec.item_core}, "
            f"min_user_len={spec.min_user_len})",
            where=raw.source,
            fix="lower data.min_rating, data.user_core or data.item_core",
        )

    kept_users, kept_items = users[order].astype(str), items[order].astype(str)
    user_order = _natural_order(kept_users)
    item_order = _natural_order(kept_items)
    user_index = {u: i for i, u in enumerate(user_order.tolist())}
    item_index = {it: i + 1 for i, it in enumerate(item_order.tolist())}

    dense_users = np.fromiter((user_index[u] for u in kept_users), dtype=np.int64, count=len(order))
    dense_items = np.fromiter((item_index[i] for i in kept_items), dtype=np.int32, count=len(order))
    # Regroup users in id order without disturbing each user's chronological order.
    regroup = np.argsort(dense_users, kind="stable")
    counts = np.bincount(dense_users, minlength=len(user_order))
    offsets = np.zeros(len(user_order) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    timestamps = None if raw.timestamps is None else raw.timestamps[order][regroup].astype(np.float64)
    return Sequences(
        items=dense_items[regroup],
        offsets=offsets,
        timestamps=timestamps,
        user_ids=user_order.tolist(),
        item_ids=[""] + item_order.tolist(),
    )
