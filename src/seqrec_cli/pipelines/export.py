"""`seqrec export`: the run's best model as a self-contained folder that reloads without the spec."""

from __future__ import annotations

import json
import time
from pathlib import Path

from seqrec_cli.artifacts.format import write_export
from seqrec_cli.core.methods import merge_lora
from seqrec_cli.core.runtime import resolve_runtime
from seqrec_cli.pipelines.common import BEST, load_dataset, load_trained
from seqrec_cli.pipelines.paths import export_dir, run_dir
from seqrec_cli.spec.loader import spec_hash
from seqrec_cli.spec.models import ExperimentSpec


def export(spec: ExperimentSpec, checkpoint: str = BEST) -> Path:
    seqs, manifest, prepared = load_dataset(spec)
    built, payload, ckpt_path = load_trained(spec, seqs, manifest, resolve_runtime("cpu", "fp32"), checkpoint)
    model = merge_lora(built.model)  # exports hold plain (merged) weights
    tensors = {"item_text.safetensors": {"vectors": built.text.vectors}} if built.text else {}
    unrankable = model.unrankable_items()  # held-out items an id table cannot score stay unrecommendable
    evals = {}
    for split in ("valid", "test"):
        path = run_dir(spec) / "eval" / f"{split}.json"
        if path.is_file():
            evals[split] = json.loads(path.read_text())
    return write_export(
        export_dir(spec),
        state=model.state_dict(),
        config={
            "model": spec.model.model_dump(mode="json"),
            "num_items": seqs.num_items,
            "items": built.items_info,
            "train_method": spec.train.method,
            "unrankable_items": [] if unrankable is None else unrankable.tolist(),
        },
        json_files={"item_ids.json": seqs.item_ids, "metrics.json": evals},
        text_files={"items.jsonl": (prepared / "items.jsonl").read_text(encoding="utf-8")},
        tensor_files=tensors,
        manifest_extra={
            "name": spec.name,
            "spec_hash": spec_hash(spec),
            "dataset_fingerprint": manifest["fingerprint"],
            "checkpoint": {"path": str(ckpt_path), "epoch": int(payload["epoch"])},
            "created_unix": time.time(),
        },
    )
