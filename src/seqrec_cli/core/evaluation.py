"""Full-ranking evaluation over the whole catalogue for every user of a split."""

from __future__ import annotations

import numpy as np
import torch

from seqrec_cli.core.metrics import metrics_at_k, pessimistic_ranks
from seqrec_cli.core.model import SeqRecModel
from seqrec_cli.core.runtime import Runtime
from seqrec_cli.data.batching import eval_batches
from seqrec_cli.data.process import Sequences


@torch.no_grad()
def rank_targets(model: SeqRecModel, seqs: Sequences, split: str, max_len: int, batch_size: int,
                 filter_seen: bool, runtime: Runtime) -> np.ndarray:
    """1-based pessimistic rank of each user's held-out item for `split`, in user order."""
    model.eval()
    ranks = []
    for batch in eval_batches(seqs, split, max_len, batch_size):
        inputs = batch.inputs.to(runtime.device)  # [B, L]
        with runtime.autocast():
            scores = model.score_all(inputs)  # [B, N + 1]
        exclude = None
        if filter_seen:
            exclude = torch.zeros_like(scores, dtype=torch.bool)  # [B, N + 1]
            exclude[batch.seen_rows.to(runtime.device), batch.seen_items.to(runtime.device)] = True
        ranks.append(pessimistic_ranks(scores, batch.targets.to(runtime.device), exclude).cpu().numpy())
    return np.concatenate(ranks)


def evaluate_split(model: SeqRecModel, seqs: Sequences, split: str, max_len: int, batch_size: int,
                   filter_seen: bool, ks: list[int], runtime: Runtime) -> tuple[dict[str, float], np.ndarray]:
    ranks = rank_targets(model, seqs, split, max_len, batch_size, filter_seen, runtime)
    return metrics_at_k(ranks, ks), ranks
