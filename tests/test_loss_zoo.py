"""Sampled softmax, BCE, gBCE, label smoothing and temperature against hand-computed cases."""

from __future__ import annotations

import math

import pytest
import torch
from tests.test_losses import B, D, N, random_case

from seqrec_cli.core import losses
from seqrec_cli.core.losses import (
    LOSSES,
    bce_with_negatives,
    full_cross_entropy,
    gbce_beta,
    in_batch_sampler,
    make_loss,
    plain_full_cross_entropy,
    popularity_sampler,
    sampled_softmax,
    uniform_sampler,
)
from seqrec_cli.data.batching import IGNORE
from seqrec_cli.spec.models import LossKind, TrainSpec

torch.set_num_threads(1)

# One-hot item embeddings: the logit of item j is hidden[..., j - 1], so every case is readable.
EYE = torch.cat([torch.zeros(1, 3), torch.eye(3)])  # [4, 3], row 0 = PAD
HIDDEN = torch.tensor([[[9.0, 9.0, 9.0], [1.0, 2.0, 3.0], [0.5, -1.0, 2.0]]])  # [1, 3, 3]
LABELS = torch.tensor([[IGNORE, 2, 3]])


def lse(xs):
    return math.log(sum(math.exp(x) for x in xs))


def softplus(x):
    return math.log1p(math.exp(x))


def test_registry_keys_are_the_spec_choices():
    assert set(LOSSES) == set(LossKind.__args__)


def test_label_smoothing_and_temperature_hand_case():
    eps, tau = 0.1, 2.0
    rows = [([1.0, 2.0, 3.0], 1), ([0.5, -1.0, 2.0], 2)]  # (logits, index of the target)
    expected = 0.0
    for logits, t in rows:
        z = [x / tau for x in logits]
        expected += lse(z) - (1 - eps) * z[t] - eps * sum(z) / 3
    expected /= 2
    for fn in (full_cross_entropy, plain_full_cross_entropy):
        got = fn(HIDDEN, LABELS, EYE, label_smoothing=eps, temperature=tau).item()
        assert got == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("eps,tau", [(0.1, 1.0), (0.0, 0.5), (0.2, 3.0)])
