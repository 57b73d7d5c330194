"""The optimizer and its parameter groups.

Weight decay applies only to the weight matrices of linear layers. Embeddings (item table, which
is also the tied output layer, and positions) are excluded because decay pulls rarely seen items'
rows toward zero, which biases scores toward popular items; LayerNorm gains/shifts and biases are
excluded because shrinking them only distorts the normalisation and offsets.
"""

from __future__ import annotations

import torch
from torch import nn


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """[{decayed linear weights}, {embeddings, norms, biases: no decay}], each with its parameter names."""
    no_decay = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding | nn.LayerNorm)}
    decay, keep = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (keep if p.dim() < 2 or id(p) in no_decay else decay).append((name, p))
    return [
        {"params": [p for _, p in decay], "weight_decay": weight_decay, "names": [n for n, _ in decay]},
        {"params": [p for _, p in keep], "weight_decay": 0.0, "names": [n for n, _ in keep]},
    ]


def make_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=(0.9, 0.98))
