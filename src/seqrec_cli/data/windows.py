"""Training windows: which stretches of each user's training history an epoch trains on.

A window is `width` consecutive items of one user's training part (items[:train_len], so valid and
test targets are never inside one), stored as (user, flat end index, item count) and gathered into a
left-padded batch only when its batch is built: a sliding table over a million interactions costs a
few arrays, not a [windows, width] matrix.

- `last`: one window per user, its most recent `width` items (seqrec's behaviour before 0.3).
- `sliding`: windows end at train_len, train_len - stride, train_len - 2 * stride, ... until one
  starts at the first item. With a causal objective (width = max_len + 1: inputs and next-item
  labels) and stride = max_len, the windows' labelled positions tile the history: every target
  position is trained exactly once per epoch, each with up to max_len items of left context. A
  smaller stride overlaps the windows (positions near a window's start get trained again with
  longer context). With the masked objective (width = max_len) the windows tile the items the same way.
- `per_user`: an epoch trains at most this many of a user's windows, drawn afresh from the epoch's
  RNG, so one very long history cannot make an epoch arbitrarily long.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WINDOW_MODES = ("last", "sliding")


@dataclass(frozen=True)
class WindowTable:
    users: np.ndarray  # [W] dense user index of each window, non-decreasing
    ends: np.ndarray  # [W] flat index into seqs.items one past the window's last item
    counts: np.ndarray  # [W] items in the window (<= width)
    per_user: int | None = None  # windows an epoch samples per user (None: all of them)

    def __len__(self) -> int:
        return len(self.users)

    def sample(self, rng: np.random.Generator) -> np.ndarray | None:
        """This epoch's window rows (sorted), or None when every window trains. Depends only on rng."""
        if self.per_user is None:
            return None
        keys = rng.random(len(self.users))  # [W] random order within each user
        order = np.lexsort((keys, self.users))
        first = np.searchsorted(self.users, self.users[order])  # [W] first row of each window's user
        rank = np.arange(len(order)) - first
        return np.sort(order[rank < self.per_user])

    def keep_probability(self) -> np.ndarray:
        """[W] chance that a window is in an epoch's sample (1 without sampling)."""
        if self.per_user is None:
            return np.ones(len(self.users))
        per_user = np.bincount(self.users, minlength=int(self.users.max(initial=-1)) + 1)[self.users]  # [W]
        return np.minimum(1.0, self.per_user / per_user)

    def sampled_count(self) -> int:
        """Windows in every epoch's sample (the sample size is fixed; only its members vary)."""
        if self.per_user is None:
            return len(self.users)
        per_user = np.bincount(self.users)
        return int(np.minimum(per_user, self.per_user).sum())


def training_windows(
    offsets: np.ndarray,
    train_lengths: np.ndarray,
    width: int,
    min_items: int,
    mode: str = "last",
    stride: int | None = None,
    per_user: int | None = None,
) -> WindowTable:
    """Windows of `width` items over each user's training prefix. offsets [U + 1] index the flat item
    array; a window needs at least `min_items` items (2 for next-item pairs, 1 for masking)."""
    if mode not in WINDOW_MODES:
        raise ValueError(f"unknown window mode {mode!r}")
    train_lengths = np.asarray(train_lengths, dtype=np.int64)  # [U]
    usable = train_lengths >= min_items
    if mode == "last":
        per = usable.astype(np.int64)  # [U]
    else:
        stride = stride or width - 1
        if stride > width - min_items + 1:  # would leave targets between windows untrained
            raise ValueError(f"window stride {stride} exceeds the window's {width - min_items + 1} targets")
        # Window k ends at T - k * stride; the next one is needed while window k starts after item 0.
        per = np.where(usable, 1 + np.maximum(0, -(-(train_lengths - width) // stride)), 0)  # [U]
    users = np.repeat(np.arange(len(train_lengths)), per)  # [W]
    k = np.arange(len(users)) - np.repeat(np.cumsum(per) - per, per)  # [W] window index within its user
    local_end = train_lengths[users] - k * (stride or 0)  # [W]
    ends = np.asarray(offsets, dtype=np.int64)[users] + local_end
    counts = np.minimum(local_end, width)
    return WindowTable(
        users=users, ends=ends, counts=counts, per_user=per_user if mode == "sliding" else None
    )


def gather_windows(values: np.ndarray, ends: np.ndarray, counts: np.ndarray, width: int, pad) -> np.ndarray:
    """[B, width]: values[end - count : end] of each row, left-padded with `pad` (values' dtype)."""
    cols = np.arange(width)  # [width]
    real = cols[None, :] >= (width - counts)[:, None]  # [B, width] False on the left padding
    pos = np.where(real, ends[:, None] - width + cols[None, :], 0)  # [B, width]
    return np.where(real, values[pos], pad).astype(values.dtype)
