"""Training objectives. Registry keys are the spec's `train.loss` choices.

All losses take the encoder output, the labels and the item weight table, select the labelled
positions first (no logits are ever made for padding), and return a mean over those positions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from seqrec_cli.data.batching import IGNORE, PAD

CE_CHUNK = 256  # rows of logits alive at once; small enough to stay in cache on a CPU


class _FusedSoftmaxCE(torch.autograd.Function):
    """Full-softmax cross-entropy whose gradient is computed in the same sweep as the loss.

    Each chunk of rows makes its logits once, takes one exp pass for both the log-sum-exp and the
    softmax, and folds (softmax - onehot) straight into dh and dW. Plain autograd would keep the
    whole [P, N] logit matrix and exponentiate it twice; this is about 2x faster on a CPU and never
    holds more than [CE_CHUNK, N] logits.
    """

    @staticmethod
    def forward(ctx, h: torch.Tensor, weights: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        P = h.shape[0]
        want_grad = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        dh = torch.empty_like(h) if want_grad else None  # [P, D]
        dw = torch.zeros_like(weights) if want_grad else None  # [N + 1, D]
        total = torch.zeros((), dtype=torch.float64, device=h.device)
        for start in range(0, P, CE_CHUNK):
            hc = h[start : start + CE_CHUNK]  # [C, D]
            tc = target[start : start + CE_CHUNK]  # [C]
            rows = torch.arange(len(hc), device=h.device)  # [C]
            p = hc @ weights.T  # [C, N + 1]
            p[:, PAD] = float("-inf")
            target_logit = p[rows, tc]  # [C]
            peak = p.max(dim=1, keepdim=True).values  # [C, 1]
            p.sub_(peak).exp_()
            norm = p.sum(dim=1, keepdim=True)  # [C, 1]
            total += (peak.squeeze(1) + norm.squeeze(1).log() - target_logit).sum()
            if want_grad:
                p.div_(norm)  # softmax
                p[rows, tc] -= 1.0  # d loss / d logits (before the 1/P of the mean)
                torch.mm(p, weights, out=dh[start : start + CE_CHUNK])
                dw.addmm_(p.T, hc)
        if want_grad:
            ctx.save_for_backward(dh, dw)
        return (total / P).to(h.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        dh, dw = ctx.saved_tensors
        scale = grad / dh.shape[0]
        return dh * scale, dw * scale, None


def _labelled(hidden: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    keep = labels != IGNORE  # [B, L]
    return hidden[keep], labels[keep]  # [P, D], [P]


def full_cross_entropy(hidden: torch.Tensor, labels: torch.Tensor, item_weights: torch.Tensor) -> torch.Tensor:
    """Softmax cross-entropy over the whole catalogue. hidden [B, L, D], labels [B, L], weights [N + 1, D]."""
    h, target = _labelled(hidden, labels)  # [P, D], [P]
    # fp32 math for the softmax even under bf16 autocast: log-sum-exp over many items needs it.
    # Autocast is switched off here, or it would turn the fused matmuls back into bf16 ones.
    with torch.autocast(device_type=h.device.type, enabled=False):
        return _FusedSoftmaxCE.apply(h.float(), item_weights.float(), target)


def plain_full_cross_entropy(hidden: torch.Tensor, labels: torch.Tensor, item_weights: torch.Tensor) -> torch.Tensor:
    """Reference implementation with plain autograd (tests compare the fused one against it)."""
    h, target = _labelled(hidden, labels)  # [P, D], [P]
    logits = (h @ item_weights.T).float()  # [P, N + 1]
    logits[:, PAD] = float("-inf")
    return F.cross_entropy(logits, target)


LOSSES = {"full_ce": full_cross_entropy}
