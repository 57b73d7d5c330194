"""Which training batches an encoder needs: the one place that dispatches on the encoder's objective."""

from __future__ import annotations

import numpy as np
import torch

from seqrec_cli.core.baselines import training_popularity
from seqrec_cli.core.encoders import ENCODERS
from seqrec_cli.data.batching import PAD, TrainBatcher
from seqrec_cli.data.masked_batching import MaskedItemBatcher
from seqrec_cli.data.process import Sequences
from seqrec_cli.spec.models import ModelSpec, TrainSpec


def make_train_batcher(model: ModelSpec, train: TrainSpec, seqs: Sequences,
                       train_lengths: np.ndarray | None = None) -> TrainBatcher | MaskedItemBatcher:
    """train_lengths: each user's training prefix (the split plan's; default leave-one-out)."""
    windows = {"windows": train.windows, "stride": train.window_stride, "per_user": train.windows_per_user}
    if ENCODERS[model.encoder].objective == "masked_item":
        return MaskedItemBatcher(seqs, model.max_len, train.batch_size, train.bucket_by_length,
                                 model.mask_prob, model.last_item_mask_prob, train_lengths=train_lengths,
                                 **windows)
    return TrainBatcher(
        seqs,
        model.max_len,
        train.batch_size,
        train.bucket_by_length,
        train_lengths=train_lengths,
        with_times=getattr(ENCODERS[model.encoder], "uses_times", False),
        **windows,
    )


def training_item_counts(seqs: Sequences) -> torch.Tensor:
    """[N + 1] interaction counts in the training part of the histories (PAD = 0): the negative
    samplers' q."""
    counts = training_popularity(seqs).clone()  # [N + 1]
    counts[PAD] = 0.0
    return counts
