"""Multi-head self-attention and the Transformer block layouts shared by SASRec and BERT4Rec
(`model.block`): pre-LayerNorm (the default), the original SASRec code's layout, and post-LayerNorm
(BERT's, which RecBole's SASRec and BERT4Rec use)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SelfAttention(nn.Module):
    def __init__(self, hidden: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.out = nn.Linear(hidden, hidden)
        self.dropout = dropout

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, source: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Queries from x; keys and values from `source` (default x) through the same projections."""
        B, L, D = x.shape
        if source is None:
            q, k, v = (
                self.qkv(x).view(B, L, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
            )  # 3x[B, H, L, Dh]
        else:
            q = F.linear(x, self.qkv.weight[:D], self.qkv.bias[:D]).view(B, L, 1, self.heads, D // self.heads)
            kv = F.linear(source, self.qkv.weight[D:], self.qkv.bias[D:]).view(
                B, L, 2, self.heads, D // self.heads
            )
            q, k, v = torch.cat([q, kv], dim=2).permute(2, 0, 3, 1, 4)  # 3x[B, H, L, Dh]
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)  # [B, H, L, Dh]
        return self.out(y.transpose(1, 2).reshape(B, L, D))  # [B, L, D]


class Block(nn.Module):
    """Pre-LayerNorm Transformer block."""

    norm_eps = 1e-5  # LayerNorm eps of the block and of the encoder's final norm
    post_norm = False  # True: the encoder normalises the embeddings instead of the last block's output

    def __init__(self, hidden: int, heads: int, ffn: int, dropout: float, attn_dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden, eps=self.norm_eps)
        self.attn = SelfAttention(hidden, heads, attn_dropout)
        self.norm2 = nn.LayerNorm(hidden, eps=self.norm_eps)
        self.ffn = nn.Sequential(
            nn.Linear(hidden, ffn), nn.GELU(), nn.Dropout(dropout), nn.Linear(ffn, hidden)
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm1(x), mask))  # [B, L, D]
        return x + self.drop(self.ffn(self.norm2(x)))  # [B, L, D]


class OriginalSASRecBlock(nn.Module):
    """The block of the SASRec authors' code (and of the SASRec+ paper's): the LayerNormed input is
    the attention's query and its residual, keys and values read the un-normalised input, then a
    LayerNorm and a ReLU point-wise feed-forward with its own residual. LayerNorm eps 1e-8 as there."""

    norm_eps = 1e-8
    post_norm = False

    def __init__(self, hidden: int, heads: int, ffn: int, dropout: float, attn_dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden, eps=self.norm_eps)
        self.attn = SelfAttention(hidden, heads, attn_dropout)
        self.norm2 = nn.LayerNorm(hidden, eps=self.norm_eps)
        self.ffn = nn.Sequential(
            nn.Linear(hidden, ffn), nn.Dropout(dropout), nn.ReLU(), nn.Linear(ffn, hidden)
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        q = self.norm1(x)  # [B, L, D]
        x = self.norm2(q + self.attn(q, mask, source=x))  # [B, L, D]
        return x + self.drop(self.ffn(x))  # [B, L, D]


class PostLNBlock(nn.Module):
    """BERT's post-LayerNorm block, as RecBole's SASRec has it: attention, dropout, residual, then
    LayerNorm; a GELU feed-forward, dropout, residual, then LayerNorm. Every block output is already
    normalised, so the encoder normalises the embeddings and adds no final norm (`post_norm`)."""

    norm_eps = 1e-12
    post_norm = True

    def __init__(self, hidden: int, heads: int, ffn: int, dropout: float, attn_dropout: float):
        super().__init__()
        self.attn = SelfAttention(hidden, heads, attn_dropout)
        self.norm1 = nn.LayerNorm(hidden, eps=self.norm_eps)
        self.ffn = nn.Sequential(nn.Linear(hidden, ffn), nn.GELU(), nn.Linear(ffn, hidden))
        self.norm2 = nn.LayerNorm(hidden, eps=self.norm_eps)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.drop(self.attn(x, mask)))  # [B, L, D]
        return self.norm2(x + self.drop(self.ffn(x)))  # [B, L, D]


BLOCKS = {"pre_ln": Block, "original": OriginalSASRecBlock, "post_ln": PostLNBlock}
