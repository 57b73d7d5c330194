"""Training objectives. Registry keys are the spec's `train.loss` choices.

Every loss has one call signature, loss(hidden [B, L, D], labels [B, L], item_weights [N + 1, D]),
and returns the mean over labelled positions (full_ce also takes model.repeat_bias's offsets).
`make_loss(train_spec, popularity)` builds it from the spec; the popularity counts are the only data
a sampler needs. Random negatives come from torch's global generator, which the train loop seeds and
checkpoints.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F

from seqrec_cli.core.repeat import WindowOffsets
from seqrec_cli.data.batching import IGNORE, PAD
from seqrec_cli.spec.models import TrainSpec

LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

CE_CHUNK = 256  # rows of logits alive at once; small enough to stay in cache on a CPU
CE_MAX_ELEMENTS = 1 << 24  # ...and at most this many logits (64 MB fp32): 16 rows at 1M items
NEGATIVE_SCORE_ALL_RATIO = (
    64  # per-position negatives: score all items when N + 1 <= this x k (benchmarks/bce_negatives.py)
)


class _FusedSoftmaxCE(torch.autograd.Function):
    """Full-softmax cross-entropy whose gradient is computed in the same sweep as the loss.

    Each chunk of rows makes its logits once, takes one exp pass for both the log-sum-exp and the
    softmax, and folds (softmax - onehot) straight into dh and dW. Plain autograd would keep the
    whole [P, N] logit matrix and exponentiate it twice; this is about 2x faster on a CPU and never
    holds more than [CE_CHUNK, N] logits (fewer rows above 65K items: CE_MAX_ELEMENTS).
    """

    @staticmethod
    def forward(
        ctx, h: torch.Tensor, weights: torch.Tensor, target: torch.Tensor, smoothing: float = 0.0
    ) -> torch.Tensor:
        P, N = h.shape[0], weights.shape[0] - 1
        rows_per_chunk = max(1, min(CE_CHUNK, CE_MAX_ELEMENTS // (N + 1)))  # CE_CHUNK up to 65K items
        want_grad = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        dh = torch.empty_like(h) if want_grad else None  # [P, D]
        dw = torch.zeros_like(weights) if want_grad else None  # [N + 1, D]
        total = torch.zeros((), dtype=torch.float64, device=h.device)
        for start in range(0, P, rows_per_chunk):
            hc = h[start : start + rows_per_chunk]  # [C, D]
            tc = target[start : start + rows_per_chunk]  # [C]
            rows = torch.arange(len(hc), device=h.device)  # [C]
            p = hc @ weights.T  # [C, N + 1]
            p[:, PAD] = float("-inf")
            target_logit = p[rows, tc]  # [C]
            if smoothing:  # the smoothed target puts smoothing/N on every real item
                target_logit = (1.0 - smoothing) * target_logit + smoothing * p[:, 1:].mean(dim=1)  # [C]
            peak = p.max(dim=1, keepdim=True).values  # [C, 1]
            p.sub_(peak).exp_()
            norm = p.sum(dim=1, keepdim=True)  # [C, 1]
            total += (peak.squeeze(1) + norm.squeeze(1).log() - target_logit).sum()
            if want_grad:
                p.div_(norm)  # softmax
                if smoothing:
                    p[:, 1:] -= smoothing / N
                p[rows, tc] -= 1.0 - smoothing  # d loss / d logits (before the 1/P of the mean)
                torch.mm(p, weights, out=dh[start : start + rows_per_chunk])
                dw.addmm_(p.T, hc)
        if want_grad:
            ctx.save_for_backward(dh, dw)
        return (total / P).to(h.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        dh, dw = ctx.saved_tensors
        scale = grad / dh.shape[0]
        return dh * scale, dw * scale, None, None


def _labelled(hidden: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    keep = labels != IGNORE  # [B, L]
    return hidden[keep], labels[keep]  # [P, D], [P]


def full_cross_entropy(hidden: torch.Tensor, labels: torch.Tensor, item_weights: torch.Tensor, *,
                       label_smoothing: float = 0.0, temperature: float = 1.0,
                       offsets: WindowOffsets | None = None) -> torch.Tensor:
    """Softmax cross-entropy over the whole catalogue. hidden [B, L, D], labels [B, L], weights [N + 1, D].

    label_smoothing spreads that share of the target over all N real items (never PAD);
    temperature divides every logit. offsets (model.repeat_bias, one row per [B, L] position) are added
    to the logits before the softmax; that path materialises the [P, N + 1] logits.
    """
    if offsets is not None:
        return plain_full_cross_entropy(hidden, labels, item_weights, label_smoothing=label_smoothing,
                                        temperature=temperature, offsets=offsets)
    h, target = _labelled(hidden, labels)  # [P, D], [P]
    # fp32 math for the softmax even under bf16 autocast: log-sum-exp over many items needs it.
    h = h.float() if temperature == 1.0 else h.float() / temperature  # [P, D]
    # Autocast is switched off here, or it would turn the fused matmuls back into bf16 ones.
    with torch.autocast(device_type=h.device.type, enabled=False):
        return _FusedSoftmaxCE.apply(h, item_weights.float(), target, label_smoothing)


def plain_full_cross_entropy(hidden: torch.Tensor, labels: torch.Tensor, item_weights: torch.Tensor, *,
                             label_smoothing: float = 0.0, temperature: float = 1.0,
                             offsets: WindowOffsets | None = None) -> torch.Tensor:
    """Plain autograd: the reference the fused one is tested against, and the path with offsets."""
    keep = labels != IGNORE  # [B, L]
    h, target = hidden[keep], labels[keep]  # [P, D], [P]
    with torch.autocast(device_type=h.device.type, enabled=False):
        logits = h.float() @ item_weights.float().T  # [P, N + 1]
        if offsets is not None:
            logits = offsets.rows(keep.reshape(-1)).add_to(logits)  # [P, N + 1]
        log_p = (logits / temperature)[:, 1:].log_softmax(dim=1)  # [P, N]; PAD is not a class
    nll = -log_p.gather(1, (target - 1).unsqueeze(1)).squeeze(1)  # [P]
    return ((1.0 - label_smoothing) * nll - label_smoothing * log_p.mean(dim=1)).mean()


# ---- sampled softmax --------------------------------------------------------------------------

Sampler = Callable[
    [torch.Tensor, int], tuple[torch.Tensor, torch.Tensor]
]  # targets [P], K -> items [K], q [K]


def uniform_sampler(num_items: int) -> Sampler:
    def sample(target: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        items = torch.randint(1, num_items + 1, (k,)).to(target.device)  # [K]
        return items, torch.full((k,), 1.0 / num_items, device=target.device)  # [K], [K]
    return sample


def popularity_sampler(probs: torch.Tensor) -> Sampler:
    """probs: [N + 1] training-label frequency (PAD = 0)."""
    def sample(target: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        items = torch.multinomial(probs, k, replacement=True).to(target.device)  # [K]
        return items, probs.to(target.device)[items]  # [K], [K]
    return sample


def in_batch_sampler(probs: torch.Tensor) -> Sampler:
    """Negatives are the targets of up to K random labelled positions of the same batch; targets are
    drawn in proportion to training frequency, so q is the popularity probability."""
    def sample(target: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        pick = torch.randperm(len(target))[:k].to(target.device)  # [K'] with K' = min(K, P)
        items = target[pick]  # [K']
        return items, probs.to(target.device)[items].clamp(min=1e-12)  # [K'], [K']
    return sample


def sampled_softmax(
    hidden: torch.Tensor,
    labels: torch.Tensor,
    item_weights: torch.Tensor,
    *,
    sampler: Sampler,
    num_negatives: int,
    logq_correction: bool = True,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Softmax over [target, K shared negatives] per position.

    With logq_correction each negative's logit is lowered by log(K q): the sum of exp over the
    sample then estimates the sum over the whole catalogue (sampled softmax with importance
    weights), so popularity sampling does not turn into a popularity penalty. Negatives equal to
    the position's own target (accidental hits) are dropped.
    """
    h, target = _labelled(hidden, labels)  # [P, D], [P]
    items, q = sampler(target, num_negatives)  # [K], [K]
    h = h.float() / temperature  # [P, D]
    w = item_weights.float()  # [N + 1, D]
    pos = (h * w[target]).sum(dim=1, keepdim=True)  # [P, 1]
    neg = h @ w[items].T  # [P, K]
    if logq_correction:
        neg = neg - torch.log(len(items) * q).unsqueeze(0)  # [P, K]
    neg = neg.masked_fill(items.unsqueeze(0) == target.unsqueeze(1), float("-inf"))  # [P, K]
    logits = torch.cat([pos, neg], dim=1)  # [P, 1 + K]
    return F.cross_entropy(logits, torch.zeros(len(target), dtype=torch.long, device=h.device))


