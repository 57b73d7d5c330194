"""Text-based item vectors: frozen text-encoder vectors through a small trainable adaptor.

The text vectors are a non-persistent buffer: they belong to a catalogue, not to the model, so a
state dict of a text model holds no per-item tensor and moves to another catalogue unchanged (the
new catalogue's vectors are set in their place). Registry keys are the spec's model.text.adaptor.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from seqrec_cli.data.batching import PAD


class WhitenProjection(nn.Module):
    """(x - centre) @ W: a learned centre and a linear map to the model width (parametric whitening).

    Initialised from the catalogue's vectors so outputs start at the id table's scale (std 1/sqrt(D)
    per dimension): centre = mean vector, W ~ N(0, 1 / (D * E * s^2)), s = std of centred entries.
    """

    def __init__(self, text_dim: int, hidden: int, dropout: float, vectors: torch.Tensor):
        super().__init__()
        self.centre = nn.Parameter(torch.zeros(text_dim))  # [E]
        self.proj = nn.Linear(text_dim, hidden, bias=False)
        self.drop = nn.Dropout(dropout)
        real = vectors[1:][vectors[1:].abs().sum(1) > 0]  # [M, E] items that have text
        with torch.no_grad():
            if len(real):
                self.centre.copy_(real.mean(0))
            spread = float((real - self.centre).std()) if len(real) > 1 else 1.0
            nn.init.normal_(self.proj.weight, std=1.0 / (math.sqrt(hidden * text_dim) * max(spread, 1e-6)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.drop(x - self.centre))  # [N, D]


class MixtureAdaptor(nn.Module):
    """A softmax-gated mixture of whitening projections (as in UniSRec's MoE adaptor)."""

    def __init__(self, text_dim: int, hidden: int, dropout: float, vectors: torch.Tensor, experts: int):
        super().__init__()
        self.experts = nn.ModuleList(
            WhitenProjection(text_dim, hidden, dropout, vectors) for _ in range(experts)
        )
        self.gate = nn.Linear(text_dim, experts, bias=False)
        nn.init.zeros_(self.gate.weight)  # start as the plain average of the experts

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = torch.softmax(self.gate(x), dim=-1)  # [N, K]
        outs = torch.stack([expert(x) for expert in self.experts], dim=1)  # [N, K, D]
        return (weights.unsqueeze(-1) * outs).sum(1)  # [N, D]


def _whiten(text_dim: int, hidden: int, dropout: float, vectors: torch.Tensor, experts: int) -> nn.Module:
    return WhitenProjection(text_dim, hidden, dropout, vectors)


ADAPTORS = {"whiten": _whiten, "moe": MixtureAdaptor}


class TextItems(nn.Module):
    """[N + 1, E] text vectors -> [N + 1, D] item vectors (PAD row zero). The vectors are the cached
    ones, or, with a text tower attached (model.text.tune), the tower's current encoding."""

    def __init__(self, vectors: torch.Tensor, hidden: int, dropout: float, adaptor: str, experts: int):
        super().__init__()
        self.register_buffer("vectors", vectors.float().clone(), persistent=False)  # [N + 1, E]
        self.adaptor = ADAPTORS[adaptor](vectors.shape[1], hidden, dropout, self.vectors, experts)
        self.tower: nn.Module | None = None

    def attach_tower(self, tower: nn.Module) -> None:
        self.tower = tower

    @torch.no_grad()
    def bake(self) -> torch.Tensor:
        """Replace the tower by the vectors it gives now (eval mode): a plain cached-vector table that
        scores exactly the same, for exports. Returns the [N + 1, E] vectors."""
        if self.tower is not None:
            self.tower.eval()
            self.vectors = self.tower().detach().clone()  # [N + 1, E]
            self.tower = None
        return self.vectors

    def forward(self) -> torch.Tensor:
        vectors = self.vectors if self.tower is None else self.tower()  # [N + 1, E]
        out = self.adaptor(vectors)  # [N + 1, D]
        keep = torch.ones(out.shape[0], 1, dtype=out.dtype, device=out.device)  # [N + 1, 1]
        keep[PAD] = 0.0
        return out * keep  # [N + 1, D]
