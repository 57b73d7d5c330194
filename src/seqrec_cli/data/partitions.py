"""Partitioned Parquet: a folder of part files read as one log, in sorted path order.

Row order (the tie-break for equal timestamps) is the parts' sorted relative paths, then the row
order inside each part. Every engine reads parts in this same order, so they agree on ties.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from seqrec_cli.errors import DataError

PARQUET_SUFFIXES = (".parquet", ".pq")


def parquet_parts(folder: Path) -> list[Path]:
    """The Parquet files under `folder` (any depth), in sorted relative-path order; [] if none or
    if the folder also holds other table files (then it is not a partitioned log)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    files = sorted((p for p in folder.rglob("*") if p.is_file() and not p.name.startswith((".", "_"))),
                   key=lambda p: p.relative_to(folder).as_posix())
    parts = [p for p in files if p.name.lower().endswith(PARQUET_SUFFIXES)]
    others = [p for p in files if p.name.lower().endswith((".csv", ".tsv", ".tab"))]
    return parts if parts and not others else []


def common_schema(parts: list[Path], columns: list[str], folder: Path) -> pa.Schema:
    """The schema of the first part, restricted to `columns`; a part that lacks a column or types it
    differently is reported by name (engines would otherwise fail deep inside a scan)."""
    first = pq.read_schema(parts[0])
    for part in parts[1:]:
        schema = pq.read_schema(part)
        for name in columns:
            if first.get_field_index(name) < 0:
                continue  # the caller reports columns missing from the first part
            if schema.get_field_index(name) < 0:
                raise DataError(
                    f"partition has no column {name!r} (the first partition {parts[0].name} has it)",
                    where=str(part),
                    fix="rewrite this partition with the same columns as the others",
                )
            want, got = first.field(name).type, schema.field(name).type
            if want != got:
                raise DataError(
                    f"schema mismatch: column {name!r} is {got} here "
                    f"but {want} in {parts[0].relative_to(folder)}",
                    where=str(part),
                    fix="rewrite the partitions with one type per column (e.g. cast to int64)",
                )
    return first


@dataclass(frozen=True)
class PartsLabel:
    """Stands in for a Source in messages: the folder, and global row -> (part file, row in part)."""

    label: str


@dataclass(frozen=True)
class PartsContext:
    source: PartsLabel
    parts: tuple[Path, ...]
    starts: tuple[int, ...]  # global index of each part's first row

    def where(self, row: int) -> str:
        index = int(np.searchsorted(np.asarray(self.starts), row, side="right")) - 1
        return f"{self.parts[index]}:row {row - self.starts[index] + 1}"


def part_row_counts(parts: list[Path]) -> list[int]:
    return [pq.ParquetFile(p).metadata.num_rows for p in parts]


def read_parts(folder: Path, parts: list[Path], columns: list[str]) -> tuple[pa.Table, PartsContext]:
    common_schema(parts, columns, folder)
    tables = [pq.read_table(p, columns=columns) for p in parts]
    counts = [t.num_rows for t in tables]
    starts = tuple(int(s) for s in np.concatenate([[0], np.cumsum(counts)[:-1]]))
    ctx = PartsContext(PartsLabel(str(folder)), tuple(parts), starts)
    return pa.concat_tables(tables), ctx


def parts_sha256(folder: Path, parts: list[Path]) -> str:
    """sha256 over (relative path, bytes) of every part, in read order."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.relative_to(folder).as_posix().encode() + b"\0")
        with open(part, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()
