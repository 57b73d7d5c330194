"""Warm start across catalogues by raw item id: a model of an older log initialises one of a newer log.

Item identity across model versions is the raw item id. Every per-item tensor of the source state
(the id table `item_emb.weight`, [N_src + 1, D]) is rebuilt in the target catalogue's order:
- an item whose raw id the source knows keeps its learned row exactly (bit for bit);
- an item the source never saw (new) starts as the MEAN of the known rows, so it scores like an
  average known item until training moves it. With a text tower (id+text) the id part of a new item
  starts at zero instead: its text (through the moved adaptor) stands in for it, as in a fresh
  id+text model. `context_rows` can then place an id-only model's new rows where the model's own
  predictions pointed when users chose them (`seqrec update`'s update.new_items: context);
- an item of the source missing from the target catalogue (vanished) is dropped.
Everything else (sequence encoder, text adaptor, [MASK] token) does not depend on the catalogue and
moves unchanged. Text vectors are a non-persistent buffer of the target catalogue, never moved.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from seqrec_cli.data.batching import PAD

ITEM_ROWS = ("item_emb.weight",)  # every state entry that has one row per item (PAD row 0)


@dataclass
class WarmStart:
    """What a warm start did: how many target items kept a row, how many are new, how many vanished."""

    kept: int
    new: int
    dropped: int
    new_init: str  # "mean_known_row" (id) or "zero_id_part" (id+text: text stands in)

    def describe(self) -> dict:
        return {"kept": self.kept, "new": self.new, "dropped": self.dropped, "new_init": self.new_init}


def row_map(source_ids: list[str], target_ids: list[str]) -> torch.Tensor:
    """[N_tgt + 1] source row of each target item by raw id (-1: new item); index 0 = PAD -> 0."""
    where = {raw: i for i, raw in enumerate(source_ids) if i != PAD}
    rows = [where.get(raw, -1) for raw in target_ids]
    rows[PAD] = PAD
    return torch.tensor(rows, dtype=torch.long)


def remap_item_rows(state: dict[str, torch.Tensor], source_ids: list[str], target_ids: list[str],
                    has_text: bool) -> tuple[dict[str, torch.Tensor], WarmStart]:
    """The source state with every per-item tensor rebuilt for `target_ids` (see the module doc)."""
    rows = row_map(source_ids, target_ids)  # [N_tgt + 1]
    known = rows >= 0  # [N_tgt + 1]
    kept = int(known[1:].sum())
    out = dict(state)
    for key in ITEM_ROWS:
        if key not in state:
            continue
        old = state[key]  # [N_src + 1, D]
        if old.shape[0] != len(source_ids):
            raise ValueError(
                f"{key} has {old.shape[0]} rows, the source catalogue {len(source_ids)} (with PAD)"
            )
        if has_text:
            fill = torch.zeros(old.shape[1], dtype=old.dtype)  # [D]
        else:
            fill = old[1:].mean(0) if len(old) > 1 else torch.zeros(old.shape[1], dtype=old.dtype)  # [D]
        new = fill.expand(len(target_ids), -1).clone()  # [N_tgt + 1, D]
        new[known] = old[rows[known]]
        new[PAD] = 0.0
        out[key] = new
    return out, WarmStart(kept=kept, new=int((~known).sum()), dropped=len(source_ids) - 1 - kept,
                          new_init="zero_id_part" if has_text else "mean_known_row")


@torch.no_grad()
def context_rows(model: nn.Module, items: torch.Tensor, prefixes: torch.Tensor, scale: float) -> int:
    """Rows for new items from the states that preceded them: items [P] (new item ids, one per training
    occurrence), prefixes [P, L] (the left-padded history before each occurrence). Each new item's row
    becomes the direction of the mean state that predicted it, at `scale` times the mean norm of the
    other rows: a short update (a few dozen optimizer steps) cannot move a mean-row start far enough
    for a new item ever to reach a top-10 list. Returns how many rows were set."""
    was_training = model.training
    model.eval()
    table = model.item_emb.weight  # [N + 1, D]
    new = torch.unique(items)  # [M]
    others = torch.ones(table.shape[0], dtype=torch.bool)
    others[new] = False
    others[PAD] = False
    norm = table[others].norm(dim=1).mean()
    chunks = [model.last_hidden(prefixes[i:i + 512]) for i in range(0, len(prefixes), 512)]
    states = torch.cat(chunks)  # [P, D]
    sums = torch.zeros(table.shape[0], table.shape[1]).index_add_(0, items, states.float())  # [N + 1, D]
    direction = sums[new] / sums[new].norm(dim=1, keepdim=True).clamp(min=1e-12)  # [M, D]
    table[new] = (direction * norm * scale).to(table.dtype)
    model.train(was_training)
    return int(len(new))
