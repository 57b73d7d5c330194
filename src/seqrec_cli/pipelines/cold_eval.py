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

from seqrec_cli.core.evaluation import Ranked
from seqrec_cli.core.metrics import metrics_at_k
from seqrec_cli.data.cold import candidates_per_user
from seqrec_cli.data.process import Sequences
from seqrec_cli.spec.models import ExperimentSpec


def cold_start_section(ranked: Ranked, seqs: Sequences, split: str, spec: ExperimentSpec, cold: list[int],
                       rankable: bool) -> dict:
    """The report's `cold_start` section, from the split's ranking (the engine's model scorer has
    already removed the items an id table cannot rank from its candidates)."""
    ranks = ranked.ranks.astype(np.float64)  # [T]
    is_cold = np.isin(ranked.target_items, np.asarray(cold, dtype=np.int64))  # [T]
    if not rankable:
        ranks = np.where(is_cold, np.inf, ranks)  # not "last of a short list": never recommended at all
    pair_users = ranked.users[ranked.case_of]  # [T]
    candidates = candidates_per_user(seqs, split, spec.eval.filter_seen)[pair_users[is_cold]]  # [C]
    chance = {f"HR@{k}": float(np.mean(np.minimum(k, candidates) / candidates)) if len(candidates) else 0.0
              for k in spec.eval.ks}
    return {
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
