"""Model scoring through the evaluation engine: catalogue blocks of any size give the ranks of the
dense whole-catalogue scorer, and ties stay pessimistic (a collapsed model ranks every target last)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tests.test_split import make_seqs

from seqrec_cli.core.evaluation import ModelScorer, RankOptions, rank_cases, rank_targets
from seqrec_cli.core.model import SeqRecModel
from seqrec_cli.core.runtime import resolve_runtime
from seqrec_cli.data.splits import leave_one_out
from seqrec_cli.spec.models import ModelSpec

torch.set_num_threads(1)
D = 8


def small_model(seqs) -> SeqRecModel:
    torch.manual_seed(0)
    return SeqRecModel(ModelSpec(hidden=D, heads=2, layers=1, max_len=4, dropout=0.0), seqs.num_items).eval()


@pytest.mark.parametrize("chunk", [1, 3, 4, 1000])
def test_blocked_model_ranks_equal_the_dense_scorer(chunk):
    seqs = make_seqs()
    model = small_model(seqs)
    runtime = resolve_runtime("cpu", "fp32")
    for split in ("valid", "test"):
        for filter_seen in (True, False):
            dense = rank_targets(model.score_all, seqs, split, 4, 2, filter_seen, runtime.device)
            blocked = rank_cases(ModelScorer(model, runtime), seqs, leave_one_out(seqs).cases[split],
                                 RankOptions(4, 2, filter_seen, chunk_items=chunk), runtime.device).ranks
            assert np.array_equal(dense, blocked)


def test_collapsed_model_ranks_every_target_last():
    seqs = make_seqs()
    model = small_model(seqs)
    with torch.no_grad():
        model.item_emb.weight[1:] = 0.5  # every item identical: all scores tie
    runtime = resolve_runtime("cpu", "fp32")
    ranks = rank_cases(ModelScorer(model, runtime), seqs, leave_one_out(seqs).cases["test"],
                       RankOptions(4, 2, False, chunk_items=3), runtime.device).ranks
    assert np.array_equal(ranks, np.full(len(ranks), seqs.num_items))


@pytest.mark.parametrize("chunk", [2, 1000])
def test_id_table_never_recommends_held_out_items_and_misses_them_as_targets(chunk):
    seqs = make_seqs()
    targets = leave_one_out(seqs).cases["test"]
    test_items = seqs.items[targets.target_start]  # [U] each user's test item
    held_out = np.unique(test_items[:2])  # at least one user's target is held out
    model = small_model(seqs)
    model.hold_out_items(torch.from_numpy(held_out))
    runtime = resolve_runtime("cpu", "fp32")
    ranked = rank_cases(ModelScorer(model, runtime), seqs, targets,
                        RankOptions(4, 2, False, top_k=seqs.num_items, chunk_items=chunk), runtime.device)
    assert not np.isin(ranked.topk, held_out).any()
    is_held = np.isin(test_items, held_out)
    # ranked after every rankable candidate: the catalogue minus the held-out items
    assert np.array_equal(ranked.ranks[is_held], np.full(is_held.sum(), seqs.num_items - len(held_out) + 1))
    # a text table scores them from their text, so nothing is excluded there
    text_spec = ModelSpec(hidden=D, max_len=4, items="text", text={"template": "{title}"})
    text_model = SeqRecModel(text_spec, seqs.num_items, text_vectors=torch.randn(seqs.num_items + 1, 5))
    text_model.hold_out_items(torch.from_numpy(held_out))
    assert text_model.unrankable_items() is None
