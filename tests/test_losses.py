"""The fused full-softmax cross-entropy against plain autograd and a hand-computed case."""

from __future__ import annotations

import math

import pytest
import torch

from seqrec_cli.core import losses
from seqrec_cli.core.losses import full_cross_entropy, plain_full_cross_entropy
from seqrec_cli.data.batching import IGNORE

torch.set_num_threads(1)

B, L, D, N = 3, 5, 8, 11


def random_case(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    hidden = torch.randn(B, L, D, generator=gen, dtype=torch.float64).float()
    weights = torch.randn(N + 1, D, generator=gen).float()
    labels = torch.randint(1, N + 1, (B, L), generator=gen)
    labels[0, :2] = IGNORE  # left padding
    labels[2, 0] = IGNORE
    labels[1, 3] = IGNORE
    return hidden, labels, weights


@pytest.mark.parametrize("chunk", [256, 4, 5])
def test_fused_matches_plain_value_and_grads(monkeypatch, chunk):
    monkeypatch.setattr(losses, "CE_CHUNK", chunk)
    hidden, labels, weights = random_case()
    P = int((labels != IGNORE).sum())
    assert P == 11 and (chunk >= P or P % chunk)  # chunking leaves a ragged last chunk

    h1, w1 = hidden.clone().requires_grad_(), weights.clone().requires_grad_()
    h2, w2 = hidden.clone().requires_grad_(), weights.clone().requires_grad_()
    fused = full_cross_entropy(h1, labels, w1)
    plain = plain_full_cross_entropy(h2, labels, w2)
    assert fused.shape == () and torch.isfinite(fused)
    torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-6)

    # A non-trivial upstream gradient checks the scaling in backward as well.
    (3.0 * fused).backward()
    (3.0 * plain).backward()
    torch.testing.assert_close(h1.grad, h2.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(w1.grad, w2.grad, rtol=1e-5, atol=1e-6)
    assert h1.grad.abs().sum() > 0 and w1.grad.abs().sum() > 0
    assert torch.all(w1.grad[0] == 0)  # PAD row gets no gradient


def test_hand_computed_tiny_case():
    # D = 3, items 1..3 with one-hot embeddings: the logits are the hidden vectors themselves.
    weights = torch.tensor([[0.0, 0.0, 0.0],  # PAD
                            [1.0, 0.0, 0.0],
                            [0.0, 1.0, 0.0],
                            [0.0, 0.0, 1.0]])
    hidden = torch.tensor([[[9.0, 9.0, 9.0], [1.0, 2.0, 3.0], [0.5, -1.0, 2.0]]])  # [1, 3, 3]
    labels = torch.tensor([[IGNORE, 2, 3]])

    def lse(xs):
        return math.log(sum(math.exp(x) for x in xs))

    expected = ((lse([1.0, 2.0, 3.0]) - 2.0) + (lse([0.5, -1.0, 2.0]) - 2.0)) / 2
    assert full_cross_entropy(hidden, labels, weights).item() == pytest.approx(expected, rel=1e-6)
    assert plain_full_cross_entropy(hidden, labels, weights).item() == pytest.approx(expected, rel=1e-6)


def test_pad_logit_excluded_even_when_large():
    # If PAD's logit were counted it would dominate the log-sum-exp.
    weights = torch.tensor([[100.0], [1.0], [2.0]])
    hidden = torch.tensor([[[1.0]]])
    labels = torch.tensor([[1]])
    expected = math.log(math.exp(1.0) + math.exp(2.0)) - 1.0
    assert full_cross_entropy(hidden, labels, weights).item() == pytest.approx(expected, rel=1e-6)


def test_ignored_positions_do_not_matter():
    hidden, labels, weights = random_case(1)
    base = full_cross_entropy(hidden, labels, weights)
    changed = hidden.clone()
    changed[0, :2] = 1e3 * torch.randn(2, D)  # both IGNORE positions of row 0
    changed[1, 3] = -50.0
    assert full_cross_entropy(changed, labels, weights).item() == base.item()
    # ...while changing a labelled position does change the loss (the test can fail).
    changed[2, 4] += 5.0
    assert full_cross_entropy(changed, labels, weights).item() != base.item()

    h = changed.clone().requires_grad_()
    full_cross_entropy(h, labels, weights).backward()
    ignored = labels == IGNORE
    assert torch.all(h.grad[ignored] == 0)
    assert torch.all(h.grad[~ignored].abs().sum(-1) > 0)


def test_no_grad_gives_same_value(monkeypatch):
    monkeypatch.setattr(losses, "CE_CHUNK", 4)
    hidden, labels, weights = random_case(2)
    with_grad = full_cross_entropy(hidden.clone().requires_grad_(), labels, weights.clone().requires_grad_())
    with torch.no_grad():
        without = full_cross_entropy(
            hidden.clone().requires_grad_(), labels, weights.clone().requires_grad_()
        )
    plain_inputs = full_cross_entropy(hidden, labels, weights)  # no input needs a gradient
    assert not without.requires_grad
    assert without.item() == pytest.approx(with_grad.item(), rel=1e-6)
    assert plain_inputs.item() == pytest.approx(with_grad.item(), rel=1e-6)
