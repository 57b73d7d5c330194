"""Start a model from another run's weights: the same dataset (every weight), or another catalogue
(transfer: only what does not depend on the catalogue).

Sources: a run name under runs/, a run folder (its best checkpoint), a checkpoint file, or an
export folder. Across catalogues the item ids mean different things, so the id table never
moves; the sequence encoder and the text adaptor do, which needs text-based items on both sides
and the same text encoder (the adaptor was trained on its vector space). With id+text, the new
catalogue's id table starts at zero, so before finetuning the model scores by text alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

from seqrec_cli.artifacts.format import EXPORT_FORMAT, verify_export
from seqrec_cli.core.model import SeqRecModel
from seqrec_cli.errors import UserError
from seqrec_cli.pipelines.common import BEST
from seqrec_cli.pipelines.run_format import load_run_checkpoint

ID_TABLE = "item_emb."


@dataclass
class Source:
    state: dict[str, torch.Tensor]
    fingerprint: str | None
    items: dict  # items_info of the source ({"items": "id"} when it predates text items)
    where: str


def _is_export(folder: Path) -> bool:
    manifest = folder / "manifest.json"
    return manifest.is_file() and json.loads(manifest.read_text()).get("format") == EXPORT_FORMAT


def load_source(source: str, runs_root: Path) -> Source:
    path = runs_root / source if (runs_root / source).is_dir() else Path(source).expanduser()
    if path.is_dir() and _is_export(path):
        manifest = verify_export(path)
        config = json.loads((path / "config.json").read_text())
        return Source(
            load_file(str(path / "model.safetensors")),
            manifest.get("dataset_fingerprint", {}).get("hash"),
            config.get("items", {"items": "id"}),
            str(path),
        )
    if path.is_dir():
        path = path / BEST
    payload = load_run_checkpoint(path)
    return Source(
        payload["model"], payload.get("fingerprint"), payload.get("items", {"items": "id"}), str(path)
    )


def _load(model: SeqRecModel, state: dict, where: str, strict: bool = True):
    try:
        return model.load_state_dict(state, strict=strict)
    except RuntimeError as exc:
        raise UserError(
            f"the source weights do not fit this spec's model section ({exc})",
            where=where,
            fix="use the source run's model section (hidden, layers, heads, max_len, adaptor)",
        ) from exc


def init_from(model: SeqRecModel, items_info: dict, source: str, fingerprint: str, runs_root: Path) -> dict:
    """Load `source` into `model` (before any LoRA wrapping); returns what was done, for the run record."""
    src = load_source(source, runs_root)
    if any(".lora_" in key or ".base_layer." in key for key in src.state):
        raise UserError("the source holds LoRA adapters, not plain weights", where=src.where,
                        fix="export the source run (`seqrec export`; exports hold merged weights) and point "
                            "train.init_from at the export folder")
    if src.fingerprint == fingerprint:
        _load(model, src.state, src.where)
        return {"path": source, "mode": "same_dataset"}
    if items_info["items"] == "id" or src.items.get("items", "id") == "id":
        raise UserError(
            "the source was trained on a different prepared dataset, and id items cannot transfer across "
            f"catalogues (source: model.items {src.items.get('items', 'id')}, "
            f"this spec: {items_info['items']}): "
            "item ids of two datasets name different items",
            where=src.where,
            fix="train the source and this run with model.items text or id+text, "
            "or init from a run of this dataset",
        )
    if src.items.get("text_model_hash") != items_info["text_model_hash"]:
        raise UserError("the source was trained on vectors of a different text encoder", where=src.where,
                        fix="use the source run's model.text.encoder (and max_length) in this spec")
    src_tune, tune = src.items.get("text_tune") or "frozen", items_info.get("text_tune") or "frozen"
    if src_tune != tune:
        raise UserError(
            f"the source's text encoder was {src_tune!r} (model.text.tune), this spec's is {tune!r}: "
            "its adaptor was trained on other vectors",
            where=src.where,
            fix="use the source run's model.text.tune, or a source trained with cached vectors",
        )
    moved = {k: v for k, v in src.state.items() if not k.startswith(ID_TABLE)}
    missing, unexpected = _load(model, moved, src.where, strict=False)
    # Only the id table may be missing (id+text here); anything else means the models differ.
    wrong = [k for k in missing if not k.startswith(ID_TABLE)] + list(unexpected)
    if wrong:
        raise UserError(
            f"the source weights do not match this model: {', '.join(wrong[:6])}",
            where=src.where,
            fix="use the same model section (encoder, items, text.adaptor) as the source run",
        )
    if model.item_emb is not None:
        with torch.no_grad():
            model.item_emb.weight.zero_()
    return {"path": source, "mode": "transfer", "moved": len(moved), "fresh": sorted(missing)}
