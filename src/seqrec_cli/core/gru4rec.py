"""GRU4Rec (Hidasi et al., 2016) as a sequence encoder: a GRU over the item embeddings."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seqrec_cli.spec.models import ModelSpec


class GRU4RecEncoder(nn.Module):
    """Causal by construction. Sequences are packed so the GRU never steps over left padding:
    a history gives the same states whatever its padding."""

    causal = True
    objective = "next_item"
    keeps_own_init = True  # PyTorch's uniform(+-1/sqrt(D)) GRU init; std 0.02 would stall the gates

    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.drop = nn.Dropout(spec.dropout)
        self.gru = nn.GRU(spec.hidden, spec.hidden, num_layers=spec.layers, batch_first=True,
                          dropout=spec.dropout if spec.layers > 1 else 0.0)
        self.norm = nn.LayerNorm(spec.hidden)

    def forward(self, x: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """x: [B, L, D] left-padded, real: [B, L] -> [B, L, D]."""
        B, L, D = x.shape
        lengths = real.sum(dim=1)  # [B]
        shift = (L - lengths).unsqueeze(1)  # [B, 1] padding slots on the left
        cols = torch.arange(L, device=x.device).unsqueeze(0)  # [1, L]
        to_right = ((cols + shift) % L).unsqueeze(-1).expand(B, L, D)  # [B, L, D] right-aligned source slots
        right = self.drop(x).gather(1, to_right)  # [B, L, D], items first, padding last
        packed = pack_padded_sequence(
            right, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False
        )
        out, _ = self.gru(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=L)  # [B, L, D]
        to_left = ((cols - shift) % L).unsqueeze(-1).expand(B, L, D)  # [B, L, D] back to left padding
        return self.norm(out.gather(1, to_left)) * real.unsqueeze(-1)  # [B, L, D]
