"""`seqrec export`: the run's best model as a self-contained folder that reloads without the spec."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from seqrec_cli.artifacts.format import write_export
from seqrec_cli.artifacts.model_card import model_card
from seqrec_cli.core.methods import merge_lora
from seqrec_cli.core.runtime import resolve_runtime
from seqrec_cli.data.batching import PAD
from seqrec_cli.errors import UserError
from seqrec_cli.pipelines.common import BEST, load_dataset, load_trained
from seqrec_cli.pipelines.paths import export_dir, run_dir
from seqrec_cli.spec.loader import spec_hash
from seqrec_cli.spec.models import ExperimentSpec

ExportFormat = Literal["safetensors", "onnx"]
AnnChoice = Literal["auto", "none", "ivf"]


@dataclass(frozen=True)
class ExportOptions:
    """What goes into the folder beyond the weights. `ann`: auto builds the approximate index from
    `ann_min_items` items on; ivf always; none never."""

    format: ExportFormat = "safetensors"
    ann: AnnChoice = "auto"
    ann_min_items: int = 100_000
    ann_recall: float = 0.98
    calibration_users: int = 512


@torch.no_grad()
def _user_vectors(model, seqs, max_len: int, users: int, seed: int) -> np.ndarray:
    """[Q, D] user vectors of a sample of users' latest histories (the ANN index's calibration queries)."""
    rng = np.random.default_rng(seed)
    picks = rng.choice(seqs.num_users, size=min(users, seqs.num_users), replace=False)
    batch = torch.full((len(picks), max_len), PAD, dtype=torch.long)  # [Q, L]
    for row, u in enumerate(picks):
        items = seqs.user_items(int(u))[-max_len:]
        batch[row, max_len - len(items) :] = torch.from_numpy(items.astype(np.int64))
    return torch.cat([model.last_hidden(chunk) for chunk in batch.split(128)]).float().numpy()  # [Q, D]


def _exported_model(spec: ExperimentSpec, built) -> tuple:
    """(model, model section, items info, text vectors) as the export holds them."""
    model = merge_lora(built.model).eval()  # exports hold plain (merged) weights
    model_section = spec.model.model_dump(mode="json")
    items_info = built.items_info
    vectors = built.text.vectors if built.text else None
    if model.text_items is not None and model.text_items.tower is not None:
        # A finetuned text tower is baked: its current vectors become the export's cached vectors, so
        # the export reloads as a plain text model that scores exactly as the run did.
        vectors = model.text_items.bake()  # [N + 1, E]
        model_section["text"]["tune"] = "frozen"
        items_info = {**items_info, "text_tune": f"baked:{spec.model.text.tune}"}
    return model, model_section, items_info, vectors


def _read_evals(spec: ExperimentSpec) -> dict:
    evals = {}
    for split in ("valid", "test"):
        path = run_dir(spec) / "eval" / f"{split}.json"
        if path.is_file():
            evals[split] = json.loads(path.read_text())
    return evals


def _serving_files(model, spec: ExperimentSpec, seqs, table: torch.Tensor, options: ExportOptions) -> tuple:
    """(writers, formats, ANN info) for the optional ONNX graph and ANN index."""
    writers, formats, ann_info = [], ["safetensors"], None
    if options.format == "onnx":
        from seqrec_cli.artifacts.onnx_export import write_onnx

        writers.append(
            lambda tmp: write_onnx(model, tmp / "model.onnx", spec.model.max_len)
        )  # + model_times.onnx (HSTU)
        formats.append("onnx")
    if options.ann == "ivf" or (options.ann == "auto" and seqs.num_items >= options.ann_min_items):
        from seqrec_cli.artifacts.ann import build_ivf

        queries = _user_vectors(model, seqs, spec.model.max_len, options.calibration_users, spec.train.seed)
        index = build_ivf(table.numpy(), queries, options.ann_recall, seed=spec.train.seed)
        ann_info = {"nprobe": index.nprobe, "recall_at_10": index.recall_at_10}
        writers.append(index.save)
    return writers, formats, ann_info


def export(spec: ExperimentSpec, checkpoint: str = BEST, options: ExportOptions = ExportOptions()) -> Path:
    if spec.model.repeat_bias:  # served scores are state . table (and ANN search over it): no offsets yet
        raise UserError("a model with model.repeat_bias cannot be exported yet: the export's scoring "
                        "(safetensors table, ONNX graph, ANN index) has no window offsets",
                        where="model.repeat_bias",
                        fix="evaluate it from its run folder (seqrec evaluate), or train with "
                        "model.repeat_bias: false to export and serve")
    seqs, manifest, prepared = load_dataset(spec)
    built, payload, ckpt_path = load_trained(spec, seqs, manifest, resolve_runtime("cpu", "fp32"), checkpoint)
    model, model_section, items_info, vectors = _exported_model(spec, built)
    with torch.no_grad():
        table = model.item_weights().detach().float().clone()  # [N + 1, D] eval-mode scoring table
    tensors = {"item_table.safetensors": {"table": table}}
    if vectors is not None:
        tensors["item_text.safetensors"] = {"vectors": vectors}
    unrankable = model.unrankable_items()  # held-out items an id table cannot score stay unrecommendable
    evals = _read_evals(spec)
    popularity = np.bincount(seqs.items.astype(np.int64), minlength=seqs.num_items + 1).tolist()  # [N + 1]
    writers, formats, ann_info = _serving_files(model, spec, seqs, table, options)
    card = model_card(
        spec.name,
        manifest["fingerprint"],
        spec.model_dump(mode="json"),
        evals,
        seqs.num_items,
        0 if unrankable is None else len(unrankable),
        formats,
        ann_info,
    )
    return write_export(
        export_dir(spec),
        state=model.state_dict(),
        config={
            "model": model_section,
            "num_items": seqs.num_items,
            "items": items_info,
            "train_method": spec.train.method,
            "unrankable_items": [] if unrankable is None else unrankable.tolist(),
        },
        json_files={"item_ids.json": seqs.item_ids, "metrics.json": evals, "popularity.json": popularity},
        text_files={"items.jsonl": (prepared / "items.jsonl").read_text(encoding="utf-8"), "README.md": card},
        tensor_files=tensors,
        writers=writers,
        manifest_extra={
            "name": spec.name,
            "spec_hash": spec_hash(spec),
            "dataset_fingerprint": manifest["fingerprint"],
            "checkpoint": {"path": str(ckpt_path), "epoch": int(payload["epoch"])},
            "formats": formats,
            "created_unix": time.time(),
        },
    )
