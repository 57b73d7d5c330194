"""The one model every command uses: item embedding -> sequence encoder -> scores tied to the embedding."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from seqrec_cli.core.encoders import ENCODERS
from seqrec_cli.core.item_repr import TextItems
from seqrec_cli.core.repeat import RepeatBias, WindowOffsets
from seqrec_cli.data.batching import PAD
from seqrec_cli.data.masked_batching import MASK
from seqrec_cli.spec.models import ModelSpec


class SeqRecModel(nn.Module):
    """model.items picks the item table: `id` (learned rows), `text` (adapted text vectors, which
    need `text_vectors` [N + 1, E]) or `id+text` (their sum). Inputs and scores use the same table."""

    def __init__(self, spec: ModelSpec, num_items: int, text_vectors: torch.Tensor | None = None):
        super().__init__()
        self.num_items = num_items
        self.hidden = spec.hidden
        self.emb_init_std = spec.item_init_std
        self.id_dropout = spec.text.id_dropout if spec.text is not None else 0.0
        self.item_emb = None
        self.text_items = None
        if spec.items != "text":
            self.item_emb = nn.Embedding(num_items + 1, spec.hidden, padding_idx=PAD)  # row 0 = PAD
        if spec.items != "id":
            if text_vectors is None or text_vectors.shape[0] != num_items + 1:
                raise ValueError(f"model.items {spec.items!r} needs text vectors for {num_items} items + PAD")
            self.text_items = TextItems(
                text_vectors, spec.hidden, spec.dropout, spec.text.adaptor, spec.text.experts
            )
        # Items held out of training (cold start): zero rows while training, so nothing learns from them.
        self.register_buffer("train_keep", None, persistent=False)  # [N + 1, 1] once hold_out_items is called
        self.register_buffer("held_out", None, persistent=False)  # [C] the held-out item ids
        self.encoder = ENCODERS[spec.encoder](spec)
        self.masked = self.encoder.objective == "masked_item"  # [MASK] inputs; one appended at inference
        self.uses_times = getattr(self.encoder, "uses_times", False)  # forward takes timestamps (HSTU)
        # model.repeat_bias starts at zero (own init, not the encoder's): it only adds what it learns
        self.repeat = RepeatBias(spec.max_len, spec.hidden) if spec.repeat_bias else None
        self._init_weights()

    def hold_out_items(self, items: torch.Tensor) -> None:
        keep = torch.ones(self.num_items + 1, 1, device=next(self.parameters()).device)  # [N + 1, 1]
        keep[items] = 0.0
        self.train_keep = keep
        self.held_out = items.to(keep.device)

    def unrankable_items(self) -> torch.Tensor | None:
        """[C] items this model cannot score: held out of training with no text to stand in for them
        (an id row that never trained is random). None when every item can be ranked."""
        return self.held_out if self.text_items is None else None

    def _init_weights(self) -> None:
        # Default: unit-variance inputs after the sqrt(D) scale. A smaller std (SASRec+'s 0.02) makes
        # Adam's fixed-size steps relatively larger for the table, which trains it faster.
        # Small init elsewhere keeps early logits calm.
        if self.item_emb is not None:
            # id+text: the id part starts at zero so the model starts from what the text says.
            std = self.emb_init_std if self.text_items is None else 0.0
            nn.init.normal_(self.item_emb.weight, std=std)
            with torch.no_grad():
                self.item_emb.weight[PAD].zero_()
        if self.encoder.keeps_own_init:
            return
        for name, p in self.encoder.named_parameters():
            if p.dim() >= 2:
                nn.init.normal_(p, std=0.02)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def encode(self, inputs: torch.Tensor, times: torch.Tensor | None = None) -> torch.Tensor:
        """inputs: [B, L] item ids (left-padded; MASK for masked encoders), times: [B, L] timestamps
        of the inputs or None (used by time-aware encoders only) -> hidden states [B, L, D]."""
        real = inputs != PAD  # [B, L]
        table = self.item_weights()  # [N + 1, D]
        if not self.masked:
            x = F.embedding(inputs, table, padding_idx=PAD)  # [B, L, D]
        else:
            is_mask = (inputs == MASK).unsqueeze(-1)  # [B, L, 1]
            x = torch.where(
                is_mask, self.encoder.mask_token, F.embedding(inputs.clamp(min=PAD), table)
            )  # [B, L, D]
        # sqrt(hidden) unless the encoder says otherwise (post-LN SASRec normalises its embeddings)
        x = x * getattr(self.encoder, "input_scale", math.sqrt(self.hidden))  # [B, L, D]
        if self.uses_times and times is not None:
            return self.encoder(x, real, times)  # [B, L, D]
        return self.encoder(x, real)  # [B, L, D]

    def item_weights(self) -> torch.Tensor:
        """[N + 1, D] the one item table for inputs and scores; column 0 (PAD) is masked wherever
        scores are used."""
        table = self.item_emb.weight if self.text_items is None else self.text_items()  # [N + 1, D]
        if self.item_emb is not None and self.text_items is not None:
            ids = self.item_emb.weight  # [N + 1, D]
            if self.training and self.id_dropout:  # some items seen through their text alone this step
                ids = ids * (torch.rand(ids.shape[0], 1, device=ids.device) >= self.id_dropout).to(ids.dtype)
            table = table + ids  # [N + 1, D]
        if self.training and self.train_keep is not None:
            table = table * self.train_keep  # [N + 1, D]
        return table

    def last_hidden(self, inputs: torch.Tensor, times: torch.Tensor | None = None) -> torch.Tensor:
        """[B, L] -> [B, D]: the state that predicts the next item (last column, left padding).

        Masked encoders read it at a [MASK] appended after the history (the oldest item makes room).
        """
        if self.masked:
            inputs = torch.cat([inputs[:, 1:], torch.full_like(inputs[:, :1], MASK)], dim=1)  # [B, L]
        return self.encode(inputs, times)[:, -1]  # [B, D]

    def window_offsets(self, inputs: torch.Tensor, last_hidden: torch.Tensor) -> WindowOffsets | None:
        """model.repeat_bias's offsets for the state after the last input item; None without one."""
        return None if self.repeat is None else self.repeat.last_position(inputs, last_hidden)

    def score_all(self, inputs: torch.Tensor, times: torch.Tensor | None = None) -> torch.Tensor:
        """[B, L] (and [B, L] times) -> [B, N + 1] scores over the whole catalogue; PAD and unrankable
        items score -inf."""
        h = self.last_hidden(inputs, times)  # [B, D]
        scores = (h @ self.item_weights().T).float()  # [B, N + 1]
        offsets = self.window_offsets(inputs, h)
        if offsets is not None:
            scores = offsets.add_to(scores)  # [B, N + 1]
        scores[:, PAD] = float("-inf")
        unrankable = self.unrankable_items()
        if unrankable is not None:
            scores[:, unrankable] = float("-inf")
        return scores
