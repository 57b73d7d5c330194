"""Full-ranking evaluation over the whole catalogue for every user of a split."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from seqrec_cli.core.metrics import metrics_at_k, pessimistic_ranks
from seqrec_cli.core.model import SeqRecModel
from seqrec_cli.core.runtime import Runtime
from seqrec_cli.core.scoring import chunked_ranks
from seqrec_cli.data.batching import eval_batches
from seqrec_cli.data.process import Sequences

Scorer = Callable[[torch.Tensor], torch.Tensor]  # [B, L] history windows -> [B, N + 1] scores


@torch.no_grad()
def rank_targets(scorer: Scorer, seqs: Sequences, split: str, max_len: int, batch_size: int,
                 filter_seen: bool, device: torch.device) -> np.ndarray:
    """1-based pessimistic rank of each user's held-out item for `split`, in user order."""
    ranks = []
    for batch in eval_batches(seqs, split, max_len, batch_size):
        scores = scorer(batch.inputs.to(device))  # [B, N + 1]
        exclude = None
        if filter_seen:
            exclude = torch.zeros_like(scores, dtype=torch.bool)  # [B, N + 1]
            exclude[batch.seen_rows.to(device), batch.seen_items.to(device)] = True
        ranks.append(pessimistic_ranks(scores, batch.targets.to(device), exclude).cpu().numpy())
    return np.concatenate(ranks)


@torch.no_grad()
def rank_targets_chunked(model: SeqRecModel, runtime: Runtime, seqs: Sequences, split: str, max_len: int,
                         batch_size: int, filter_seen: bool) -> np.ndarray:
    """Same ranks as rank_targets(model_scorer(...)), scoring the catalogue in chunks (any N fits)."""
    model.eval()
    weights = model.item_weights()  # [N + 1, D]
    ranks = []
    for batch in eval_batches(seqs, split, max_len, batch_size):
        with runtime.autocast():
            h = model.last_hidden(batch.inputs.to(runtime.device))  # [B, D]
        rows = batch.seen_rows.to(runtime.device) if filter_seen else None
        items = batch.seen_items.to(runtime.device) if filter_seen else None
        ranks.append(chunked_ranks(h, weights, batch.targets.to(runtime.device), rows, items).cpu().numpy())
    return np.concatenate(ranks)


def model_scorer(model: SeqRecModel, runtime: Runtime) -> Scorer:
    model.eval()

    def score(inputs: torch.Tensor) -> torch.Tensor:
        with runtime.autocast():
            return model.score_all(inputs)  # [B, N + 1]

    return score


def evaluate_split(model: SeqRecModel, seqs: Sequences, split: str, max_len: int, batch_size: int,
                   filter_seen: bool, ks: list[int], runtime: Runtime) -> tuple[dict[str, float], np.ndarray]:
    ranks = rank_targets_chunked(model, runtime, seqs, split, max_len, batch_size, filter_seen)
    return metrics_at_k(ranks, ks), ranks
