"""Column conversion: strings (or parquet types) to id / float arrays, with row-precise errors.

Shared by the interaction and item readers so both report a bad value at its line (text) or row (parquet).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from seqrec_cli.data.delimited import Layout, data_rows
from seqrec_cli.data.sources import Source
from seqrec_cli.errors import DataError


@dataclass(frozen=True)
class Context:
    """Where a column came from, so a bad value can be reported at its line (text) or row (parquet)."""

    source: Source
    layout: Layout | None  # None for parquet

    def where(self, row: int) -> str:
        if self.layout is None:
            return f"{self.source.label}:row {row + 1}"
        for index, (line, _) in enumerate(data_rows(self.source, self.layout)):
            if index == row:
                return f"{self.source.label}:{line}"
        return self.source.label


def as_strings(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if not pa.types.is_string(column.type) and not pa.types.is_large_string(column.type):
        column = pc.cast(column, pa.string())
    return pc.utf8_trim_whitespace(column)


def first_true(mask: pa.ChunkedArray) -> int | None:
    hits = np.flatnonzero(mask.fill_null(True).to_numpy())
    return int(hits[0]) if len(hits) else None


def id_values(column: pa.ChunkedArray, what: str, ctx: Context, fix: str) -> np.ndarray:
    """Ids as a numpy object array of str; an empty or missing id is an error."""
    column = as_strings(column)
    row = first_true(pc.equal(pc.utf8_length(column), 0))
    if row is not None:
        raise DataError(f"empty {what}", where=ctx.where(row), fix=fix)
    return column.to_numpy()


def float_values(
    column: pa.ChunkedArray, what: str, ctx: Context, fix: str, dates: bool = False
) -> np.ndarray:
    """Float64 values; with dates=True, ISO date strings and date/time columns become Unix seconds.
    NaN and infinite values are refused: they would sort anywhere and cut temporal splits at random."""
    values = _float_values(column, what, ctx, fix, dates)
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        raise DataError(
            f"{what} {float(values[bad[0]])} is not a finite number", where=ctx.where(int(bad[0])), fix=fix
        )
    return values


def _float_values(column: pa.ChunkedArray, what: str, ctx: Context, fix: str, dates: bool) -> np.ndarray:
    row = first_true(pc.is_null(column))
    if row is not None:
        raise DataError(f"missing {what}", where=ctx.where(row), fix=fix)
    kind = column.type
    if dates and (pa.types.is_timestamp(kind) or pa.types.is_date(kind)):
        return _seconds(column)
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return pc.cast(column, pa.float64()).to_numpy()
    column = as_strings(column)
    try:
        return pc.cast(column, pa.float64()).to_numpy()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    parsed = _parse_dates(column) if dates else None
    if parsed is not None:
        return parsed
    bad = _first_unparsable(column, dates)
    if bad is None:  # pyarrow is stricter than Python (e.g. "1_000"); Python accepted every value
        return np.asarray([float(value) for value in column.to_pylist()], dtype=np.float64)
    expected = "a number or an ISO date" if dates else "a number"
    raise DataError(f"{what} {bad[1]!r} is not {expected}", where=ctx.where(bad[0]), fix=fix)


def _seconds(column: pa.ChunkedArray) -> np.ndarray:
    tz = getattr(column.type, "tz", None)
    micros = pc.cast(pc.cast(column, pa.timestamp("us", tz=tz)), pa.int64())
    return micros.to_numpy().astype(np.float64) / 1e6


def _parse_dates(column: pa.ChunkedArray) -> np.ndarray | None:
    """ISO dates/datetimes to Unix seconds (naive ones taken as UTC); None if any value is not one."""
    for target in (pa.timestamp("us"), pa.timestamp("us", tz="UTC")):
        try:
            return _seconds(pc.cast(column, target))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    # pyarrow wants one style per column; Python's parser takes mixed offsets and fractions.
    values = [_iso_seconds(value) for value in column.to_pylist()]
    if any(value is None for value in values):
        return None
    return np.asarray(values, dtype=np.float64)


def _iso_seconds(value: str | None) -> float | None:
    try:
        parsed = datetime.fromisoformat(value or "")
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def _first_unparsable(column: pa.ChunkedArray, dates: bool) -> tuple[int, str | None] | None:
    """(row, value) of the first value that is neither a number nor (with dates) an ISO date."""
    for row, value in enumerate(column.to_pylist()):
        try:
            float(value or "")
        except ValueError:
            if not (dates and _iso_seconds(value) is not None):
                return row, value
    return None
