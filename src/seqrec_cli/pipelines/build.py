"""Build a spec's model for a prepared dataset: item representation (text vectors when asked),
cold items held out of training, and a record of what the item table depends on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from seqrec_cli.core.model import SeqRecModel
from seqrec_cli.data.process import Sequences
from seqrec_cli.data.store import load_cold_items
from seqrec_cli.events import Events, no_events
from seqrec_cli.pipelines.item_text import TextVectors, text_vectors
from seqrec_cli.spec.models import ExperimentSpec


@dataclass
class BuiltModel:
    model: SeqRecModel
    items: str  # model.items
    text: TextVectors | None
    cold_items: list[int]

    @property
    def items_info(self) -> dict:
        """Stored with checkpoints and exports: what a transfer must match (the text encoder)."""
        return {"items": self.items,
                "text_model_hash": self.text.model_hash if self.text else None,
                "text_hash": self.text.text_hash if self.text else None}


def build_model(spec: ExperimentSpec, seqs: Sequences, prepared: Path,
                events: Events = no_events) -> BuiltModel:
    text = text_vectors(spec, prepared, events) if spec.model.items != "id" else None
    model = SeqRecModel(spec.model, seqs.num_items, text.vectors if text else None)
    cold = load_cold_items(prepared)
    if cold:
        model.hold_out_items(torch.tensor(cold, dtype=torch.long))
    return BuiltModel(model, spec.model.items, text, cold)
