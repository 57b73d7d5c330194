"""Evaluation when the dataset holds items out of training (data.cold_items).

A model with an `id` item table has nothing but an untrained random row for a cold item, so it
cannot rank one: cold items are removed from its candidates (score -inf) and a cold target gets
rank infinity (a miss at every K), which reports as zero; the headline metrics count it as a miss
too (core.evaluation.ModelScorer). Text-based tables (text, id+text) score cold items from their text.
The report adds metrics over the users whose target is cold, over the rest, and the chance level
(uniform random scores) of the cold part.
"""

from __future__ import annotations

import numpy as np

from seqrec_cli.core.evaluation import evaluate_split
from seqrec_cli.core.metrics import metrics_at_k
from seqrec_cli.core.model import SeqRecModel
from seqrec_cli.core.runtime import Runtime
from seqrec_cli.data.cold import candidates_per_user, split_targets
from seqrec_cli.data.process import Sequences
from seqrec_cli.spec.models import ExperimentSpec


def evaluate_with_cold(model: SeqRecModel, seqs: Sequences, split: str, spec: ExperimentSpec, runtime: Runtime,
                       cold: list[int]) -> tuple[dict[str, float], np.ndarray, dict]:
    """(metrics over all users, ranks, the report's `cold_start` section)."""
    # The engine's model scorer already removes items an id table cannot rank from its candidates.
    rankable = model.unrankable_items() is None
    _, ranks = evaluate_split(model, seqs, split, spec.model.max_len, spec.eval.batch_size, spec.eval.filter_seen,
                              spec.eval.ks, runtime)
    ranks = ranks.astype(np.float64)
    is_cold = np.isin(split_targets(seqs, split), np.asarray(cold, dtype=np.int64))  # [U]
    if not rankable:
        ranks = np.where(is_cold, np.inf, ranks)  # not "last of a short list": never recommended at all
    candidates = candidates_per_user(seqs, split, spec.eval.filter_seen)[is_cold]  # [C]
    chance = {f"HR@{k}": float(np.mean(np.minimum(k, candidates) / candidates)) if len(candidates) else 0.0
              for k in spec.eval.ks}
    section = {
        "cold_items": len(cold),
        "cold_targets": int(is_cold.sum()),
        "rankable": rankable,
        "note": "items held out of training; an id item table cannot rank them (they are removed from its "
                "candidates and a cold target counts as a miss at every K)" if not rankable else
                "items held out of training, ranked from their text",
        "cold_metrics": metrics_at_k(ranks[is_cold], spec.eval.ks) if is_cold.any() else {},
        "warm_metrics": metrics_at_k(ranks[~is_cold], spec.eval.ks) if (~is_cold).any() else {},
        "cold_chance": chance,
    }
    return metrics_at_k(ranks, spec.eval.ks), ranks, section
