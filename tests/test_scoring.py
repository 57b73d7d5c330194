"""Chunked catalogue scoring: ranks and top-k equal the unchunked path, ties stay pessimistic."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tests.test_split import make_seqs

from seqrec_cli.core import scoring
from seqrec_cli.core.evaluation import model_scorer, rank_targets, rank_targets_chunked
from seqrec_cli.core.metrics import pessimistic_ranks
from seqrec_cli.core.model import SeqRecModel
from seqrec_cli.core.runtime import resolve_runtime
from seqrec_cli.core.scoring import chunked_ranks, chunked_topk
from seqrec_cli.data.batching import PAD
from seqrec_cli.spec.models import ModelSpec

torch.set_num_threads(1)

B, D, N = 3, 8, 11
CHUNKS = [1, 3, 5, 12, 100]


def case(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    h = torch.randn(B, D, generator=gen)
    w = torch.randn(N + 1, D, generator=gen)
    targets = torch.tensor([4, 11, 1])
    rows = torch.tensor([0, 0, 1, 1, 2, 2])
    items = torch.tensor([2, 4, 10, 7, 11, 3])  # row 0 has its own target among the seen items
    return h, w, targets, rows, items


def full_scores(h, w):
    s = h @ w.T  # [B, N + 1]
    s[:, PAD] = float("-inf")
    return s


@pytest.mark.parametrize("chunk", CHUNKS)
def test_chunked_ranks_equal_unchunked(chunk):
    h, w, targets, rows, items = case()
    exclude = torch.zeros(B, N + 1, dtype=torch.bool)
    exclude[rows, items] = True
    expected = pessimistic_ranks(full_scores(h, w), targets, exclude)
    torch.testing.assert_close(chunked_ranks(h, w, targets, rows, items, chunk=chunk), expected)
    torch.testing.assert_close(chunked_ranks(h, w, targets, chunk=chunk), pessimistic_ranks(full_scores(h, w), targets))


@pytest.mark.parametrize("chunk", CHUNKS)
def test_collapsed_scores_rank_last(chunk):
    # Every item scores the same: the target must rank after all other N - 1 candidates, not first.
    h, _, targets, rows, items = case()
    w = torch.ones(N + 1, D)
    assert chunked_ranks(h, w, targets, chunk=chunk).tolist() == [N] * B
    # with seen items removed (row 0 loses 1 other item: its item 4 is the target itself)
    assert chunked_ranks(h, w, targets, rows, items, chunk=chunk).tolist() == [N - 1, N - 2, N - 2]


def test_non_finite_target_ranks_after_finite_candidates():
    h, w, targets, _, _ = case()
    w[4] = float("nan")
    ranks = chunked_ranks(h, w, targets, chunk=5)
    assert ranks[0].item() == N  # NaN target behind the 10 other finite items


@pytest.mark.parametrize("chunk", CHUNKS)
def test_chunked_topk_equals_unchunked(chunk):
    h, w, _, rows, items = case(1)
    s = full_scores(h, w)
    s[rows, items] = float("-inf")
    expected_s, expected_i = s[:, 1:].topk(6, dim=1)
    got_s, got_i = chunked_topk(h, w, 6, rows, items, chunk=chunk)
    torch.testing.assert_close(got_s, expected_s)
    assert torch.equal(got_i, expected_i + 1)
    assert not (got_i == PAD).any()


def test_evaluation_ranks_equal_the_unchunked_scorer(monkeypatch):
    monkeypatch.setattr(scoring, "SCORE_CHUNK", 4)
    seqs = make_seqs()
    torch.manual_seed(0)
    model = SeqRecModel(ModelSpec(hidden=D, heads=2, layers=1, max_len=4, dropout=0.0), seqs.num_items).eval()
    runtime = resolve_runtime("cpu", "fp32")
    for split in ("valid", "test"):
        for filter_seen in (True, False):
            old = rank_targets(model_scorer(model, runtime), seqs, split, 4, 2, filter_seen, runtime.device)
            new = rank_targets_chunked(model, runtime, seqs, split, 4, 2, filter_seen)
            assert np.array_equal(old, new)
