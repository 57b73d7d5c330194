"""Start a model from another run's weights: the same dataset (every weight), a newer log of the same
catalogue lineage (warm start by raw item id, core/warm_start.py), or another catalogue (transfer:
only what does not depend on the catalogue).

Sources: a run name under runs/, a run folder (its best checkpoint), a checkpoint file, or an
export folder. Across catalogues the item ids mean different things, so the id table never
moves; the sequence encoder and the text adaptor do, which needs text-based items on both sides
and the same text encoder (the adaptor was trained on its vector space). With id+text, the new
catalogue's id table starts at zero, so before finetuning the model scores by text alone.
A warm start by raw id (train.init_items by_raw_id; the default for model.items id) instead keeps
every known item's row: the two logs must share raw item ids (a newer log of the same source).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

from seqrec_cli.artifacts.format import EXPORT_FORMAT, REEXPORT_FIX, verify_export
from seqrec_cli.core.model import SeqRecModel
from seqrec_cli.core.warm_start import remap_item_rows
from seqrec_cli.data.store import REPREPARE_FIX, read_json_file, read_manifest
from seqrec_cli.errors import UserError
from seqrec_cli.pipelines.common import BEST
from seqrec_cli.pipelines.paths import prepared_dir, resolved_data_spec
from seqrec_cli.pipelines.run_format import load_run_checkpoint

ID_TABLE = "item_emb."


@dataclass
class Source:
    state: dict[str, torch.Tensor]
    fingerprint: str | None
    items: dict  # items_info of the source ({"items": "id"} when it predates text items)
    where: str
    item_ids: list[str] | None = None  # raw id per source row (index 0 = PAD) when it can be found
    prepared: Path | None = None  # the source run's prepared dataset, when it still exists


def _run_prepared(run_folder: Path, fingerprint: str | None) -> Path | None:
    """The prepared dataset a run folder was trained on (from its spec.yaml), if it is still there
    and still holds the same data (fingerprint)."""
    saved = run_folder / "spec.yaml"
    if not saved.is_file():
        return None
    from seqrec_cli.spec.loader import load_spec

    try:  # the run's checkpoint passed the run format check, so its saved spec reads as it is
        spec = load_spec(saved)
        folder = prepared_dir(spec, resolved_data_spec(spec))
        if read_manifest(folder)["fingerprint"]["hash"] != fingerprint:
            return None
    except UserError:
        return None
    return folder


def _is_export(folder: Path) -> bool:
    manifest = folder / "manifest.json"
    if not manifest.is_file():
        return False
    try:
        return json.loads(manifest.read_text()).get("format") == EXPORT_FORMAT
    except (ValueError, AttributeError):  # a damaged manifest: verify_export says what is wrong
        return not (folder / "checkpoints").is_dir()


def load_source(source: str, runs_root: Path) -> Source:
    path = runs_root / source if (runs_root / source).is_dir() else Path(source).expanduser()
    if path.is_dir() and _is_export(path):
        manifest = verify_export(path)
        config = read_json_file(path / "config.json", "the export's config", REEXPORT_FIX)
        return Source(
            load_file(str(path / "model.safetensors")),
            manifest.get("dataset_fingerprint", {}).get("hash"),
            config.get("items", {"items": "id"}),
            str(path),
            item_ids=read_json_file(path / "item_ids.json", "the export's item ids", REEXPORT_FIX),
        )
    if path.is_dir():
        path = path / BEST
    payload = load_run_checkpoint(path)
    fingerprint = payload.get("fingerprint")
    prepared = _run_prepared(path.parent.parent, fingerprint)  # <run>/checkpoints/<file>
    item_ids = None
    if prepared:
        item_ids = read_json_file(prepared / "item_ids.json", "the item id list", REPREPARE_FIX)
    return Source(payload["model"], fingerprint, payload.get("items", {"items": "id"}), str(path),
                  item_ids=item_ids, prepared=prepared)


def _load(model: SeqRecModel, state: dict, where: str, strict: bool = True):
    if model.repeat is not None and not any(key.startswith("repeat.") for key in state):
        # a source without model.repeat_bias: the offset starts at zero here, as in any new model
        zeros = {f"repeat.{key}": torch.zeros_like(value) for key, value in model.repeat.state_dict().items()}
        state = {**state, **zeros}
    try:
        return model.load_state_dict(state, strict=strict)
    except RuntimeError as exc:
        raise UserError(
            f"the source weights do not fit this spec's model section ({exc})",
            where=where,
            fix="use the source run's model section (hidden, layers, heads, max_len, adaptor)",
        ) from exc


def init_from(model: SeqRecModel, items_info: dict, source: str, fingerprint: str, runs_root: Path,
              item_ids: list[str] | None = None, init_items: str = "auto") -> dict:
    """Load `source` into `model` (before any LoRA wrapping); returns what was done, for the run record.
    item_ids: this dataset's raw id per item (needed for a warm start by raw id)."""
    src = load_source(source, runs_root)
    if any(".lora_" in key or ".base_layer." in key for key in src.state):
        raise UserError("the source holds LoRA adapters, not plain weights", where=src.where,
                        fix="export the source run (`seqrec export`; exports hold merged weights) and point "
                            "train.init_from at the export folder")
    if src.fingerprint == fingerprint:
        _load(model, src.state, src.where)
        return {"path": source, "mode": "same_dataset"}
    if init_items == "by_raw_id" or (init_items == "auto" and items_info["items"] == "id"):
        return warm_start(model, items_info, src, source, item_ids)
    return _transfer(model, items_info, src, source)


