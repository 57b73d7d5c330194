"""SeqRecModel + SASRec encoder: shapes, left-padding invariance, PAD masking, determinism (causality of
every causal encoder, SASRec included, is tested in test_encoders.py)."""

from __future__ import annotations

import pytest
import torch

from seqrec_cli.core.model import SeqRecModel
from seqrec_cli.data.batching import PAD
from seqrec_cli.spec.models import ModelSpec

torch.set_num_threads(1)

B, L, D, N = 3, 5, 8, 11
ATOL = 1e-5


def make_model(dropout: float = 0.0, seed: int = 0) -> SeqRecModel:
    torch.manual_seed(seed)
    model = SeqRecModel(ModelSpec(hidden=D, heads=2, layers=2, max_len=L, dropout=dropout), num_items=N)
    return model.eval()


def left_pad(items: list[int], width: int) -> list[int]:
    return [PAD] * (width - len(items)) + items


@pytest.fixture(scope="module")
def model() -> SeqRecModel:
    return make_model()


def batch() -> torch.Tensor:
    return torch.tensor([left_pad([3, 7, 1, 11, 2], L), left_pad([5, 4], L), left_pad([9, 9, 6], L)])


def test_shapes(model):
    x = batch()
    with torch.no_grad():
        h = model.encode(x)
        last = model.last_hidden(x)
        scores = model.score_all(x)
    assert h.shape == (B, L, D)
    assert last.shape == (B, D)
    assert scores.shape == (B, N + 1)
    assert model.item_weights().shape == (N + 1, D)
    torch.testing.assert_close(last, h[:, -1])
    assert scores.dtype == torch.float32


def test_padding_invariance_widths(model):
    history = [4, 10, 2]
    with torch.no_grad():
        outs = {w: model.encode(torch.tensor([left_pad(history, w)])) for w in (3, 4, 5)}
        scores = {w: model.score_all(torch.tensor([left_pad(history, w)])) for w in (3, 4, 5)}
    for w in (4, 5):
        # every real position, not only the last, is the same whatever the padding
        torch.testing.assert_close(outs[w][0, -3:], outs[3][0], atol=ATOL, rtol=0)
        torch.testing.assert_close(scores[w], scores[3], atol=ATOL, rtol=0)


def test_padding_invariance_in_batch(model):
    history = [6, 1]
    alone = torch.tensor([history])  # width 2, no padding at all
    mixed = torch.tensor([left_pad([3, 7, 1, 11, 2], L), left_pad(history, L), left_pad([8, 8, 5, 2], L)])
    with torch.no_grad():
        s_alone = model.score_all(alone)
        s_mixed = model.score_all(mixed)
        h_alone = model.last_hidden(alone)
        h_mixed = model.last_hidden(mixed)
    torch.testing.assert_close(h_mixed[1], h_alone[0], atol=ATOL, rtol=0)
    torch.testing.assert_close(s_mixed[1], s_alone[0], atol=ATOL, rtol=0)
    assert not torch.allclose(s_mixed[0], s_mixed[1], atol=1e-4)  # rows do differ


def test_padding_invariance_holds_after_training_step():
    # Fresh init has a zero PAD embedding; a trained model must stay invariant too, so perturb
    # every parameter (including the PAD row, which padding must never read).
    model = make_model(seed=1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    history = [2, 9, 5]
    with torch.no_grad():
        a = model.score_all(torch.tensor([left_pad(history, 3)]))
        b = model.score_all(torch.tensor([left_pad(history, 5)]))
    torch.testing.assert_close(a, b, atol=ATOL, rtol=0)


def test_position_matters(model):
    # Positions counted back from the most recent item: reordering the history changes the output.
    with torch.no_grad():
        a = model.score_all(torch.tensor([[1, 2, 3]]))
        b = model.score_all(torch.tensor([[3, 2, 1]]))
    assert not torch.allclose(a[:, 1:], b[:, 1:], atol=1e-4)


def test_score_all_masks_pad(model):
    with torch.no_grad():
        scores = model.score_all(batch())
    assert torch.all(scores[:, PAD] == float("-inf"))
    assert torch.isfinite(scores[:, 1:]).all()
    # The real scores are the dot products with the tied item embedding.
    with torch.no_grad():
        expected = model.last_hidden(batch()) @ model.item_weights()[1:].T
    torch.testing.assert_close(scores[:, 1:], expected, atol=ATOL, rtol=0)


def test_dropout_off_in_eval_deterministic():
    model = make_model(dropout=0.5, seed=2)
    x = batch()
    model.eval()
    with torch.no_grad():
        a = model.score_all(x)
        b = model.score_all(x)
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    model.train()
    torch.manual_seed(0)
    with torch.no_grad():
        c = model.encode(x)
        d = model.encode(x)
    assert not torch.allclose(c, d)  # dropout is active in train mode, so eval really turned it off


@pytest.mark.parametrize("std,expected", [(None, 1 / 64**0.5), (0.02, 0.02)])
def test_item_table_init_scale(std, expected):
    torch.manual_seed(0)
    model = SeqRecModel(ModelSpec(hidden=64, max_len=5, emb_init_std=std), 2000)
    rows = model.item_emb.weight[1:]  # [N, D]
    assert abs(rows.std().item() - expected) < 0.05 * expected
    assert torch.all(model.item_emb.weight[PAD] == 0)
    masked = SeqRecModel(ModelSpec(encoder="bert4rec", hidden=256, heads=2, max_len=5, emb_init_std=std), 20)
    # [MASK] stands in for an item row, so it starts at the item rows' scale (256 draws: 15% slack)
    assert abs(masked.encoder.mask_token.std().item() - (std or 1 / 16)) < 0.15 * (std or 1 / 16)
