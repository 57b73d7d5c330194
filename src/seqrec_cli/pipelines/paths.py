"""Where things live: the data root, the resolved data section, prepared/, runs/ and exports/."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from seqrec_cli.data.known import KNOWN_DATASETS
from seqrec_cli.errors import UserError
from seqrec_cli.spec.models import DataSpec, ExperimentSpec, ItemInfoSpec

DATA_ROOT_ENV = "SEQREC_DATA_ROOT"


def data_root(spec: ExperimentSpec) -> Path | None:
    root = spec.runtime.data_root or os.environ.get(DATA_ROOT_ENV)
    return Path(root).expanduser() if root else None


def resolved_data_spec(spec: ExperimentSpec) -> DataSpec:
    """The data section with a known dataset's defaults filled into the fields the spec left unset."""
    data = spec.data
    if data.dataset is None:
        if data.path is None or data.format is None:
            raise UserError(
                "data.path and data.format are required unless data.dataset names a known dataset",
                where="data",
                fix=f"set data.dataset to one of {sorted(KNOWN_DATASETS)} or give path and format",
            )
        return data
    known = KNOWN_DATASETS.get(data.dataset)
    if known is None:
        raise UserError(
            f"unknown dataset {data.dataset!r}",
            where="data.dataset",
            fix=f"use one of {sorted(KNOWN_DATASETS)}, or drop data.dataset and give data.path + data.format",
        )
    filled = data.model_copy()
    if filled.path is None:
        filled.path = known.path
        if filled.interactions is None:
            filled.interactions = known.interactions
        if filled.items is None and known.items is not None:
            filled.items = ItemInfoSpec(**known.items)
        if filled.sha256 is None:
            filled.sha256 = known.sha256
    if filled.format is None:
        filled.format = known.format
    return filled


def interactions_path(spec: ExperimentSpec, data: DataSpec) -> Path:
    path = Path(data.path).expanduser()
    root = data_root(spec)
    if not path.is_absolute() and root is not None:
        path = root / path
    if data.interactions:
        path = path / data.interactions
    if not path.exists():
        hint = f"set {DATA_ROOT_ENV} or runtime.data_root to the folder that holds {data.path!r}"
        if data.dataset in KNOWN_DATASETS:
            known = KNOWN_DATASETS[data.dataset]
            hint += f"; the canonical copy is {known.url} (content sha256 {known.sha256})"
        raise UserError(f"data file not found (data root: {root or 'not set'})", where=str(path), fix=hint)
    return path


def data_spec_hash(data: DataSpec) -> str:
    """Hash of everything that shapes the prepared data (not where it is written)."""
    # The engine and its resources shape how, not what: every engine writes the same dataset.
    payload = data.model_dump(
        mode="json", exclude={"prepared_dir", "engine", "engine_memory_gb", "engine_threads"}
    )
    if payload.get("cold_items") is None:  # added later: unset keeps earlier prepared folders' hashes
        payload.pop("cold_items", None)
    if payload.get("temporal") is None:
        payload.pop("temporal", None)  # unset: hashes like specs written before temporal splits existed
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def output_root(spec: ExperimentSpec) -> Path:
    return Path(spec.runtime.output_root).expanduser()


def prepared_dir(spec: ExperimentSpec, data: DataSpec) -> Path:
    if data.prepared_dir:
        return Path(data.prepared_dir).expanduser()
    label = data.dataset or Path(data.path).stem
    return output_root(spec) / "prepared" / f"{label}-{data_spec_hash(data)[:12]}"


def run_dir(spec: ExperimentSpec) -> Path:
    return output_root(spec) / "runs" / spec.name


def export_dir(spec: ExperimentSpec) -> Path:
    return (
        Path(spec.export.dir).expanduser() if spec.export.dir else output_root(spec) / "exports" / spec.name
    )