def warm_start(
    model: SeqRecModel, items_info: dict, src: Source, source: str, item_ids: list[str] | None
) -> dict:
    """Known raw ids keep their rows exactly, new items start from text or the mean row, vanished ones go."""
    src_items = src.items.get("items", "id")
    if src_items != items_info["items"]:
        raise UserError(
            f"the source was trained on a different prepared dataset with model.items {src_items} and "
            f"this spec "
            f"has {items_info['items']}: id items cannot transfer across catalogues between item "
            f"representations",
            where=src.where,
            fix=f"set model.items {src_items} (and the source's model section) in this spec, or "
            "init from a run of this dataset",
        )
    if items_info["items"] != "id" and src.items.get("text_model_hash") != items_info["text_model_hash"]:
        raise UserError("the source was trained on vectors of a different text encoder", where=src.where,
                        fix="use the source run's model.text.encoder (and max_length) in this spec")
    if src.item_ids is None or item_ids is None:
        raise UserError(
            "a warm start by raw item id needs the source's raw item ids, and its prepared dataset "
            "is gone (or changed) since it was trained",
            where=src.where,
            fix="export the source run (`seqrec export`; exports carry item_ids.json) and init from "
            "the export, or prepare the source run's spec again",
        )
    state, done = remap_item_rows(src.state, src.item_ids, item_ids, has_text=model.text_items is not None)
    if done.kept == 0:
        raise UserError(
            f"the source was trained on a different prepared dataset that shares no raw item id with this "
            f"one "
            f"({len(src.item_ids) - 1} source items, {len(item_ids) - 1} here): another dataset's catalogue",
            where=src.where,
            fix="warm-start from a run on an older part of this log; across datasets use model.items text or "
            "id+text with train.init_items auto (catalogue transfer)",
        )
    _load(model, state, src.where)
    return {"path": source, "mode": "warm_start", **done.describe()}


def _transfer(model: SeqRecModel, items_info: dict, src: Source, source: str) -> dict:
    if items_info["items"] == "id" or src.items.get("items", "id") == "id":
        raise UserError(
            "the source was trained on a different prepared dataset, and id items cannot transfer across "
            f"catalogues (source: model.items {src.items.get('items', 'id')}, this spec: "
            f"{items_info['items']}): "
            "item ids of two datasets name different items",
            where=src.where,
            fix="train the source and this run with model.items text or id+text, or init from a run of this "
            "dataset or of an older part of its log (train.init_items by_raw_id)",
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
