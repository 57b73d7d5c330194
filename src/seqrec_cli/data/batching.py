"""Batching convention, written once:

- Items are 1..N, PAD = 0; labels that carry no signal are IGNORE = -100.
- Sequences are LEFT-padded and keep the most recent `max_len` items, so the last column is
  always the most recent item. Training reads windows of the training part (data/windows.py):
  the most recent one per user (`last`), or all of them (`sliding`).
- Leave-one-out: for a user with items s[0..n-1], training uses s[:-2] (inputs s[:-3], labels
  s[1:-2]), validation predicts s[-2] from s[:-2], test predicts s[-1] from s[:-1] (so test inputs
  include the valid item). Valid and test targets never appear as training labels.
- Other splits (data/splits.py) give each user a training length and each evaluation case an input
  end and a target window; the batching below takes them as arrays.
- When the dataset has timestamps, batches can carry them as `times` [B, L] (seconds, float64),
  aligned with `inputs` (0 at padding), for encoders that use time (HSTU's time-gap bias).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from seqrec_cli.data.process import Sequences
from seqrec_cli.data.splits import leave_one_out
from seqrec_cli.data.windows import WindowTable, gather_windows, training_windows

PAD = 0
IGNORE = -100
SPLIT_HOLDOUT = {"train": 2, "valid": 1, "test": 0}  # items cut from the end of each user's history


def left_pad_windows(seqs: Sequences, holdout: int, width: int, lengths: np.ndarray | None = None,
                     values: np.ndarray | None = None) -> np.ndarray:
    """[U, width]: each user's items[:-holdout] (all when 0), or items[:lengths[u]] when `lengths`
    is given, most recent `width`, left-padded (int64). `values` [R] (e.g. the timestamps) is read
    instead of the items, in its own dtype."""
    values = seqs.items if values is None else values
    out = np.full((seqs.num_users, width), PAD, dtype=np.int64 if values is seqs.items else values.dtype)
    lengths = seqs.lengths() - holdout if lengths is None else np.asarray(lengths)  # [U]
    for u in range(seqs.num_users):
        n = min(int(lengths[u]), width)
        if n > 0:
            end = seqs.offsets[u] + lengths[u]
            out[u, width - n :] = values[end - n : end]
    return out


@dataclass
class TrainBatch:
    inputs: torch.Tensor  # [B, L] item ids, left-padded
    labels: torch.Tensor  # [B, L] next item or IGNORE
    times: torch.Tensor | None = None  # [B, L] timestamps of the inputs, when asked for


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


def sampled_plan(table: WindowTable, sizes: np.ndarray, batch_size: int, bucket_by_length: bool,
                 rng: np.random.Generator) -> list[np.ndarray]:
    """batch_plan over this epoch's sample of the windows (all of them unless sampled per user)."""
    rows = table.sample(rng)
    if rows is None:
        return batch_plan(sizes, batch_size, bucket_by_length, rng)
    return [rows[b] for b in batch_plan(sizes[rows], batch_size, bucket_by_length, rng)]