# ---- binary cross-entropy with negatives (SASRec, gSASRec) -----------------------------------

def gbce_beta(num_negatives: int, num_items: int, t: float) -> float:
    """gSASRec's calibration power: beta = alpha (t (1 - 1/alpha) + 1/alpha) = 1 - t (1 - alpha),
    alpha = k / (N - 1) the negative sampling rate. t = 0 is plain BCE, t = 1 fully calibrated."""
    alpha = num_negatives / (num_items - 1)
    return 1.0 - t * (1.0 - alpha)


def bce_with_negatives(hidden: torch.Tensor, labels: torch.Tensor, item_weights: torch.Tensor, *,
                       num_negatives: int, t: float = 0.0, per_position: bool = True) -> torch.Tensor:
    """Per position: (beta * softplus(-s_pos) + sum_k softplus(s_neg_k)) / (1 + k).

    softplus(-s) = -log sigmoid(s); beta (gBCE) raises the positive's sigmoid to the power beta.
    per_position draws k uniform negatives for every labelled position, as SASRec's and gSASRec's
    own code do ([P, k, D] gathered). per_position=False draws k per training sequence and shares
    them across its positions: one batched matmul, far less memory for large k, but with k = 1
    every position of a sequence is pushed away from the same item, which slows learning a lot.
    Negatives that equal the position's target are dropped.
    """
    num_items = item_weights.shape[0] - 1
    beta = gbce_beta(num_negatives, num_items, t)
    keep = labels != IGNORE  # [B, L]
    w = item_weights.float()  # [N + 1, D]
    h = hidden.float()  # [B, L, D]
    target = labels[keep]  # [P]
    h_kept = h[keep]  # [P, D]
    pos = (h_kept * w[target]).sum(dim=-1)  # [P]
    if per_position:
        neg_items = torch.randint(1, num_items + 1, (len(target), num_negatives)).to(labels.device)  # [P, k]
        neg = _negative_logits(h_kept, w, neg_items)  # [P, k]
    else:
        shared = torch.randint(1, num_items + 1, (h.shape[0], num_negatives)).to(labels.device)  # [B, k]
        neg = torch.bmm(h, w[shared].transpose(1, 2))[keep]  # [P, k]
        neg_items = shared.unsqueeze(1).expand(-1, labels.shape[1], -1)[keep]  # [P, k]
    hit = neg_items == target.unsqueeze(1)  # [P, k]
    neg_term = F.softplus(neg).masked_fill(hit, 0.0).sum(dim=1)  # [P]
    return ((beta * F.softplus(-pos) + neg_term) / (1 + num_negatives)).mean()


