"""The one model every command uses: item embedding -> sequence encoder -> scores tied to the embedding."""

from __future__ import annotations

import math

import torch
from torch import nn

from seqrec_cli.core.encoders import ENCODERS
from seqrec_cli.data.batching import PAD
from seqrec_cli.data.masked_batching import MASK
from seqrec_cli.spec.models import ModelSpec


class SeqRecModel(nn.Module):
    def __init__(self, spec: ModelSpec, num_items: int):
        super().__init__()
        self.num_items = num_items
        self.hidden = spec.hidden
        self.item_emb = nn.Embedding(num_items + 1, spec.hidden, padding_idx=PAD)  # row 0 = PAD
        self.encoder = ENCODERS[spec.encoder](spec)
        self.masked = self.encoder.objective == "masked_item"  # [MASK] inputs; one appended at inference
        self._init_weights()

    def _init_weights(self) -> None:
        # Unit-variance inputs after the sqrt(D) scale; small init elsewhere keeps early logits calm.
        nn.init.normal_(self.item_emb.weight, std=1.0 / math.sqrt(self.hidden))
        with torch.no_grad():
            self.item_emb.weight[PAD].zero_()
        if self.encoder.keeps_own_init:
            return
        for name, p in self.encoder.named_parameters():
            if p.dim() >= 2:
                nn.init.normal_(p, std=0.02)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def encode(self, inputs: torch.Tensor) -> torch.Tensor:
        """inputs: [B, L] item ids (left-padded; MASK for masked encoders) -> hidden states [B, L, D]."""
        real = inputs != PAD  # [B, L]
        if not self.masked:
            return self.encoder(self.item_emb(inputs) * math.sqrt(self.hidden), real)  # [B, L, D]
        is_mask = (inputs == MASK).unsqueeze(-1)  # [B, L, 1]
        x = torch.where(is_mask, self.encoder.mask_token, self.item_emb(inputs.clamp(min=PAD)))  # [B, L, D]
        return self.encoder(x * math.sqrt(self.hidden), real)  # [B, L, D]

    def item_weights(self) -> torch.Tensor:
        return self.item_emb.weight  # [N + 1, D]; column 0 (PAD) is masked wherever scores are used

    def last_hidden(self, inputs: torch.Tensor) -> torch.Tensor:
        """[B, L] -> [B, D]: the state that predicts the next item (last column, left padding).

        Masked encoders read it at a [MASK] appended after the history (the oldest item makes room).
        """
        if self.masked:
            inputs = torch.cat([inputs[:, 1:], torch.full_like(inputs[:, :1], MASK)], dim=1)  # [B, L]
        return self.encode(inputs)[:, -1]  # [B, D]

    def score_all(self, inputs: torch.Tensor) -> torch.Tensor:
        """[B, L] -> [B, N + 1] scores over the whole catalogue; PAD scores -inf."""
        h = self.last_hidden(inputs)  # [B, D]
        scores = (h @ self.item_weights().T).float()  # [B, N + 1]
        scores[:, PAD] = float("-inf")
        return scores
