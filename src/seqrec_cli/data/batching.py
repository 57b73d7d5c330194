"""Batching convention, written once:

- Items are 1..N, PAD = 0; labels that carry no signal are IGNORE = -100.
- Sequences are LEFT-padded and keep the most recent `max_len` items, so the last column is
  always the most recent item.
- Leave-one-out: for a user with items s[0..n-1], training uses s[:-2] (inputs s[:-3], labels
  s[1:-2]), validation predicts s[-2] from s[:-2], test predicts s[-1] from s[:-1] (so test inputs
  include the valid item). Valid and test targets never appear as training labels.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from seqrec_cli.data.process import Sequences

PAD = 0
IGNORE = -100
SPLIT_HOLDOUT = {"train": 2, "valid": 1, "test": 0}  # items cut from the end of each user's history


def left_pad_windows(seqs: Sequences, holdout: int, width: int) -> np.ndarray:
    """[U, width] int64: each user's items[:-holdout] (all when 0), most recent `width`, left-padded."""
    out = np.full((seqs.num_users, width), PAD, dtype=np.int64)
    lengths = seqs.lengths() - holdout  # [U]
    for u in range(seqs.num_users):
        n = min(int(lengths[u]), width)
        if n > 0:
            end = seqs.offsets[u] + lengths[u]
            out[u, width - n :] = seqs.items[end - n : end]
    return out


@dataclass
class TrainBatch:
    inputs: torch.Tensor  # [B, L] item ids, left-padded
    labels: torch.Tensor  # [B, L] next item or IGNORE


def batch_plan(lengths: np.ndarray, batch_size: int, bucket_by_length: bool,
               rng: np.random.Generator) -> list[np.ndarray]:
    """One epoch's batches as arrays of row indices. The order depends only on `rng`, so every
    process of a distributed run (and a resumed run) computes the same plan from the same seed."""
    if bucket_by_length:
        # Sort by length with random tie-breaks, cut into batches, then shuffle the batches.
        order = np.lexsort((rng.random(len(lengths)), lengths))
        batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        rng.shuffle(batches)
    else:
        order = rng.permutation(len(lengths))
        batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    return batches


class TrainBatcher:
    """Next-item training pairs from each user's training part, batched by similar length.

    The whole [U, max_len + 1] window matrix is built once; a batch is a row gather plus a column
    slice to the batch's own longest sequence, so padding costs nothing beyond that.
    """

    def __init__(self, seqs: Sequences, max_len: int, batch_size: int, bucket_by_length: bool):
        windows = left_pad_windows(seqs, SPLIT_HOLDOUT["train"], max_len + 1)  # [U, L+1]
        pair_counts = np.clip(np.minimum(seqs.lengths() - SPLIT_HOLDOUT["train"], max_len + 1) - 1, 0, None)
        self.users = np.flatnonzero(pair_counts > 0)  # users with at least one training pair
        self.windows = windows[self.users]
        self.pair_counts = pair_counts[self.users]
        self.batch_size = batch_size
        self.bucket_by_length = bucket_by_length

    @property
    def num_positions(self) -> int:
        return int(self.pair_counts.sum())

    def __len__(self) -> int:
        return -(-len(self.users) // self.batch_size)

    def plan(self, rng: np.random.Generator) -> list[np.ndarray]:
        return batch_plan(self.pair_counts, self.batch_size, self.bucket_by_length, rng)

    def positions(self, rows: np.ndarray) -> int:
        """Labelled positions in the batch of these rows (each user contributes its pair count)."""
        return int(self.pair_counts[rows].sum())

    def make_batch(self, rows: np.ndarray) -> TrainBatch:
        width = int(self.pair_counts[rows].max()) + 1
        block = self.windows[rows, -width:]  # [B, width]
        inputs = block[:, :-1].copy()
        labels = block[:, 1:].copy()
        labels[inputs == PAD] = IGNORE  # a label needs at least one real input before it
        labels[labels == PAD] = IGNORE
        return TrainBatch(torch.from_numpy(inputs), torch.from_numpy(labels))

    def epoch(self, rng: np.random.Generator) -> Iterator[TrainBatch]:
        for rows in self.plan(rng):
            yield self.make_batch(rows)


@dataclass
class EvalBatch:
    users: np.ndarray  # [B] dense user index
    inputs: torch.Tensor  # [B, L] left-padded history window
    targets: torch.Tensor  # [B] item to rank
    seen_rows: torch.Tensor  # [S] batch row of each (row, item) pair in the full history
    seen_items: torch.Tensor  # [S]


def eval_batches(seqs: Sequences, split: str, max_len: int, batch_size: int) -> Iterator[EvalBatch]:
    """Every user once: input = history before the split's target, target = the held-out item."""
    holdout = SPLIT_HOLDOUT[split]
    lengths = seqs.lengths()
    windows = left_pad_windows(seqs, holdout + 1, max_len)  # [U, L] history before the target
    for start in range(0, seqs.num_users, batch_size):
        users = np.arange(start, min(start + batch_size, seqs.num_users))
        target_pos = seqs.offsets[users] + lengths[users] - holdout - 1
        rows, items = [], []
        for row, u in enumerate(users):
            history = seqs.items[seqs.offsets[u] : target_pos[row]]  # the full history, not only the window
            rows.append(np.full(len(history), row, dtype=np.int64))
            items.append(history.astype(np.int64))
        yield EvalBatch(
            users=users,
            inputs=torch.from_numpy(windows[users]),
            targets=torch.from_numpy(seqs.items[target_pos].astype(np.int64)),
            seen_rows=torch.from_numpy(np.concatenate(rows)),
            seen_items=torch.from_numpy(np.concatenate(items)),
        )
