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

from seqrec_cli.data.batching import IGNORE, PAD, SPLIT_HOLDOUT, TrainBatch, left_pad_windows
from seqrec_cli.data.process import Sequences

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
    """Each training user's most recent max_len training items, masked afresh every epoch."""

    def __init__(self, seqs: Sequences, max_len: int, batch_size: int, bucket_by_length: bool,
                 mask_prob: float, last_item_mask_prob: float):
        windows = left_pad_windows(seqs, SPLIT_HOLDOUT["train"], max_len)  # [U, L]
        lengths = np.clip(np.minimum(seqs.lengths() - SPLIT_HOLDOUT["train"], max_len), 0, None)
        self.users = np.flatnonzero(lengths > 0)
        self.windows = windows[self.users]
        self.lengths = lengths[self.users]
        self.batch_size = batch_size
        self.bucket_by_length = bucket_by_length
        self.mask_prob = mask_prob
        self.last_item_mask_prob = last_item_mask_prob

    @property
    def num_positions(self) -> int:
        """Expected masked (labelled) positions per epoch."""
        random_part = (1 - self.last_item_mask_prob) * np.maximum(self.lengths * self.mask_prob, 1).sum()
        return int(round(random_part + self.last_item_mask_prob * len(self.users)))

    def __len__(self) -> int:
        return -(-len(self.users) // self.batch_size)

    def epoch(self, rng: np.random.Generator) -> Iterator[TrainBatch]:
        if self.bucket_by_length:
            order = np.lexsort((rng.random(len(self.users)), self.lengths))
            batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
            rng.shuffle(batches)
        else:
            order = rng.permutation(len(self.users))
            batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        for rows in batches:
            width = int(self.lengths[rows].max())
            inputs, labels = mask_block(self.windows[rows, -width:], rng, self.mask_prob, self.last_item_mask_prob)
            yield TrainBatch(torch.from_numpy(inputs), torch.from_numpy(labels))
