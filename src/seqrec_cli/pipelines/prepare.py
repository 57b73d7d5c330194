"""`seqrec prepare`: raw interactions -> prepared dataset folder (a no-op when it already exists)."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from seqrec_cli.atomic import sweep_temps, temp_prefix
from seqrec_cli.data.cold import draw_cold_items, hold_out_items
from seqrec_cli.data.item_readers import read_item_info
from seqrec_cli.data.partitions import parquet_parts, parts_sha256
from seqrec_cli.data.process import Sequences, build_sequences
from seqrec_cli.data.readers import interaction_source, read_interactions
from seqrec_cli.data.splits import make_plan
from seqrec_cli.data.store import load_prepared, read_manifest, write_prepared
from seqrec_cli.errors import DataError, UserError
from seqrec_cli.events import Events, PrepareReading, PrepareReused, PrepareWritten, no_events
from seqrec_cli.pipelines.paths import data_spec_hash, interactions_path, prepared_dir, resolved_data_spec
from seqrec_cli.spec.models import DataSpec, ExperimentSpec


@dataclass
class PrepareResult:
    folder: Path
    manifest: dict
    reused: bool


def content_sha256(path: Path, data: DataSpec) -> str:
    """sha256 of the decompressed bytes, so the checksum does not depend on the compressor; a folder
    of Parquet parts hashes every part (path and bytes) in read order; another folder or a zip: the
    file the format's reader reads from it."""
    parts = [] if data.interactions else parquet_parts(path)
    if parts:
        return parts_sha256(path, parts)
    digest = hashlib.sha256()
    with interaction_source(path, data).binary() as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def prepare(spec: ExperimentSpec, events: Events = no_events) -> PrepareResult:
    data = resolved_data_spec(spec)
    folder = prepared_dir(spec, data)
    wanted_hash = data_spec_hash(data)
    sweep_temps(folder.parent)  # half-written datasets of killed processes (this host's, pid gone)
    if folder.exists():
        return _reuse(folder, data, wanted_hash, events)

    source = interactions_path(spec, data)
    started = time.perf_counter()
    checksum = content_sha256(source, data)
    if data.sha256 and checksum != data.sha256:
        raise DataError(f"content sha256 {checksum} does not match the expected {data.sha256}",
                        where=str(source), fix="use the canonical file, or remove/update data.sha256")
    events(PrepareReading(str(source)))
    work = Path(tempfile.mkdtemp(prefix=temp_prefix(f"{folder.name}.work"), dir=_parent(folder)))
    try:
        return _prepare_with(spec, data, folder, wanted_hash, source, checksum, started, work, events)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _parent(folder: Path) -> Path:
    folder.parent.mkdir(parents=True, exist_ok=True)
    return folder.parent


def read_and_build(source: Path, data, work: Path, threads: int | None) -> tuple[Sequences, int]:
    """(sequences, raw rows) from the engine `data.engine` names; all engines give the same sequences."""
    if data.engine == "local":
        raw = read_interactions(source, data)
        return build_sequences(raw, data), len(raw)
    if data.engine == "duckdb":
        from seqrec_cli.data.engine_duckdb import prepare_duckdb

        result = prepare_duckdb(source, data, work, data.engine_threads or threads)
    else:
        from seqrec_cli.data.engine_spark import prepare_spark

        result = prepare_spark(source, data, work, data.engine_threads or threads)
    return result.seqs, result.rows


def _prepare_with(spec, data, folder, wanted_hash, source, checksum, started, work, events) -> PrepareResult:
    seqs, rows = read_and_build(source, data, work, spec.runtime.threads)
    cold = None
    if data.cold_items is not None:
        cold = draw_cold_items(seqs.num_items, data.cold_items.fraction, data.cold_items.seed)
        seqs = hold_out_items(seqs, cold, data.min_user_len)
    plan = make_plan(seqs, data.split, data.temporal)  # raises on leakage, or a temporal split without times
    table = None
    if data.items is not None:
        base = source.parent if source.is_file() else source
        table = read_item_info(base, data.items)
    try:
        manifest = write_prepared(
            folder,
            seqs,
            table,
            {
                "dataset": data.dataset,
                "data_spec": data.model_dump(mode="json"),
                "data_spec_hash": wanted_hash,
                "source": {"path": str(source), "content_sha256": checksum, "rows": rows},
                "engine": data.engine,
                "split": data.split,
                "split_plan": plan.describe(),
                "tie_break": "timestamp, then original row order"
                if seqs.timestamps is not None
                else "file order",
                "created_unix": time.time(),
                "seconds": round(time.perf_counter() - started, 3),
            },
            cold_items=None if cold is None else cold.tolist(),
        )
    except OSError:
        # Another process (e.g. a second run started at the same time) finished the same folder
        # first: its rename won. Reuse it, with the same data-spec check as any reuse.
        if not (folder / "manifest.json").is_file():
            raise
        return _reuse(folder, data, wanted_hash, events)
    events(PrepareWritten(str(folder)))
    return PrepareResult(folder, manifest, reused=False)


def _reuse(folder: Path, data, wanted_hash: str, events: Events) -> PrepareResult:
    manifest = read_manifest(folder)
    if manifest.get("data_spec_hash") != wanted_hash:
        raise UserError(
            "this prepared-dataset folder was made from a different data spec; refusing to overwrite it",
            where=str(folder),
            fix="set data.prepared_dir to a new folder, or delete the old one if you no longer need it",
        )
    seqs, _ = load_prepared(folder)
    make_plan(seqs, data.split, data.temporal)  # the split must still be leak-free on this data
    events(PrepareReused(str(folder)))
    return PrepareResult(folder, manifest, reused=True)
