"""The block layouts (model.block): queries from one input, keys/values from another, and the
original SASRec and post-LN blocks against hand-written computations of their layouts."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from seqrec_cli.core.attention import OriginalSASRecBlock, PostLNBlock, SelfAttention
from seqrec_cli.core.model import SeqRecModel
from seqrec_cli.spec.models import ModelSpec

torch.set_num_threads(1)
B, L, D = 2, 4, 6


def causal_mask() -> torch.Tensor:
    return torch.ones(L, L, dtype=torch.bool).tril().expand(B, 1, L, L)  # [B, 1, L, L]


def by_hand_attention(attn: SelfAttention, query_in: torch.Tensor, kv_in: torch.Tensor) -> torch.Tensor:
    """One head: softmax(q k^T / sqrt(D)) v with the causal mask, then the output projection."""
    w, b = attn.qkv.weight, attn.qkv.bias
    q = query_in @ w[:D].T + b[:D]  # [B, L, D]
    k = kv_in @ w[D : 2 * D].T + b[D : 2 * D]  # [B, L, D]
    v = kv_in @ w[2 * D :].T + b[2 * D :]  # [B, L, D]
    scores = q @ k.transpose(1, 2) / math.sqrt(D)  # [B, L, L]
    scores = scores.masked_fill(~causal_mask()[:, 0], float("-inf"))
    return attn.out(scores.softmax(-1) @ v)  # [B, L, D]


def test_source_feeds_keys_and_values_only():
    torch.manual_seed(0)
    attn = SelfAttention(D, heads=1, dropout=0.0).eval()
    x, other = torch.randn(B, L, D), torch.randn(B, L, D)
    with torch.no_grad():
        assert torch.allclose(attn(x, causal_mask(), source=x), attn(x, causal_mask()), atol=1e-6)
        assert torch.allclose(
            attn(x, causal_mask(), source=other), by_hand_attention(attn, x, other), atol=1e-5
        )
        assert not torch.allclose(attn(x, causal_mask(), source=other), attn(x, causal_mask()), atol=1e-3)


def test_original_block_follows_the_sasrec_code_layout():
    torch.manual_seed(1)
    block = OriginalSASRecBlock(D, heads=1, ffn=D, dropout=0.0, attn_dropout=0.0).eval()
    with torch.no_grad():
        for p in block.parameters():  # away from LayerNorm's identity init
            p.add_(0.2 * torch.randn_like(p))
    x = torch.randn(B, L, D)
    with torch.no_grad():
        q = F.layer_norm(x, (D,), block.norm1.weight, block.norm1.bias, eps=1e-8)
        h = F.layer_norm(
            q + by_hand_attention(block.attn, q, x), (D,), block.norm2.weight, block.norm2.bias, eps=1e-8
        )
        first, second = block.ffn[0], block.ffn[3]
        expected = h + second(torch.relu(first(h)))
        assert torch.allclose(block(x, causal_mask()), expected, atol=1e-5)


def test_post_ln_block_normalises_after_each_residual_sum():
    torch.manual_seed(2)
    block = PostLNBlock(D, heads=1, ffn=2 * D, dropout=0.0, attn_dropout=0.0).eval()
    with torch.no_grad():
        for p in block.parameters():
            p.add_(0.2 * torch.randn_like(p))
    x = torch.randn(B, L, D)
    with torch.no_grad():
        h = F.layer_norm(
            x + by_hand_attention(block.attn, x, x), (D,), block.norm1.weight, block.norm1.bias, eps=1e-12
        )
        first, second = block.ffn[0], block.ffn[2]
        expected = F.layer_norm(
            h + second(F.gelu(first(h))), (D,), block.norm2.weight, block.norm2.bias, eps=1e-12
        )
        assert torch.allclose(block(x, causal_mask()), expected, atol=1e-5)


def test_post_ln_encoder_normalises_unscaled_embeddings_and_adds_no_final_norm():
    torch.manual_seed(3)
    spec = ModelSpec(encoder="sasrec", block="post_ln", hidden=D, heads=1, layers=1, max_len=L, dropout=0.0)
    model = SeqRecModel(spec, num_items=5).eval()
    inputs = torch.tensor([[1, 2, 3, 4], [2, 2, 5, 1]])  # no padding
    encoder = model.encoder
    with torch.no_grad():
        positions = encoder.positions((L - 1) - torch.arange(L))  # from_end, the default
        x = model.item_emb(inputs) + positions  # no sqrt(hidden) scale
        x = F.layer_norm(x, (D,), encoder.embed_norm.weight, encoder.embed_norm.bias, eps=1e-12)
        mask = causal_mask() | torch.eye(L, dtype=torch.bool)
        expected = encoder.blocks[0](x, mask)
        assert torch.allclose(model.encode(inputs), expected, atol=1e-5)
    assert not any("norm" in name and "blocks" not in name and "embed" not in name
                   for name, _ in encoder.named_parameters())


def test_block_choice_is_for_self_attention_encoders_only():
    assert ModelSpec(encoder="bert4rec", block="original").block == "original"
    with pytest.raises(
        ValueError, match="model.block applies to the sasrec and bert4rec encoders, not 'gru4rec'"
    ):
        ModelSpec(encoder="gru4rec", block="original")