def scores_all_items(table_rows: int, k: int) -> bool:
    """Per-position negatives: score the whole table (N + 1 rows) rather than gather k rows per position."""
    return table_rows <= NEGATIVE_SCORE_ALL_RATIO * k


def _negative_logits(h: torch.Tensor, w: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """h [P, D], w [N + 1, D], items [P, k] -> [P, k] logits h_p . w_items[p, j].

    Gathering [P, k, D] rows is slow and large for big k; when the catalogue is not much bigger
    than k it is cheaper to score every item with one matmul and pick the k columns, a chunk of
    positions at a time so that at most CE_MAX_ELEMENTS scores are alive.
    """
    if not scores_all_items(w.shape[0], items.shape[1]):
        return torch.bmm(w[items], h.unsqueeze(2)).squeeze(2)  # [P, k]
    rows = max(1, CE_MAX_ELEMENTS // w.shape[0])
    return torch.cat([(h[i:i + rows] @ w.T).gather(1, items[i:i + rows]) for i in range(0, len(h), rows)])


# ---- registry ---------------------------------------------------------------------------------

def _popularity_probs(popularity: torch.Tensor) -> torch.Tensor:
    counts = popularity.double().clamp(min=0)  # [N + 1]
    counts[PAD] = 0.0
    return (counts / counts.sum()).float()  # [N + 1]


def _full_ce(spec: TrainSpec, popularity: torch.Tensor) -> LossFn:
    if spec.label_smoothing == 0.0 and spec.temperature == 1.0:
        return full_cross_entropy  # the default path stays exactly the plain function
    return partial(full_cross_entropy, label_smoothing=spec.label_smoothing, temperature=spec.temperature)


def _sampled(spec: TrainSpec, popularity: torch.Tensor) -> LossFn:
    probs = _popularity_probs(popularity)
    samplers = {"uniform": lambda: uniform_sampler(len(popularity) - 1),
                "popularity": lambda: popularity_sampler(probs),
                "in_batch": lambda: in_batch_sampler(probs)}
    return partial(sampled_softmax, sampler=samplers[spec.negatives](), num_negatives=spec.num_negatives,
                   logq_correction=spec.logq_correction, temperature=spec.temperature)


def _binary(spec: TrainSpec, t: float) -> LossFn:
    return partial(bce_with_negatives, num_negatives=spec.num_negatives, t=t,
                   per_position=spec.negatives_per == "position")


def _bce(spec: TrainSpec, popularity: torch.Tensor) -> LossFn:
    return _binary(spec, t=0.0)


def _gbce(spec: TrainSpec, popularity: torch.Tensor) -> LossFn:
    return _binary(spec, t=spec.gbce_t)


LOSSES: dict[str, Callable[[TrainSpec, torch.Tensor], LossFn]] = {
    "full_ce": _full_ce,
    "sampled_softmax": _sampled,
    "bce": _bce,
    "gbce": _gbce,
}


def make_loss(spec: TrainSpec, popularity: torch.Tensor) -> LossFn:
    """popularity: [N + 1] training interaction counts (PAD ignored); used by popularity/in-batch sampling."""
    return LOSSES[spec.loss](spec, popularity)
