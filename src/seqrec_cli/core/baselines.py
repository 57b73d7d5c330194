"""Non-neural reference scorers, ranked through the same pessimistic full-ranking path as models."""

from __future__ import annotations

import numpy as np
import torch

from seqrec_cli.data.batching import PAD, SPLIT_HOLDOUT
from seqrec_cli.data.process import Sequences


def training_popularity(seqs: Sequences) -> torch.Tensor:
    """[N + 1] interaction counts over each user's training part only (no valid/test leakage)."""
    counts = np.zeros(seqs.num_items + 1, dtype=np.float64)
    holdout = SPLIT_HOLDOUT["train"]
    for u in range(seqs.num_users):
        items = seqs.user_items(u)
        np.add.at(counts, items[: max(len(items) - holdout, 0)], 1.0)
    scores = torch.from_numpy(counts).float()  # [N + 1]
    scores[PAD] = float("-inf")
    return scores
