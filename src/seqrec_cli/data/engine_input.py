"""What the out-of-core engines (duckdb, spark) read: Parquet parts with a global row number.

Parquet input (one file, or a folder of parts) is scanned in place. Any other format is first read
by the reference reader (so parsing, trimming and date rules are exactly the local engine's) and
staged as one Parquet file; only Parquet input is therefore read with bounded memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from seqrec_cli.data.partitions import PartsContext, PartsLabel, common_schema, parquet_parts, part_row_counts
from seqrec_cli.data.readers import pick_columns, read_interactions
from seqrec_cli.data.sources import Source, locate
from seqrec_cli.errors import DataError
from seqrec_cli.spec.models import DataSpec

ROLES = ("user", "item", "time", "rating")


@dataclass(frozen=True)
class EngineInput:
    parts: list[Path]
    starts: list[int]  # global row number of each part's first row
    columns: dict[str, str]  # role -> column name in the parts
    types: dict[str, pa.DataType]  # role -> Arrow type of that column
    label: str  # what messages name as the source
    rows: int

    def where(self, row: int) -> str:
        ctx = PartsContext(PartsLabel(self.label), tuple(self.parts), tuple(self.starts))
        return ctx.where(row)


def _parquet_files(path: Path, spec: DataSpec) -> tuple[list[Path], Path] | None:
    if spec.format != "table":
        return None
    parts = [] if spec.interactions else parquet_parts(path)
    if parts:
        return parts, path
    if path.is_file() and path.suffix.lower() in (".parquet", ".pq"):
        return [path], path.parent
    if path.is_dir() and spec.interactions and spec.interactions.lower().endswith((".parquet", ".pq")):
        return [path / spec.interactions], path
    return None


def engine_input(path: Path, spec: DataSpec, work: Path) -> EngineInput:
    found = _parquet_files(Path(path), spec)
    if found is None:
        return _staged(Path(path), spec, work)
    parts, folder = found
    present = list(pq.read_schema(parts[0]).names)
    chosen = pick_columns(spec.columns, present, Source(parts[0]))
    schema = common_schema(parts, list(chosen.values()), folder)
    counts = part_row_counts(parts)
    if sum(counts) == 0:
        raise DataError(
            "no interactions in the file", where=str(path), fix="point the spec at the right file"
        )
    starts = [int(s) for s in np.concatenate([[0], np.cumsum(counts)[:-1]])]
    types = {role: schema.field(name).type for role, name in chosen.items()}
    label = str(path) if len(parts) > 1 else str(parts[0])
    return EngineInput(parts, starts, chosen, types, label, int(sum(counts)))


def _staged(path: Path, spec: DataSpec, work: Path) -> EngineInput:
    raw = read_interactions(path, spec)
    columns = {"user": raw.users.astype(str), "item": raw.items.astype(str)}
    if raw.timestamps is not None:
        columns["time"] = raw.timestamps
    if raw.ratings is not None:
        columns["rating"] = raw.ratings
    table = pa.table({role: pa.array(values) for role, values in columns.items()})
    staged = work / "staged.parquet"
    staged.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, staged)
    label = _label(path, spec)
    return EngineInput(
        [staged],
        [0],
        {r: r for r in columns},
        {r: table.schema.field(r).type for r in columns},
        label,
        len(raw),
    )


def _label(path: Path, spec: DataSpec) -> str:
    try:
        return locate(path, spec.interactions, lambda _: True, "file", "data.interactions").label
    except DataError:
        return str(path)
