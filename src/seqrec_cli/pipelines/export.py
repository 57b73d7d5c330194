"""`seqrec export`: the run's best model as a self-contained folder that reloads without the spec."""

from __future__ import annotations

import json
import time
from pathlib import Path

from seqrec_cli.artifacts.format import write_export
from seqrec_cli.core.runtime import resolve_runtime
from seqrec_cli.pipelines.common import BEST, load_dataset, load_trained_model
from seqrec_cli.pipelines.paths import export_dir, run_dir
from seqrec_cli.spec.loader import spec_hash
from seqrec_cli.spec.models import ExperimentSpec


def export(spec: ExperimentSpec, checkpoint: str = BEST) -> Path:
    seqs, manifest, prepared = load_dataset(spec)
    model, payload, ckpt_path = load_trained_model(spec, seqs, manifest, resolve_runtime("cpu", "fp32"), checkpoint)
    evals = {}
    for split in ("valid", "test"):
        path = run_dir(spec) / "eval" / f"{split}.json"
        if path.is_file():
            evals[split] = json.loads(path.read_text())
    return write_export(
        export_dir(spec),
        state=model.state_dict(),
        config={"model": spec.model.model_dump(mode="json"), "num_items": seqs.num_items},
        json_files={"item_ids.json": seqs.item_ids, "metrics.json": evals},
        text_files={"items.jsonl": (prepared / "items.jsonl").read_text(encoding="utf-8")},
        manifest_extra={"name": spec.name, "spec_hash": spec_hash(spec), "dataset_fingerprint": manifest["fingerprint"],
                        "checkpoint": {"path": str(ckpt_path), "epoch": int(payload["epoch"])},
                        "created_unix": time.time()},
    )
