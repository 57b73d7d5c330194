"""What every raw reader returns: columns of raw (string) ids, before any filtering or remapping."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class RawInteractions:
    users: np.ndarray  # [R] raw user ids as str (dtype object)
    items: np.ndarray  # [R] raw item ids as str (dtype object)
    timestamps: np.ndarray | None  # [R] float64; None when file order is already chronological per user
    ratings: np.ndarray | None  # [R] float64; None when the source has no ratings
    source: str  # the file read, for messages

    def __len__(self) -> int:
        return len(self.users)


@dataclass
class ItemTable:
    """Item side information: one row per raw item id, text fields as strings ("" when missing)."""

    ids: list[str]
    fields: dict[str, list[str]] = field(default_factory=dict)
