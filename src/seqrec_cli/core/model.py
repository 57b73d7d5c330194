"""The one model every command uses: item embedding -> sequence encoder -> scores tied to the embedding."""

from __future__ import annotations

import math

import torch
from torch import nn

from seqrec_cli.core.encoders import ENCODERS
from seqrec_cli.data.batching import PAD
from seqrec_cli.spec.models import ModelSpec


class SeqRecModel(nn.Module):
    def __init__(self, spec: ModelSpec, num_items: int):
        super().__init__()
        self.num_items = num_items
        self.hidden = spec.hidden
        self.item_emb = nn.Embedding(num_items + 1, spec.hidden, padding_idx=PAD)  # row 0 = PAD
        self.encoder = ENCODERS[spec.encoder](spec)
        self._init_weights()

    def _init_weights(self) -> None:
        # Unit-variance inputs after the sqrt(D) scale; small init elsewhere keeps early logits calm.
        nn.init.normal_(self.item_emb.weight, std=1.0 / math.sqrt(self.hidden))
        with torch.no_grad():
            self.item_emb.weight[PAD].zero_()
        for name, p in self.encoder.named_parameters():
            if p.dim() >= 2:
                nn.init.normal_(p, std=0.02)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def encode(self, inputs: torch.Tensor) -> torch.Tensor:
        """inputs: [B, L] item ids (left-padded) -> hidden states [B, L, D]."""
        real = inputs != PAD  # [B, L]
        x = self.item_emb(inputs) * math.sqrt(self.hidden)  # [B, L, D]
        return self.encoder(x, real)  # [B, L, D]

    def item_weights(self) -> torch.Tensor:
        return self.item_emb.weight  # [N + 1, D]; column 0 (PAD) is masked wherever scores are used

    def last_hidden(self, inputs: torch.Tensor) -> torch.Tensor:
        """[B, L] -> [B, D]: the state after the most recent item (last column, left padding)."""
        return self.encode(inputs)[:, -1]  # [B, D]

    def score_all(self, inputs: torch.Tensor) -> torch.Tensor:
        """[B, L] -> [B, N + 1] scores over the whole catalogue; PAD scores -inf."""
        h = self.last_hidden(inputs)  # [B, D]
        scores = (h @ self.item_weights().T).float()  # [B, N + 1]
        scores[:, PAD] = float("-inf")
        return scores
