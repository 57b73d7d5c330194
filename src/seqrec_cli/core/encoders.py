"""Sequence encoders. Registry keys are the spec's `model.encoder` choices.

SASRec is our own small torch module rather than a transformers backbone: it needs exactly a
causal + key-padding mask, positions counted back from the most recent item (so left padding and
per-batch widths do not change any output) and PyTorch's fused attention, all of which are simpler
and faster to get right here than through a general backbone's position and mask handling.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seqrec_cli.spec.models import ModelSpec


class SelfAttention(nn.Module):
    def __init__(self, hidden: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.out = nn.Linear(hidden, hidden)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, L, D = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)  # 3x[B, H, L, Dh]
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)  # [B, H, L, Dh]
        return self.out(y.transpose(1, 2).reshape(B, L, D))  # [B, L, D]


class Block(nn.Module):
    """Pre-LayerNorm Transformer block."""

    def __init__(self, hidden: int, heads: int, ffn: int, dropout: float, attn_dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden)
        self.attn = SelfAttention(hidden, heads, attn_dropout)
        self.norm2 = nn.LayerNorm(hidden)
        self.ffn = nn.Sequential(nn.Linear(hidden, ffn), nn.GELU(), nn.Dropout(dropout), nn.Linear(ffn, hidden))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm1(x), mask))  # [B, L, D]
        return x + self.drop(self.ffn(self.norm2(x)))  # [B, L, D]


class SASRecEncoder(nn.Module):
    """Causal self-attention over item embeddings (Kang & McAuley, 2018), pre-LN variant."""

    causal = True

    def __init__(self, spec: ModelSpec):
        super().__init__()
        attn_dropout = spec.dropout if spec.attn_dropout is None else spec.attn_dropout
        self.positions = nn.Embedding(spec.max_len, spec.hidden)
        self.drop = nn.Dropout(spec.dropout)
        self.blocks = nn.ModuleList(
            Block(spec.hidden, spec.heads, spec.ffn_mult * spec.hidden, spec.dropout, attn_dropout)
            for _ in range(spec.layers)
        )
        self.norm = nn.LayerNorm(spec.hidden)

    def forward(self, x: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """x: [B, L, D] item embeddings (left-padded), real: [B, L] True at real items -> [B, L, D]."""
        B, L, _ = x.shape
        back = torch.arange(L - 1, -1, -1, device=x.device)  # [L] distance from the most recent slot
        x = self.drop(x + self.positions(back)) * real.unsqueeze(-1)  # [B, L, D]
        causal = torch.ones(L, L, dtype=torch.bool, device=x.device).tril()  # [L, L]
        # Allow the diagonal always, so padding rows never attend to nothing (NaN); real rows
        # still see only real keys at or before them.
        eye = torch.eye(L, dtype=torch.bool, device=x.device)  # [L, L]
        mask = ((causal & real.unsqueeze(1)) | eye).unsqueeze(1)  # [B, 1, L, L]
        for block in self.blocks:
            x = block(x, mask) * real.unsqueeze(-1)  # [B, L, D]
        return self.norm(x)  # [B, L, D]


ENCODERS: dict[str, type[nn.Module]] = {"sasrec": SASRecEncoder}