def test_fused_smoothing_matches_plain_value_and_grads(eps, tau):
    hidden, labels, weights = random_case(4)
    h1, w1 = hidden.clone().requires_grad_(), weights.clone().requires_grad_()
    h2, w2 = hidden.clone().requires_grad_(), weights.clone().requires_grad_()
    a = full_cross_entropy(h1, labels, w1, label_smoothing=eps, temperature=tau)
    b = plain_full_cross_entropy(h2, labels, w2, label_smoothing=eps, temperature=tau)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    (2.0 * a).backward()
    (2.0 * b).backward()
    torch.testing.assert_close(h1.grad, h2.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(w1.grad, w2.grad, rtol=1e-5, atol=1e-6)
    assert torch.all(w1.grad[0] == 0)


def test_fused_rows_shrink_for_large_catalogues(monkeypatch):
    # An element budget of 30 logits with N + 1 = 12 columns leaves 2 rows per chunk.
    monkeypatch.setattr(losses, "CE_MAX_ELEMENTS", 30)
    hidden, labels, weights = random_case(8)
    h1, w1 = hidden.clone().requires_grad_(), weights.clone().requires_grad_()
    h2, w2 = hidden.clone().requires_grad_(), weights.clone().requires_grad_()
    a = full_cross_entropy(h1, labels, w1, label_smoothing=0.1)
    b = plain_full_cross_entropy(h2, labels, w2, label_smoothing=0.1)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    a.backward()
    b.backward()
    torch.testing.assert_close(h1.grad, h2.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(w1.grad, w2.grad, rtol=1e-5, atol=1e-6)


def fixed_sampler(items, q):
    return lambda target, k: (torch.tensor(items), torch.tensor(q))


def test_sampled_softmax_hand_case_with_logq_and_accidental_hit():
    # Negatives: item 1 (q = 0.5), item 3 (q = 0.25), item 2 (q = 0.25). K = 3.
    sampler = fixed_sampler([1, 3, 2], [0.5, 0.25, 0.25])
    got = sampled_softmax(HIDDEN, LABELS, EYE, sampler=sampler, num_negatives=3, logq_correction=True).item()
    k = 3
    # row 1: logits (1, 2, 3), target 2 -> negatives 1 and 3 (item 2 is an accidental hit, dropped)
    r1 = lse([2.0, 1.0 - math.log(k * 0.5), 3.0 - math.log(k * 0.25)]) - 2.0
    # row 2: logits (0.5, -1, 2), target 3 -> negatives 1 and 2
    r2 = lse([2.0, 0.5 - math.log(k * 0.5), -1.0 - math.log(k * 0.25)]) - 2.0
    assert got == pytest.approx((r1 + r2) / 2, rel=1e-6)

    plain = sampled_softmax(HIDDEN, LABELS, EYE, sampler=sampler, num_negatives=3, logq_correction=False,
                            temperature=0.5).item()
    r1 = lse([4.0, 2.0, 6.0]) - 4.0
    r2 = lse([4.0, 1.0, -2.0]) - 4.0
    assert plain == pytest.approx((r1 + r2) / 2, rel=1e-6)


@pytest.mark.parametrize("kind", ["uniform", "popularity"])
def test_logq_corrected_sampling_estimates_full_softmax(kind):
    # With many samples, exp-sum over negatives / (K q) estimates the full partition function.
    hidden, labels, weights = random_case(5)
    probs = torch.rand(N + 1) + 0.1
    probs[0] = 0.0
    probs /= probs.sum()
    sampler = uniform_sampler(N) if kind == "uniform" else popularity_sampler(probs)
    torch.manual_seed(0)
    full = full_cross_entropy(hidden, labels, weights).item()
    est = sampled_softmax(hidden, labels, weights, sampler=sampler, num_negatives=200_000).item()
    biased = sampled_softmax(
        hidden, labels, weights, sampler=sampler, num_negatives=200_000, logq_correction=False
    )
    assert est == pytest.approx(full, rel=0.01)
    assert abs(biased.item() - full) > 0.5  # without the correction it is a different objective


def test_in_batch_negatives_come_from_the_batch():
    probs = torch.tensor([0.0, 0.1, 0.2, 0.3, 0.4])
    target = torch.tensor([4, 4, 2, 1, 3])
    torch.manual_seed(0)
    items, q = in_batch_sampler(probs)(target, 3)
    assert len(items) == 3 and set(items.tolist()) <= set(target.tolist())
    torch.testing.assert_close(q, probs[items])
    items, _ = in_batch_sampler(probs)(target, 99)  # K above the batch: every position once
    assert sorted(items.tolist()) == sorted(target.tolist())


def test_gbce_beta_hand_values():
    assert gbce_beta(256, 3417, 0.0) == 1.0
    alpha = 256 / 3416
    assert gbce_beta(256, 3417, 0.75) == pytest.approx(alpha * (0.75 * (1 - 1 / alpha) + 1 / alpha))
    assert gbce_beta(256, 3417, 1.0) == pytest.approx(alpha)


@pytest.mark.parametrize("per_position", [True, False])
@pytest.mark.parametrize("t", [0.0, 0.75])
def test_bce_and_gbce_hand_case(t, per_position):
    k = 2
    torch.manual_seed(11)
    if per_position:  # the draws the loss will make with the same seed: k per labelled position
        negs = torch.randint(1, 4, (2, k)).tolist()
    else:  # k for the one sequence, shared by both positions
        negs = torch.randint(1, 4, (1, k)).tolist() * 2
    torch.manual_seed(11)
    got = bce_with_negatives(HIDDEN, LABELS, EYE, num_negatives=k, t=t, per_position=per_position).item()
    beta = 1.0 - t * (1.0 - k / 2)  # alpha = k / (N - 1) = 1 here
    expected = 0.0
    for (logits, target), pos_negs in zip((([1.0, 2.0, 3.0], 2), ([0.5, -1.0, 2.0], 3)), negs, strict=True):
        term = beta * softplus(-logits[target - 1])
        term += sum(softplus(logits[j - 1]) for j in pos_negs if j != target)  # hits dropped
        expected += term / (1 + k)
    assert got == pytest.approx(expected / 2, rel=1e-6)


def test_bce_per_position_negatives_differ_between_positions():
    # With k = 1 shared per sequence, all positions see one negative; per position they see many.
    hidden = torch.ones(1, 50, 3)
    labels = torch.full((1, 50), 1)
    w = torch.zeros(101, 3).requires_grad_()
    bce_with_negatives(hidden.requires_grad_(), labels, w, num_negatives=1, per_position=True).backward()
    touched = (w.grad[2:].abs().sum(dim=1) > 0).sum().item()  # rows pushed down as negatives
    assert touched > 10
    w.grad = None
    bce_with_negatives(hidden, labels, w, num_negatives=1, per_position=False).backward()
    assert (w.grad[2:].abs().sum(dim=1) > 0).sum().item() <= 1


def test_bce_shapes_and_ignored_positions():
    hidden, labels, weights = random_case(6)
    h = hidden.clone().requires_grad_()
    w = weights.clone().requires_grad_()
    loss = bce_with_negatives(h, labels, w, num_negatives=4, t=0.5)
    loss.backward()
    assert loss.shape == () and torch.isfinite(loss)
    assert torch.all(h.grad[labels == IGNORE] == 0) and h.grad[labels != IGNORE].abs().sum() > 0
    assert h.grad.shape == (B, 5, D) and w.grad.shape == (N + 1, D)


@pytest.mark.parametrize("kind", list(LossKind.__args__))
def test_make_loss_builds_every_kind(kind):
    hidden, labels, weights = random_case(7)
    popularity = torch.arange(N + 1, dtype=torch.float64)
    extra = {"negatives": "in_batch"} if kind == "sampled_softmax" else {}
    loss_fn = make_loss(TrainSpec(loss=kind, num_negatives=5, **extra), popularity)
    value = loss_fn(hidden.requires_grad_(), labels, weights)
    assert value.shape == () and torch.isfinite(value) and value.item() > 0
    value.backward()
    assert hidden.grad.abs().sum() > 0
    if kind == "full_ce":  # the default stays the very same function
        assert loss_fn is full_cross_entropy


def test_options_a_loss_would_ignore_are_spec_errors():
    with pytest.raises(ValueError, match="label_smoothing"):
        TrainSpec(loss="bce", label_smoothing=0.1)
    with pytest.raises(ValueError, match="temperature"):
        TrainSpec(loss="gbce", temperature=0.5)
    with pytest.raises(ValueError, match="negatives"):
        TrainSpec(loss="full_ce", negatives="popularity")
    with pytest.raises(ValueError, match="negatives_per"):
        TrainSpec(loss="sampled_softmax", negatives_per="sequence")
    TrainSpec(loss="sampled_softmax", negatives="popularity", temperature=0.5)
    TrainSpec(loss="gbce", negatives_per="sequence")


def test_per_position_negatives_score_all_path_equals_gather(monkeypatch):
    # Small catalogues score every item and pick k columns (chunked); large ones gather k rows.
    hidden, labels, weights = random_case(8)
    results = []
    for ratio in (0, 10**9):  # forces gather, then score-all
        monkeypatch.setattr(losses, "NEGATIVE_SCORE_ALL_RATIO", ratio)
        monkeypatch.setattr(losses, "CE_MAX_ELEMENTS", 3 * (N + 1))  # 3 rows a chunk: several chunks
        h = hidden.clone().requires_grad_()
        w = weights.clone().requires_grad_()
        torch.manual_seed(5)
        loss = bce_with_negatives(h, labels, w, num_negatives=6, t=0.75)
        loss.backward()
        results.append((loss, h.grad, w.grad))
    (l1, gh1, gw1), (l2, gh2, gw2) = results
    torch.testing.assert_close(l1, l2)
    torch.testing.assert_close(gh1, gh2)
    torch.testing.assert_close(gw1, gw2)