class TrainBatcher:
    """Next-item training pairs from training windows (data/windows.py) of each user's training part,
    batched by similar length.

    A batch is a gather of its windows, only as wide as its longest window, so padding costs
    nothing beyond that. Rows are windows; `users` [W] maps each to its user.
    """

    def __init__(self, seqs: Sequences, max_len: int, batch_size: int, bucket_by_length: bool,
                 train_lengths: np.ndarray | None = None, with_times: bool = False, windows: str = "last",
                 stride: int | None = None, per_user: int | None = None):
        # train_lengths: [U] leading items each user may train on (default: leave-one-out, n - 2)
        if train_lengths is None:
            train_lengths = seqs.lengths() - SPLIT_HOLDOUT["train"]
        self.table = training_windows(seqs.offsets, train_lengths, max_len + 1, 2, windows, stride, per_user)
        self.users = self.table.users
        self.pair_counts = self.table.counts - 1  # [W] labelled positions of each window
        self.items = seqs.items
        self.timestamps = seqs.timestamps if with_times else None  # gathered beside the inputs when asked for
        self.batch_size = batch_size
        self.bucket_by_length = bucket_by_length

    @property
    def num_positions(self) -> int | float:
        """Labelled positions per epoch (the expectation when windows are sampled per epoch)."""
        if self.table.per_user is None:
            return int(self.pair_counts.sum())
        return float((self.pair_counts * self.table.keep_probability()).sum())

    def __len__(self) -> int:
        return -(-self.table.sampled_count() // self.batch_size)

    def plan(self, rng: np.random.Generator) -> list[np.ndarray]:
        return sampled_plan(self.table, self.pair_counts, self.batch_size, self.bucket_by_length, rng)

    def positions(self, rows: np.ndarray) -> int:
        """Labelled positions in the batch of these rows (each window contributes its pair count)."""
        return int(self.pair_counts[rows].sum())

    def make_batch(self, rows: np.ndarray) -> TrainBatch:
        width = int(self.pair_counts[rows].max()) + 1
        ends, counts = self.table.ends[rows], self.table.counts[rows]
        block = gather_windows(self.items, ends, counts, width, PAD).astype(np.int64)  # [B, width]
        inputs = block[:, :-1].copy()
        labels = block[:, 1:].copy()
        labels[inputs == PAD] = IGNORE  # a label needs at least one real input before it
        labels[labels == PAD] = IGNORE
        times = None
        if self.timestamps is not None:
            times = torch.from_numpy(gather_windows(self.timestamps, ends, counts, width, 0)[:, :-1].copy())
        return TrainBatch(torch.from_numpy(inputs), torch.from_numpy(labels), times)  # times [B, width-1]

    def epoch(self, rng: np.random.Generator) -> Iterator[TrainBatch]:
        for rows in self.plan(rng):
            yield self.make_batch(rows)


@dataclass
class EvalBatch:
    users: np.ndarray  # [B] dense user index
    inputs: torch.Tensor  # [B, W] left-padded history window, W = min(max_len, longest history in the batch)
    targets: torch.Tensor  # [B] first target of each row
    seen_rows: torch.Tensor  # [S] batch row of each (row, item) pair in the full history
    seen_items: torch.Tensor  # [S]
    target_rows: torch.Tensor  # [T] batch row of each (row, target) pair; distinct targets per row
    target_items: torch.Tensor  # [T]
    cases: np.ndarray  # [B] case index within the split
    history_len: np.ndarray  # [B] full history length before the target (not capped at max_len)
    times: torch.Tensor | None = None  # [B, W] timestamps of `inputs` when the dataset has them


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenated np.arange(start, start + length) for each pair, without a Python loop."""
    total = int(lengths.sum())
    shift = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)  # [total]
    return np.arange(total, dtype=np.int64) + shift


def _distinct_targets(
    seqs: Sequences, bases: np.ndarray, cases, idx: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(row, item) pairs of each case's distinct targets, in time order within a row."""
    counts = (cases.target_end[idx] - cases.target_start[idx]).astype(np.int64)  # [B]
    if (counts == 1).all():  # leave-one-out: one target per row, nothing to deduplicate
        return np.arange(len(idx), dtype=np.int64), seqs.items[bases + cases.target_start[idx]].astype(
            np.int64
        )
    rows, items = [], []
    for row, c in enumerate(idx):
        window = seqs.items[bases[row] + cases.target_start[c] : bases[row] + cases.target_end[c]].astype(
            np.int64
        )
        _, first = np.unique(window, return_index=True)
        distinct = window[np.sort(first)]
        rows.append(np.full(len(distinct), row, dtype=np.int64))
        items.append(distinct)
    return np.concatenate(rows), np.concatenate(items)


def case_batches(
    seqs: Sequences, cases, max_len: int, batch_size: int, trim: bool = False
) -> Iterator[EvalBatch]:
    """Batches of evaluation cases (data.splits.EvalCases): input = items[:input_end] (the most recent
    max_len of it), targets = the distinct items of items[target_start:target_end]. With `trim`, a
    batch is only as wide as its longest window (else always max_len). Built with array indexing
    (no per-case Python loop), since validation rebuilds them every epoch."""
    for start in range(0, len(cases), batch_size):
        idx = np.arange(start, min(start + batch_size, len(cases)))
        users = cases.users[idx]
        hist_len = cases.input_end[idx].astype(np.int64)  # [B]
        width = max(1, min(max_len, int(hist_len.max()))) if trim else max_len
        bases = seqs.offsets[users].astype(np.int64)  # [B]
        ends = bases + hist_len  # [B]
        pos = ends[:, None] - width + np.arange(width)  # [B, W] flat positions of each window slot
        real = pos >= (ends - np.minimum(hist_len, width))[:, None]  # [B, W] False on the left padding
        flat = np.where(real, pos, 0)
        inputs = np.where(real, seqs.items[flat], PAD).astype(np.int64)  # [B, W]
        times = None
        if seqs.timestamps is not None:
            times = np.where(real, seqs.timestamps[flat], 0).astype(seqs.timestamps.dtype)  # [B, W]
        seen_rows = np.repeat(
            np.arange(len(idx), dtype=np.int64), hist_len
        )  # full histories, not only the window
        seen_items = seqs.items[_ranges(bases, hist_len)].astype(np.int64)
        target_rows, target_items = _distinct_targets(seqs, bases, cases, idx)
        first_of_row = np.searchsorted(target_rows, np.arange(len(idx)))
        yield EvalBatch(
            users=users,
            inputs=torch.from_numpy(inputs),
            targets=torch.from_numpy(target_items[first_of_row]),
            seen_rows=torch.from_numpy(seen_rows),
            seen_items=torch.from_numpy(seen_items),
            target_rows=torch.from_numpy(target_rows),
            target_items=torch.from_numpy(target_items),
            cases=idx,
            history_len=hist_len,
            times=None if times is None else torch.from_numpy(times),
        )


def eval_batches(seqs: Sequences, split: str, max_len: int, batch_size: int) -> Iterator[EvalBatch]:
    """Leave-one-out: every user once, input = history before the split's target, target = the
    held-out item."""
    return case_batches(seqs, leave_one_out(seqs).cases[split], max_len, batch_size)
