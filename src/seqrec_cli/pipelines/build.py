"""Build a spec's model for a prepared dataset: item representation (text vectors when asked),
cold items held out of training, and a record of what the item table depends on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from seqrec_cli.core.model import SeqRecModel
from seqrec_cli.data.process import Sequences
from seqrec_cli.data.store import load_cold_items
from seqrec_cli.errors import UserError
from seqrec_cli.events import Events, no_events
from seqrec_cli.pipelines.item_text import TextVectors, text_vectors
from seqrec_cli.spec.models import ExperimentSpec


@dataclass
class BuiltModel:
    model: SeqRecModel
    items: str  # model.items
    text: TextVectors | None
    cold_items: list[int]

    text_tune: str = "frozen"  # model.text.tune; "baked:<tune>" once an export has fixed the vectors

    @property
    def items_info(self) -> dict:
        """Stored with checkpoints and exports: what a transfer must match (the text encoder, and
        whether it was finetuned)."""
        return {"items": self.items,
                "text_model_hash": self.text.model_hash if self.text else None,
                "text_hash": self.text.text_hash if self.text else None,
                "text_tune": self.text_tune if self.text else None}


def check_text_vectors(saved: dict | None, built: BuiltModel, where: str) -> None:
    """A checkpoint's adaptor was trained on certain text vectors; refuse to pair it with others (the
    texts, the token limit or the encoder's pooling/normalisation changed, e.g. vectors of seqrec < 0.3)."""
    before = (saved or {}).get("text_hash")
    now = built.items_info["text_hash"]
    if before and now and before != now:
        raise UserError(
            "the checkpoint was trained on other item text vectors than this spec gives now (the texts, "
            "model.text.max_length or the encoder's pooling/normalisation changed)",
            where=where,
            fix="train the run again (or start a new run from its weights with train.init_from)",
        )


def attach_text_tower(model: SeqRecModel, spec: ExperimentSpec, text: TextVectors) -> None:
    """model.text.tune lora / last_layer: the text encoder joins the model and trains (core/text_tower)."""
    from seqrec_cli.core.text_encoder import load_text_encoder
    from seqrec_cli.core.text_tower import TextTower, tokenize_catalogue

    options = spec.model.text
    tokenizer, encoder = load_text_encoder(text.folder)
    ids, mask, rows = tokenize_catalogue(tokenizer, text.texts, text.pipeline, options.max_length)
    tower = TextTower(encoder, text.pipeline, (ids, mask, rows), len(text.texts) + 1, options.tune,
                      options.tune_lora_r, options.tune_lora_alpha, chunk=options.batch_size)
    model.text_items.attach_tower(tower)


def build_model(spec: ExperimentSpec, seqs: Sequences, prepared: Path,
                events: Events = no_events) -> BuiltModel:
    text = text_vectors(spec, prepared, events) if spec.model.items != "id" else None
    model = SeqRecModel(spec.model, seqs.num_items, text.vectors if text else None)
    tune = spec.model.text.tune if text else "frozen"
    if text and tune != "frozen":
        attach_text_tower(model, spec, text)
    cold = load_cold_items(prepared)
    if cold:
        model.hold_out_items(torch.tensor(cold, dtype=torch.long))
    return BuiltModel(model, spec.model.items, text, cold, tune)
