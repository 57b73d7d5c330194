"""Masked-item training samples for bidirectional encoders (BERT4Rec, hf_bert).

Same conventions as data/batching.py (items 1..N, PAD = 0, IGNORE = -100, left padding, the
training part of each history is s[:-2]). A masked input slot holds MASK = -1; the model swaps in
its learned [MASK] vector there. At inference a MASK is appended after the history and the output
at that slot scores the next item, so a share of training samples (last_item_mask_prob) masks
exactly the last item and nothing else: the one case inference asks about.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from seqrec_cli.data.batching import IGNORE, PAD, SPLIT_HOLDOUT, TrainBatch, sampled_plan
from seqrec_cli.data.process import Sequences
from seqrec_cli.data.windows import gather_windows, training_windows

MASK = -1


def mask_block(block: np.ndarray, rng: np.random.Generator, mask_prob: float,
               last_item_mask_prob: float) -> tuple[np.ndarray, np.ndarray]:
    """block [B, W] left-padded items -> (inputs with MASK, labels: the item where masked, else IGNORE).

    Every row with an item gets at least one mask, so no sample is wasted.
    """
    real = block != PAD  # [B, W]
    masked = (rng.random(block.shape) < mask_prob) & real  # [B, W]
    last_only = rng.random(len(block)) < last_item_mask_prob  # [B]
    masked[last_only] = False
    masked[last_only, -1] = real[last_only, -1]
    for row in np.flatnonzero(~masked.any(axis=1) & real.any(axis=1)):
        masked[row, rng.choice(np.flatnonzero(real[row]))] = True
    inputs = np.where(masked, MASK, block)
    labels = np.where(masked, block, IGNORE)
    return inputs, labels


class MaskedItemBatcher:
    """Training windows (data/windows.py) of max_len training items, masked afresh every epoch:
    each user's most recent window (`last`), or windows tiling the whole training part (`sliding`)."""

    def __init__(self, seqs: Sequences, max_len: int, batch_size: int, bucket_by_length: bool,
                 mask_prob: float, last_item_mask_prob: float, train_lengths: np.ndarray | None = None,
                 windows: str = "last", stride: int | None = None, per_user: int | None = None):
        # train_lengths: [U] leading items each user may train on (default: leave-one-out, n - 2)
        if train_lengths is None:
            train_lengths = seqs.lengths() - SPLIT_HOLDOUT["train"]
        self.table = training_windows(
            seqs.offsets, train_lengths, max_len, 1, windows, stride or max_len, per_user
        )
        self.users = self.table.users  # [W] user of each window (row)
        self.lengths = self.table.counts  # [W] items in each window
        self.items = seqs.items
        self.batch_size = batch_size
        self.bucket_by_length = bucket_by_length
        self.mask_prob = mask_prob
        self.last_item_mask_prob = last_item_mask_prob

    @property
    def num_positions(self) -> int | float:
        """Expected masked (labelled) positions per epoch (also over the window sample, when sampled)."""
        if self.table.per_user is None:
            return self.positions(np.arange(len(self.users)))
        keep = self.table.keep_probability()  # [W]
        random_part = (1 - self.last_item_mask_prob) * (
            keep * np.maximum(self.lengths * self.mask_prob, 1)
        ).sum()
        return max(1.0, float(random_part + self.last_item_mask_prob * keep.sum()))

    def __len__(self) -> int:
        return -(-self.table.sampled_count() // self.batch_size)

    def plan(self, rng: np.random.Generator) -> list[np.ndarray]:
        return sampled_plan(self.table, self.lengths, self.batch_size, self.bucket_by_length, rng)

    def positions(self, rows: np.ndarray) -> int:
        """Expected masked positions of these rows: the weight of their batch in an accumulated step
        (the draw itself happens in make_batch)."""
        random_part = (1 - self.last_item_mask_prob) * np.maximum(
            self.lengths[rows] * self.mask_prob, 1
        ).sum()
        return max(1, int(round(random_part + self.last_item_mask_prob * len(rows))))

    def make_batch(self, rows: np.ndarray, rng: np.random.Generator | None = None) -> TrainBatch:
        # Without an explicit rng the masks come from torch's generator, which the train loop seeds
        # per batch from (seed, epoch, batch index): a resumed run draws the same masks.
        rng = rng or np.random.default_rng(int(torch.randint(0, 2**62, (1,))))
        width = int(self.lengths[rows].max())
        block = gather_windows(
            self.items, self.table.ends[rows], self.lengths[rows], width, PAD
        )  # [B, width]
        inputs, labels = mask_block(block.astype(np.int64), rng, self.mask_prob, self.last_item_mask_prob)
        return TrainBatch(torch.from_numpy(inputs), torch.from_numpy(labels))

    def epoch(self, rng: np.random.Generator) -> Iterator[TrainBatch]:
        for rows in self.plan(rng):
            yield self.make_batch(rows, rng)
