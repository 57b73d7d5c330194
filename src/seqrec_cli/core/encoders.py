"""Sequence encoders. Registry keys are the spec's `model.encoder` choices.

SASRec is our own small torch module rather than a transformers backbone: it needs exactly a
causal + key-padding mask, positions counted over real items only (back from the most recent
one by default, or from the oldest one of the window: `model.positions`), so left padding and
per-batch widths do not change any output, and PyTorch's fused attention, all of which are simpler
and faster to get right here than through a general backbone's position and mask handling.
The other encoders live in their own modules (gru4rec, hstu, hf_backbones) and are registered here.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from seqrec_cli.core.attention import BLOCKS
from seqrec_cli.core.gru4rec import GRU4RecEncoder
from seqrec_cli.core.hf_backbones import HF_ENCODERS
from seqrec_cli.core.hstu import HSTUEncoder
from seqrec_cli.spec.models import ModelSpec


class SASRecEncoder(nn.Module):
    """Causal self-attention over item embeddings (Kang & McAuley, 2018); pre-LN blocks by default,
    the original code's block layout with `model.block: original`, BERT's (RecBole's) with `post_ln`.

    Encoder contract (every registry entry): forward(x [B, L, D] item embeddings, left-padded;
    real [B, L] True at real items) -> [B, L, D]. Class attributes tell the rest of the toolkit
    how to drive it: `causal` (output t sees only items <= t), `objective` ("next_item" or
    "masked_item": which batcher trains it, and whether inference appends a [MASK]) and
    `keeps_own_init` (SeqRecModel leaves its parameters as built).
    """

    causal = True
    objective = "next_item"
    keeps_own_init = False

    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.positions = nn.Embedding(spec.max_len, spec.hidden)
        self.drop = nn.Dropout(spec.dropout)
        block = BLOCKS[spec.block]
        self.blocks = nn.ModuleList(
            block(spec.hidden, spec.heads, spec.ffn_mult * spec.hidden, spec.dropout, spec.attention_dropout)
            for _ in range(spec.layers)
        )
        # Pre-LN and original blocks leave the last output un-normalised: a final LayerNorm. Post-LN
        # blocks end normalised and normalise the embeddings instead (BERT's layout), which are then
        # not scaled by sqrt(hidden) (`input_scale`; SeqRecModel applies it).
        self.norm = nn.Identity() if block.post_norm else nn.LayerNorm(spec.hidden, eps=block.norm_eps)
        self.embed_norm = nn.LayerNorm(spec.hidden, eps=block.norm_eps) if block.post_norm else nn.Identity()
        self.input_scale = 1.0 if block.post_norm else math.sqrt(spec.hidden)
        self.from_start = spec.positions == "from_start"

    def forward(self, x: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """x: [B, L, D] item embeddings (left-padded), real: [B, L] True at real items -> [B, L, D]."""
        B, L, _ = x.shape
        if self.from_start:  # index among the row's real items, so left padding shifts nothing
            index = (real.long().cumsum(dim=1) - 1).clamp(min=0)  # [B, L]
        else:
            # [L] distance from the most recent slot (written so, not as a descending arange, which
            # the ONNX export turns into an empty range)
            index = (L - 1) - torch.arange(L, device=x.device)  # [L]
        x = self.drop(self.embed_norm(x + self.positions(index))) * real.unsqueeze(-1)  # [B, L, D]
        visible = real.unsqueeze(1)  # [B, 1, L] real keys
        if self.causal:
            visible = visible & torch.ones(L, L, dtype=torch.bool, device=x.device).tril()  # [B, L, L]
        # Allow the diagonal always, so padding rows never attend to nothing (NaN); real rows
        # still see only real keys (at or before them when causal).
        # (an arange comparison rather than torch.eye(bool): ONNX Runtime has no bool EyeLike kernel)
        slots = torch.arange(L, device=x.device)  # [L]
        eye = slots.unsqueeze(1) == slots.unsqueeze(0)  # [L, L]
        mask = (visible | eye).unsqueeze(1)  # [B, 1, L, L]
        for block in self.blocks:
            x = block(x, mask) * real.unsqueeze(-1)  # [B, L, D]
        return self.norm(x)  # [B, L, D]


class BERT4RecEncoder(SASRecEncoder):
    """Bidirectional self-attention trained by masked-item prediction (Sun et al., 2019), pre-LN.

    The [MASK] input is a learned vector here, not an item row, so the scoring table stays exactly
    the N + 1 item embeddings.
    """

    causal = False
    objective = "masked_item"

    def __init__(self, spec: ModelSpec):
        super().__init__(spec)
        self.mask_token = nn.Parameter(
            torch.randn(spec.hidden) * spec.item_init_std
        )  # [D], scaled like the item rows


ENCODERS: dict[str, type[nn.Module]] = {
    "sasrec": SASRecEncoder,
    "bert4rec": BERT4RecEncoder,
    "gru4rec": GRU4RecEncoder,
    "hstu": HSTUEncoder,
    **HF_ENCODERS,
}
