"""HSTU, Hierarchical Sequential Transduction Units ("Actions Speak Louder than Words", Zhai et al.,
ICML 2024), written from the paper's equations:

    U, V, Q, K = split(SiLU(f1(X)))
    A          = SiLU(Q K^T + rab^{p,t}) / n        pointwise aggregated attention, no softmax
    Y          = f2(Norm(A V) * U)

with a causal mask, a learned relative position bias per head (rab^p) and, when timestamps are
given, a learned bias per head for log2-bucketed time gaps (rab^t). n is model.max_len, a constant,
so padding (masked to zero weight) cannot change a real position's output.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seqrec_cli.spec.models import ModelSpec


class HSTULayer(nn.Module):
    def __init__(self, hidden: int, heads: int, dropout: float, attn_dropout: float):
        super().__init__()
        self.heads = heads
        self.norm_in = nn.LayerNorm(hidden)
        self.uvqk = nn.Linear(hidden, 4 * hidden)
        self.norm_attn = nn.LayerNorm(hidden)
        self.out = nn.Linear(hidden, hidden)
        self.attn_drop = nn.Dropout(attn_dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, weight_mask: torch.Tensor, bias: torch.Tensor, n: int) -> torch.Tensor:
        """x [B, L, D], weight_mask [B, 1, L, L] (1 = may attend), bias [B or 1, H, L, L] -> [B, L, D]."""
        B, L, D = x.shape
        u, v, q, k = F.silu(self.uvqk(self.norm_in(x))).split(D, dim=-1)  # 4x[B, L, D]
        q, k, v = (
            t.view(B, L, self.heads, D // self.heads).transpose(1, 2) for t in (q, k, v)
        )  # 3x[B, H, L, Dh]
        a = F.silu(q @ k.transpose(-1, -2) + bias) / n * weight_mask  # [B, H, L, L]
        y = (self.attn_drop(a) @ v).transpose(1, 2).reshape(B, L, D)  # [B, L, D]
        return x + self.drop(self.out(self.norm_attn(y) * u))  # [B, L, D]


class HSTUEncoder(nn.Module):
    causal = True
    objective = "next_item"
    keeps_own_init = False
    uses_times = True  # batches carry the inputs' timestamps when the dataset has them

    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.max_len = spec.max_len
        self.drop = nn.Dropout(spec.dropout)
        self.rel_pos = nn.Embedding(
            spec.max_len, spec.heads
        )  # distance i - j in [0, max_len) -> bias per head
        self.rel_time = nn.Embedding(spec.time_buckets, spec.heads)
        self.layers = nn.ModuleList(HSTULayer(spec.hidden, spec.heads, spec.dropout, spec.attention_dropout)
                                    for _ in range(spec.layers))
        self.norm = nn.LayerNorm(spec.hidden)

    def time_buckets(self, times: torch.Tensor) -> torch.Tensor:
        """times [B, L] (seconds) -> [B, L, L] bucket of |t_i - t_j|: floor(log2(1 + gap))."""
        gap = (times.unsqueeze(2) - times.unsqueeze(1)).abs().double()  # [B, L, L]
        return torch.log2(1.0 + gap).floor().long().clamp(max=self.rel_time.num_embeddings - 1)  # [B, L, L]

    def forward(self, x: torch.Tensor, real: torch.Tensor, times: torch.Tensor | None = None) -> torch.Tensor:
        """x: [B, L, D] left-padded, real: [B, L], times: [B, L] or None -> [B, L, D]."""
        B, L, _ = x.shape
        idx = torch.arange(L, device=x.device)  # [L]
        dist = (idx.unsqueeze(1) - idx.unsqueeze(0)).clamp(0, self.max_len - 1)  # [L, L]
        bias = self.rel_pos(dist).permute(2, 0, 1).unsqueeze(0)  # [1, H, L, L]
        if times is not None:
            bias = bias + self.rel_time(self.time_buckets(times)).permute(0, 3, 1, 2)  # [B, H, L, L]
        causal = torch.ones(L, L, dtype=torch.bool, device=x.device).tril()  # [L, L]
        weight_mask = (
            (causal & real.unsqueeze(1) & real.unsqueeze(2)).unsqueeze(1).to(x.dtype)
        )  # [B, 1, L, L]
        x = self.drop(x) * real.unsqueeze(-1)  # [B, L, D]
        for layer in self.layers:
            x = layer(x, weight_mask, bias, self.max_len) * real.unsqueeze(-1)  # [B, L, D]
        return self.norm(x)  # [B, L, D]


