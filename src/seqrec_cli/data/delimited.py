"""Delimited text through pyarrow, with file:line errors, and Parquet: the column-based layouts.

Every column is read as text; conversion happens later (`columns`) so a bad value is reported with its
file and line instead of a pyarrow conversion message.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from seqrec_cli.data.sources import Source, first_line, numbered_lines
from seqrec_cli.errors import DataError


@dataclass(frozen=True)
class Layout:
    """How a delimited text file is laid out: enough for pyarrow and for the csv-module error scan."""

    names: list[str]
    delimiter: str
    quoting: bool = True
    header_rows: int = 1
    encoding: str = "utf-8"


def _csv_reader(lines: Iterable[str], layout: Layout) -> Iterator[list[str]]:
    quoting = csv.QUOTE_MINIMAL if layout.quoting else csv.QUOTE_NONE
    return csv.reader(lines, delimiter=layout.delimiter, quoting=quoting)


def data_rows(source: Source, layout: Layout) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of each non-blank data row: the slow path, used only to locate problems."""
    lines = (line for number, line in numbered_lines(source, layout.encoding) if number > layout.header_rows)
    reader = _csv_reader(lines, layout)
    try:
        for fields in reader:
            if fields:
                yield reader.line_num + layout.header_rows, fields
    except csv.Error as exc:
        raise DataError(
            f"cannot parse: {exc}", where=f"{source.label}:{reader.line_num + layout.header_rows}"
        ) from exc


def read_delimited(source: Source, layout: Layout, columns: list[str]) -> pa.Table:
    """The named columns of a delimited file, all as strings (converted later, with line numbers)."""
    # pyarrow transcodes (slowly, in Python) unless the encoding is spelled exactly "utf8".
    encoding = "utf8" if codecs.lookup(layout.encoding).name == "utf-8" else layout.encoding
    read = pacsv.ReadOptions(
        column_names=layout.names, skip_rows=layout.header_rows, encoding=encoding, block_size=1 << 24
    )
    parse = pacsv.ParseOptions(delimiter=layout.delimiter, quote_char='"' if layout.quoting else False)
    convert = pacsv.ConvertOptions(include_columns=columns, column_types=dict.fromkeys(columns, pa.string()))
    try:
        with source.binary() as handle:
            return pacsv.read_csv(handle, read_options=read, parse_options=parse, convert_options=convert)
    except pa.ArrowException as exc:
        raise _locate_parse_problem(source, layout, exc) from exc


def _locate_parse_problem(source: Source, layout: Layout, exc: Exception) -> DataError:
    expected = len(layout.names)
    sep = "tab" if layout.delimiter == "\t" else repr(layout.delimiter)
    for line, fields in data_rows(source, layout):
        if len(fields) != expected:
            return DataError(
                f"expected {expected} {sep}-separated fields, found {len(fields)}",
                where=f"{source.label}:{line}",
                fix="fix or remove that line, or check the format and delimiter in the spec",
            )
    return DataError(f"cannot parse: {exc}", where=source.label, fix="check the format in the spec")


def header_names(source: Source, delimiter: str, quoting: bool = True) -> list[str]:
    line = first_line(source)
    try:
        row = next(
            csv.reader([line], delimiter=delimiter, quoting=csv.QUOTE_MINIMAL if quoting else csv.QUOTE_NONE)
        )
    except (csv.Error, StopIteration) as exc:
        raise DataError(f"cannot parse the header line ({exc})", where=f"{source.label}:1",
                        fix="fix the header line, or check the format and delimiter in the spec") from exc
    return [name.strip() for name in row]


def delimiter(explicit: str | None, source: Source, key: str) -> str:
    """Explicit delimiter, else by extension, else guessed from the header line."""
    if explicit:
        delim = "\t" if explicit in ("\\t", "tab", "TAB") else explicit
        if len(delim) != 1:
            raise DataError(
                f"delimiter {explicit!r} must be one character",
                where=source.label,
                fix=f"set {key} to one character",
            )
        return delim
    suffix = Path(source.name).suffix.lower()
    if suffix in (".tsv", ".tab"):
        return "\t"
    if suffix == ".csv":
        return ","
    header = first_line(source)
    for delim in ("\t", ",", ";", "|"):
        if delim in header:
            return delim
    raise DataError(
        "cannot tell the field delimiter from the file name or header", where=source.label, fix=f"set {key}"
    )


TABLE_SUFFIXES = (".csv", ".tsv", ".tab", ".parquet", ".pq")


def is_parquet(source: Source) -> bool:
    return source.name.lower().endswith((".parquet", ".pq"))


@contextmanager
def _parquet_errors(source: Source):
    """A file that is not (whole) Parquet: DataError naming it, not a pyarrow traceback."""
    try:
        yield
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"not a readable Parquet file ({exc})", where=source.label,
                        fix="check the file (an interrupted copy?) and data.format") from exc


def read_parquet(source: Source, columns: list[str] | None = None) -> pa.Table:
    with _parquet_errors(source):
        if source.member is None and source.path.suffix.lower() in (".parquet", ".pq"):
            return pq.read_table(source.path, columns=columns)
        # Compressed or zipped parquet: parquet needs random access, so read it into memory.
        with source.binary() as handle:
            return pq.read_table(pa.BufferReader(handle.read()), columns=columns)


def read_parquet_schema(source: Source) -> list[str]:
    with _parquet_errors(source):
        if source.member is None and source.path.suffix.lower() in (".parquet", ".pq"):
            return list(pq.read_schema(source.path).names)
    return read_parquet(source).column_names
