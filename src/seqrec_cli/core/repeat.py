"""model.repeat_bias: a learned score offset for the items already in a model's input window.

A dot-product model scores the items it has just read highly (they are the nearest to its state), which
wastes top-k slots where people rarely go back to an item (MovieLens: never) and under-ranks them where
they often do (music). The offset of item i for the state after position t of a window is

    sum over the positions s <= t that hold i of  by_distance[t - s]   +   gate(h_t) if i is among them

(recency terms per occurrence, plus one context term per distinct item, as RepeatNet splits repeat from
explore). Both start at zero, so a new model scores exactly as one without the offset, and learn their
sign from the data. Only the window the model reads is used: nothing beyond model.max_len.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from seqrec_cli.data.batching import PAD


def _columns(items: torch.Tensor, valid: torch.Tensor, lo: int,
             cols: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Where each window entry lands in a block of items lo..lo+cols-1: ([R, W] column, with `cols`
    (one spare column) for entries outside the block or not valid; [R, W] inside)."""
    inside = valid & (items >= lo) & (items < lo + cols)  # [R, W]
    return torch.where(inside, items - lo, cols), inside


@dataclass
class WindowOffsets:
    """Offsets for R scoring rows, each over up to W window items (R = cases, or labelled positions)."""

    items: torch.Tensor  # [R, W] item ids in the row's window (anything where not valid)
    recency: torch.Tensor  # [R, W] by_distance term of each window entry (0 where not valid)
    gate: torch.Tensor  # [R] context term, added once to each distinct valid item
    valid: torch.Tensor  # [R, W] bool: the entry is a real item the row's state has read

    def add_to(self, scores: torch.Tensor, lo: int = 0) -> torch.Tensor:
        """scores [R, C] of items lo..lo+C-1 -> the same with each row's offsets added (out of place)."""
        rows, cols = scores.shape
        col, inside = _columns(self.items, self.valid, lo, cols)  # [R, W]
        recency = torch.where(inside, self.recency, 0.0).to(scores.dtype)  # [R, W]
        spare = scores.new_zeros(rows, cols + 1)  # [R, C + 1]
        by_distance = spare.scatter_add(1, col, recency)[:, :cols]  # [R, C]
        seen = spare.scatter(1, col, 1.0)[:, :cols]  # [R, C] 1 where the item is in the window
        return scores + by_distance + self.gate.to(scores.dtype).unsqueeze(1) * seen

    def totals(self) -> WindowTotals:
        """Each entry's item's whole offset (every occurrence's term plus the gate), for evaluation.
        Costs [R, W, W]: for scoring batches, not for every training position."""
        same = (self.items.unsqueeze(2) == self.items.unsqueeze(1)) & self.valid.unsqueeze(1)  # [R, W, W]
        total = (same * self.recency.unsqueeze(1)).sum(dim=2) + self.gate.unsqueeze(1)  # [R, W]
        return WindowTotals(self.items, torch.where(self.valid, total, 0.0), self.valid)

    def rows(self, keep: torch.Tensor) -> WindowOffsets:
        """Select rows (bool mask or indices over R)."""
        return WindowOffsets(self.items[keep], self.recency[keep], self.gate[keep], self.valid[keep])


@dataclass
class WindowTotals:
    """One finished offset per window entry (equal for every occurrence of an item): evaluation places
    it in blocks and reads it for targets, so a target's score is the same float either way."""

    items: torch.Tensor  # [R, W] item ids in the row's window
    total: torch.Tensor  # [R, W] the entry's item's whole offset (0 where not valid)
    valid: torch.Tensor  # [R, W] bool

    def place(self, scores: torch.Tensor, lo: int = 0) -> torch.Tensor:
        """scores [R, C] of items lo..lo+C-1 plus each window item's total."""
        rows, cols = scores.shape
        col, _ = _columns(self.items, self.valid, lo, cols)  # [R, W]
        # every occurrence of an item carries the same total, so the order of the writes never matters
        placed = scores.new_zeros(rows, cols + 1).scatter(1, col, self.total.to(scores.dtype))[:, :cols]
        return scores + placed

    def of_items(self, scores: torch.Tensor, rows: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """scores [T] of one (row, item) pair each (rows, items [T]) plus that item's total in its row."""
        match = self.valid[rows] & (self.items[rows] == items.unsqueeze(1))  # [T, W]
        first = match.to(torch.int8).argmax(dim=1, keepdim=True)  # [T, 1] any occurrence: all equal
        total = self.total[rows].gather(1, first).squeeze(1).to(scores.dtype)  # [T]
        return scores + torch.where(match.any(dim=1), total, 0.0)


class RepeatBias(nn.Module):
    def __init__(self, max_len: int, hidden: int):
        super().__init__()
        self.by_distance = nn.Parameter(torch.zeros(max_len))  # [max_len]; 0 = the most recent item
        self.gate = nn.Linear(hidden, 1)
        nn.init.zeros_(self.gate.weight)
        nn.init.zeros_(self.gate.bias)

    def every_position(self, inputs: torch.Tensor, hidden: torch.Tensor) -> WindowOffsets:
        """inputs [B, L] (left padded), hidden [B, L, D] -> offsets for the B * L states (row b * L + t),
        each over the items at positions <= t: causal, as the state after t has read nothing later."""
        b, length = inputs.shape
        t = torch.arange(length, device=inputs.device)
        distance = t.view(-1, 1) - t.view(1, -1)  # [L, L] t - s
        read = (distance >= 0).unsqueeze(0) & (inputs != PAD).unsqueeze(1)  # [B, L, L]
        recency = self.by_distance[distance.clamp(min=0)].unsqueeze(0) * read  # [B, L, L]
        items = inputs.unsqueeze(1).expand(b, length, length)  # [B, L, L]
        gate = self.gate(hidden).squeeze(-1)  # [B, L]
        return WindowOffsets(items.reshape(b * length, length), recency.reshape(b * length, length),
                             gate.reshape(-1).float(), read.reshape(b * length, length))

    def last_position(self, inputs: torch.Tensor, last_hidden: torch.Tensor) -> WindowOffsets:
        """inputs [B, L] (left padded), last_hidden [B, D] -> offsets for the state after the last item."""
        length = inputs.shape[1]
        distance = torch.arange(length - 1, -1, -1, device=inputs.device)  # [L] L-1 .. 0
        read = inputs != PAD  # [B, L]
        recency = self.by_distance[distance].unsqueeze(0) * read  # [B, L]
        return WindowOffsets(inputs, recency, self.gate(last_hidden).squeeze(-1).float(), read)
