"""Raw readers: one function per interaction / item-info format, chosen through plain dict registries.

The registry keys are exactly the `InteractionFormat` / `ItemInfoFormat` Literal values of the spec,
so a format the spec accepts always has a reader (a test checks this).

Column-based files (RecBole, MovieLens, CSV/TSV/Parquet) go through pyarrow with every column read as
text, then numbers and dates are converted here. Reading as text first means a bad value is reported
with its file and line instead of a pyarrow conversion message. Line formats (SASRec, S3-Rec) are split
in Python, with a pyarrow fast path for the common one-space `user item` layout.
"""

from __future__ import annotations

import codecs
import csv
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from seqrec_cli.data.io import check_exists, inner_name, open_binary, open_text, zip_member, zip_members
from seqrec_cli.data.raw import ItemTable, RawInteractions
from seqrec_cli.errors import DataError
from seqrec_cli.spec.models import ColumnMap, DataSpec, ItemInfoSpec

# ---------------------------------------------------------------------------------------------------
# Where the data is: a file, a member of a zip, or the one matching file in a folder
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """One readable file: a path, or a member inside a zip."""

    path: Path
    member: str | None = None

    @property
    def label(self) -> str:
        return f"{self.path}[{self.member}]" if self.member else str(self.path)

    @property
    def name(self) -> str:
        """Bare file name without compression suffix, for format detection."""
        return inner_name(self.member.rsplit("/", 1)[-1] if self.member else self.path.name)

    def binary(self) -> IO[bytes]:
        return open_binary(self.path, self.member)


def locate(path: Path, explicit: str | None, accept: Callable[[str], bool], what: str, key: str) -> Source:
    """Resolve `path` (file, zip or folder) to one file; `explicit` names it inside a folder or zip."""
    path = check_exists(Path(path))
    if path.is_dir():
        if explicit:
            return locate(path / explicit, None, lambda _: True, what, key)
        found = sorted(p.name for p in path.iterdir() if p.is_file() and accept(inner_name(p)))
        return Source(path / _only_one(found, path, what, key))
    if path.suffix.lower() == ".zip":
        if explicit:
            return Source(path, zip_member(path, explicit))
        found = [m for m in zip_members(path) if accept(inner_name(m.rsplit("/", 1)[-1]))]
        return Source(path, _only_one(found, path, what, key))
    return Source(path)


def _only_one(found: list[str], where: Path, what: str, key: str) -> str:
    if len(found) == 1:
        return found[0]
    listing = f": {', '.join(found[:20])}" if found else ""
    raise DataError(
        f"expected exactly one {what} here, found {len(found)}{listing}",
        where=str(where),
        fix=f"set {key} to the file to read",
    )


def resolve_path(base: Path, relative: str) -> Path:
    """`relative` under `base` (a folder, or a file whose folder is used) unless it is absolute."""
    path = Path(relative).expanduser()
    if path.is_absolute():
        return path
    base = Path(base)
    return (base.parent if base.is_file() else base) / path


def numbered_lines(source: Source, encoding: str = "utf-8") -> Iterator[tuple[int, str]]:
    """(line number, line) pairs. Lines are decoded one by one so a bad byte is reported at its line."""
    with source.binary() as handle:
        for number, raw in enumerate(handle, 1):
            try:
                line = raw.decode(encoding)
            except UnicodeDecodeError as exc:
                raise DataError(
                    f"not valid {encoding} text (byte {exc.start + 1} of the line: {exc.reason})",
                    where=f"{source.label}:{number}",
                    fix=f"fix that line or re-encode the file as {encoding}",
                ) from exc
            yield number, (line.lstrip("\ufeff") if number == 1 else line)


def _first_line(source: Source, encoding: str = "utf-8") -> str:
    """First non-blank line; an empty file is an error for every format."""
    for _, line in numbered_lines(source, encoding):
        if line.strip():
            return line.rstrip("\r\n").lstrip("\ufeff")
    raise DataError("the file is empty", where=source.label, fix="point the spec at the right file")


# ---------------------------------------------------------------------------------------------------
# Delimited text through pyarrow, with file:line errors
# ---------------------------------------------------------------------------------------------------


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


def _data_rows(source: Source, layout: Layout) -> Iterator[tuple[int, list[str]]]:
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
    except pa.ArrowInvalid as exc:
        raise _locate_parse_problem(source, layout, exc) from exc


def _locate_parse_problem(source: Source, layout: Layout, exc: Exception) -> DataError:
    expected = len(layout.names)
    sep = "tab" if layout.delimiter == "\t" else repr(layout.delimiter)
    for line, fields in _data_rows(source, layout):
        if len(fields) != expected:
            return DataError(
                f"expected {expected} {sep}-separated fields, found {len(fields)}",
                where=f"{source.label}:{line}",
                fix="fix or remove that line, or check the format and delimiter in the spec",
            )
    return DataError(f"cannot parse: {exc}", where=source.label, fix="check the format in the spec")


def header_names(source: Source, delimiter: str, quoting: bool = True) -> list[str]:
    line = _first_line(source)
    row = next(
        csv.reader([line], delimiter=delimiter, quoting=csv.QUOTE_MINIMAL if quoting else csv.QUOTE_NONE)
    )
    return [name.strip() for name in row]


def _delimiter(explicit: str | None, source: Source, key: str) -> str:
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
    header = _first_line(source)
    for delim in ("\t", ",", ";", "|"):
        if delim in header:
            return delim
    raise DataError(
        "cannot tell the field delimiter from the file name or header", where=source.label, fix=f"set {key}"
    )


# ---------------------------------------------------------------------------------------------------
# Column conversion: strings (or parquet types) to id / float arrays, with row-precise errors
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Context:
    """Where a column came from, so a bad value can be reported at its line (text) or row (parquet)."""

    source: Source
    layout: Layout | None  # None for parquet

    def where(self, row: int) -> str:
        if self.layout is None:
            return f"{self.source.label}:row {row + 1}"
        for index, (line, _) in enumerate(_data_rows(self.source, self.layout)):
            if index == row:
                return f"{self.source.label}:{line}"
        return self.source.label


def _as_strings(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if not pa.types.is_string(column.type) and not pa.types.is_large_string(column.type):
        column = pc.cast(column, pa.string())
    return pc.utf8_trim_whitespace(column)


def _first_true(mask: pa.ChunkedArray) -> int | None:
    hits = np.flatnonzero(mask.fill_null(True).to_numpy())
    return int(hits[0]) if len(hits) else None


def id_values(column: pa.ChunkedArray, what: str, ctx: Context, fix: str) -> np.ndarray:
    """Ids as a numpy object array of str; an empty or missing id is an error."""
    column = _as_strings(column)
    row = _first_true(pc.equal(pc.utf8_length(column), 0))
    if row is not None:
        raise DataError(f"empty {what}", where=ctx.where(row), fix=fix)
    return column.to_numpy()


def float_values(
    column: pa.ChunkedArray, what: str, ctx: Context, fix: str, dates: bool = False
) -> np.ndarray:
    """Float64 values; with dates=True, ISO date strings and date/time columns become Unix seconds."""
    row = _first_true(pc.is_null(column))
    if row is not None:
        raise DataError(f"missing {what}", where=ctx.where(row), fix=fix)
    kind = column.type
    if dates and (pa.types.is_timestamp(kind) or pa.types.is_date(kind)):
        return _seconds(column)
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return pc.cast(column, pa.float64()).to_numpy()
    column = _as_strings(column)
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


# ---------------------------------------------------------------------------------------------------
# Interaction readers
# ---------------------------------------------------------------------------------------------------

ROLES = ("user", "item", "time", "rating")


def _match_column(asked: str, present: list[str]) -> str | None:
    """RecBole headers are `name:type`; accept the spec's name with or without the type."""
    if asked in present:
        return asked
    bare = asked.rsplit(":", 1)[0]
    return bare if bare in present else None


def pick_columns(columns: ColumnMap, present: list[str], source: Source) -> dict[str, str]:
    """role -> column name for each role the spec asks for; a missing column names the key to change."""
    chosen: dict[str, str] = {}
    for role in ROLES:
        asked = getattr(columns, role)
        if asked is None:
            continue
        found = _match_column(asked, present)
        if found is None:
            optional = " (or null if the file has none)" if role in ("time", "rating") else ""
            raise DataError(
                f"column {asked!r} (data.columns.{role}) not found; columns present: {', '.join(present)}",
                where=source.label,
                fix=f"set data.columns.{role} to one of the columns present{optional}",
            )
        chosen[role] = found
    return chosen


def _column_fix(role: str) -> str:
    return f"fix that line, or set data.columns.{role} to the right column"


def assemble(
    table: pa.Table, chosen: dict[str, str], ctx: Context, fix: Callable[[str], str] = _column_fix
) -> RawInteractions:
    """RawInteractions from string columns; an empty result is an error."""
    if table.num_rows == 0:
        raise DataError(
            "no interactions in the file", where=ctx.source.label, fix="point the spec at the right file"
        )

    users = id_values(table.column(chosen["user"]), "user id", ctx, fix("user"))
    items = id_values(table.column(chosen["item"]), "item id", ctx, fix("item"))
    times = ratings = None
    if "time" in chosen:
        times = float_values(table.column(chosen["time"]), "timestamp", ctx, fix("time"), dates=True)
    if "rating" in chosen:
        ratings = float_values(table.column(chosen["rating"]), "rating", ctx, fix("rating"))
    return RawInteractions(users, items, times, ratings, source=ctx.source.label)


def recbole_header(source: Source) -> list[str]:
    """Column names of a RecBole atomic file, without their `:type`."""
    return [field.rsplit(":", 1)[0] for field in header_names(source, "\t", quoting=False)]


def read_recbole(path: Path, spec: DataSpec) -> RawInteractions:
    source = locate(
        path, spec.interactions, lambda n: n.endswith(".inter"), "*.inter file", "data.interactions"
    )
    names = recbole_header(source)
    chosen = pick_columns(spec.columns, names, source)
    layout = Layout(names, "\t", quoting=False)
    table = read_delimited(source, layout, list(dict.fromkeys(chosen.values())))
    return assemble(table, chosen, Context(source, layout))


MOVIELENS_RATINGS = ("u.data", "ratings.dat", "ratings.csv")


def _movielens_layout(source: Source) -> tuple[Layout, dict[str, str]]:
    """The three GroupLens rating layouts: 100K tab file, 1M/10M `::` file, 20M+ CSV with header."""
    name = source.name.lower()
    if not name.endswith((".data", ".base", ".test", ".dat", ".csv")):
        # Unknown name: judge by the first line.
        first = _first_line(source)
        name = ".dat" if "::" in first else ".csv" if first.lower().startswith("userid,") else ".data"
    if name.endswith(".dat"):
        # '::' is not a single character; split on ':' and take every other field.
        names = ["user", "_1", "item", "_2", "rating", "_3", "time"]
        return Layout(names, ":", quoting=False, header_rows=0), {r: r for r in ROLES}
    if name.endswith(".csv"):
        header = header_names(source, ",")
        wanted = {"user": "userId", "item": "movieId", "rating": "rating", "time": "timestamp"}
        chosen = pick_columns(ColumnMap(**wanted), header, source)
        return Layout(header, ","), chosen
    return Layout(["user", "item", "rating", "time"], "\t", quoting=False, header_rows=0), {
        r: r for r in ROLES
    }


def read_movielens(path: Path, spec: DataSpec) -> RawInteractions:
    """GroupLens ratings; ratings and timestamps are always returned, `data.columns` is not used."""
    source = locate(
        path,
        spec.interactions,
        lambda n: n.lower() in MOVIELENS_RATINGS,
        "MovieLens ratings file",
        "data.interactions",
    )
    _first_line(source)
    layout, chosen = _movielens_layout(source)
    table = read_delimited(source, layout, list(chosen.values()))
    return assemble(table, chosen, Context(source, layout), fix=_movielens_fix)


def _movielens_fix(role: str) -> str:
    return f"fix the {role} field of that line; MovieLens ratings are user, item, rating, timestamp"


def _line_source(path: Path, spec: DataSpec) -> Source:
    return locate(path, spec.interactions, lambda _: True, "interaction file", "data.interactions")


def _bad_line(source: Source, number: int, found: int, expected: str) -> DataError:
    return DataError(
        f"expected {expected} whitespace-separated fields, found {found}",
        where=f"{source.label}:{number}",
        fix="fix or remove that line, or check data.format",
    )


def read_user_item_lines(path: Path, spec: DataSpec) -> RawInteractions:
    """SASRec style `user item` lines, in time order within each user (so timestamps=None)."""
    source = _line_source(path, spec)
    _first_line(source)
    fast = _user_item_fast(source)
    if fast is not None:
        return fast
    users: list[str] = []
    items: list[str] = []
    for number, line in numbered_lines(source):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2:
            raise _bad_line(source, number, len(fields), "2")
        users.append(fields[0])
        items.append(fields[1])
    return RawInteractions(_objects(users), _objects(items), None, None, source=source.label)


def _user_item_fast(source: Source) -> RawInteractions | None:
    """pyarrow read of the canonical one-space layout; None (use the line loop) on anything unusual."""
    names = ["user", "item"]
    read = pacsv.ReadOptions(column_names=names, block_size=1 << 24)
    parse = pacsv.ParseOptions(delimiter=" ", quote_char=False)
    convert = pacsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()))
    try:
        with source.binary() as handle:
            table = pacsv.read_csv(handle, read_options=read, parse_options=parse, convert_options=convert)
    except pa.ArrowInvalid:
        return None
    users, items = table.column("user"), table.column("item")
    for column in (users, items):
        if _first_true(pc.equal(pc.utf8_length(column), 0)) is not None:
            return None  # doubled or trailing spaces: let the line loop judge them
    return RawInteractions(users.to_numpy(), items.to_numpy(), None, None, source=source.label)


def read_user_sequence_lines(path: Path, spec: DataSpec) -> RawInteractions:
    """S3-Rec style `user item item ...` lines, each in time order (so timestamps=None)."""
    source = _line_source(path, spec)
    _first_line(source)
    users: list[str] = []
    lengths: list[int] = []
    items: list[str] = []
    for number, line in numbered_lines(source):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 2:
            raise _bad_line(source, number, len(fields), "at least 2 (a user, then items)")
        users.append(fields[0])
        lengths.append(len(fields) - 1)
        items.extend(fields[1:])
    return RawInteractions(
        np.repeat(_objects(users), lengths), _objects(items), None, None, source=source.label
    )


def _objects(values: list[str]) -> np.ndarray:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


TABLE_SUFFIXES = (".csv", ".tsv", ".tab", ".parquet", ".pq")


def _is_parquet(source: Source) -> bool:
    return source.name.lower().endswith((".parquet", ".pq"))


def read_parquet(source: Source, columns: list[str] | None = None) -> pa.Table:
    if source.member is None and source.path.suffix.lower() in (".parquet", ".pq"):
        return pq.read_table(source.path, columns=columns)
    # Compressed or zipped parquet: parquet needs random access, so read it into memory.
    with source.binary() as handle:
        return pq.read_table(pa.BufferReader(handle.read()), columns=columns)


def read_parquet_schema(source: Source) -> list[str]:
    if source.member is None and source.path.suffix.lower() in (".parquet", ".pq"):
        return list(pq.read_schema(source.path).names)
    return read_parquet(source).column_names


def read_table(path: Path, spec: DataSpec) -> RawInteractions:
    """Generic CSV/TSV/Parquet with columns named by `data.columns`."""
    source = locate(
        path,
        spec.interactions,
        lambda n: n.lower().endswith(TABLE_SUFFIXES),
        "table file",
        "data.interactions",
    )
    if _is_parquet(source):
        present = read_parquet_schema(source)
        chosen = pick_columns(spec.columns, present, source)
        table = read_parquet(source, list(dict.fromkeys(chosen.values())))
        return assemble(table, chosen, Context(source, None))
    delim = _delimiter(spec.delimiter, source, "data.delimiter")
    names = header_names(source, delim)
    chosen = pick_columns(spec.columns, names, source)
    layout = Layout(names, delim)
    table = read_delimited(source, layout, list(dict.fromkeys(chosen.values())))
    return assemble(table, chosen, Context(source, layout))


INTERACTION_READERS: dict[str, Callable[[Path, DataSpec], RawInteractions]] = {
    "recbole": read_recbole,
    "movielens": read_movielens,
    "user_item_lines": read_user_item_lines,
    "user_sequence_lines": read_user_sequence_lines,
    "table": read_table,
}


def read_interactions(path: Path, spec: DataSpec) -> RawInteractions:
    """Read the interactions at `path` (file, folder or zip) in the format `spec.format` names."""
    if spec.format is None:
        raise DataError(
            "no data format given",
            where=str(path),
            fix=f"set data.format to one of: {', '.join(INTERACTION_READERS)}",
        )
    return INTERACTION_READERS[spec.format](Path(path), spec)


# ---------------------------------------------------------------------------------------------------
# Item side-information readers
# ---------------------------------------------------------------------------------------------------

YEAR_SUFFIX = re.compile(r"\s*\((\d{4})\)\s*$")
U_ITEM_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
MOVIELENS_ITEMS = ("u.item", "movies.dat", "movies.csv")


def _strings(column: pa.ChunkedArray) -> list[str]:
    """Any column as text; missing values become "" and list values are joined with ", "."""
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        return [", ".join(str(v) for v in value) if value else "" for value in column.to_pylist()]
    return _as_strings(column).fill_null("").to_pylist()


def _item_columns(spec: ItemInfoSpec, present: list[str], source: Source) -> tuple[str, list[str]]:
    """(id column, text columns) checked against the columns present."""
    id_column = _match_column(spec.id_column, present)
    if id_column is None:
        raise DataError(
            f"item id column {spec.id_column!r} (data.items.id_column) not found; columns present: {', '.join(present)}",
            where=source.label,
            fix="set data.items.id_column to one of the columns present",
        )
    if spec.text_columns is None:
        return id_column, [name for name in present if name != id_column]
    text = []
    for asked in spec.text_columns:
        found = _match_column(asked, present)
        if found is None:
            raise DataError(
                f"column {asked!r} (data.items.text_columns) not found; columns present: {', '.join(present)}",
                where=source.label,
                fix="list only columns present in data.items.text_columns",
            )
        text.append(found)
    return id_column, text


def _item_table(table: pa.Table, id_column: str, text: list[str], ctx: Context) -> ItemTable:
    fix = "fix that line, or set data.items.id_column to the right column"
    ids = list(id_values(table.column(id_column), "item id", ctx, fix))
    return ItemTable(ids, {name: _strings(table.column(name)) for name in text})


def read_recbole_items(base: Path, spec: ItemInfoSpec) -> ItemTable:
    """RecBole `.item` file: every non-id column becomes a field (token_seq values stay space-joined)."""
    source = locate(
        resolve_path(base, spec.path), None, lambda n: n.endswith(".item"), "*.item file", "data.items.path"
    )
    names = recbole_header(source)
    id_column, text = _item_columns(spec, names, source)
    layout = Layout(names, "\t", quoting=False)
    table = read_delimited(source, layout, list(dict.fromkeys([id_column, *text])))
    return _item_table(table, id_column, text, Context(source, layout))


def read_table_items(base: Path, spec: ItemInfoSpec) -> ItemTable:
    source = locate(
        resolve_path(base, spec.path),
        None,
        lambda n: n.lower().endswith(TABLE_SUFFIXES),
        "table file",
        "data.items.path",
    )
    if _is_parquet(source):
        id_column, text = _item_columns(spec, read_parquet_schema(source), source)
        table = read_parquet(source, list(dict.fromkeys([id_column, *text])))
        return _item_table(table, id_column, text, Context(source, None))
    delim = _delimiter(spec.delimiter, source, "data.items.delimiter")
    names = header_names(source, delim)
    id_column, text = _item_columns(spec, names, source)
    layout = Layout(names, delim)
    table = read_delimited(source, layout, list(dict.fromkeys([id_column, *text])))
    return _item_table(table, id_column, text, Context(source, layout))


def _split_title(raw: str) -> tuple[str, str]:
    """'Toy Story (1995)' -> ('Toy Story', '1995'); a title without a year keeps its text, year ""."""
    match = YEAR_SUFFIX.search(raw)
    if match is None:
        return raw.strip(), ""
    return raw[: match.start()].strip(), match.group(1)


Movie = tuple[str, str, str, str]  # id, title, year, genres (", "-joined)


def _split_movie_line(source: Source, number: int, line: str, sep: str, expected: int) -> list[str]:
    fields = line.rstrip("\r\n").split(sep)
    if len(fields) != expected:
        raise DataError(
            f"expected {expected} {sep!r}-separated fields, found {len(fields)}",
            where=f"{source.label}:{number}",
            fix="fix that line, or check data.items.format",
        )
    return fields


def _u_item_rows(source: Source) -> Iterator[Movie]:
    """ML-100K u.item: id|title|release date|video date|url|19 genre flags, latin-1."""
    for number, line in numbered_lines(source, "latin-1"):
        if line.strip():
            fields = _split_movie_line(source, number, line, "|", 5 + len(U_ITEM_GENRES))
            title, year = _split_title(fields[1])
            year = year or fields[2].strip()[-4:]  # release date like 01-Jan-1995
            genres = [g for g, flag in zip(U_ITEM_GENRES, fields[5:], strict=True) if flag.strip() == "1"]
            yield fields[0].strip(), title, year, ", ".join(genres)


def _movies_dat_rows(source: Source) -> Iterator[Movie]:
    """ML-1M/10M movies.dat: MovieID::Title (Year)::Genre|Genre, latin-1."""
    for number, line in numbered_lines(source, "latin-1"):
        if line.strip():
            movie, raw_title, genres = _split_movie_line(source, number, line, "::", 3)
            title, year = _split_title(raw_title)
            yield movie.strip(), title, year, ", ".join(g for g in genres.strip().split("|") if g)


def _movies_csv_rows(source: Source) -> Iterator[Movie]:
    """ML-20M and later movies.csv: movieId,title,genres with CSV quoting, utf-8."""
    layout = Layout(header_names(source, ","), ",")
    wanted = ("movieId", "title", "genres")
    missing = [name for name in wanted if name not in layout.names]
    if missing:
        raise DataError(
            f"no column(s) {', '.join(missing)}; columns present: {', '.join(layout.names)}",
            where=source.label,
            fix="use data.items.format: table for other layouts",
        )
    at = [layout.names.index(name) for name in wanted]
    for number, fields in _data_rows(source, layout):
        if len(fields) != len(layout.names):
            raise DataError(
                f"expected {len(layout.names)} fields, found {len(fields)}",
                where=f"{source.label}:{number}",
                fix="fix that line",
            )
        movie, raw_title, genres = (fields[i] for i in at)
        title, year = _split_title(raw_title)
        genres = "" if genres == "(no genres listed)" else ", ".join(genres.split("|"))
        yield movie.strip(), title, year, genres


def read_movielens_items(base: Path, spec: ItemInfoSpec) -> ItemTable:
    """GroupLens u.item / movies.dat / movies.csv -> fields title (year stripped), year, genres."""
    source = locate(
        resolve_path(base, spec.path),
        None,
        lambda n: n.lower() in MOVIELENS_ITEMS,
        "MovieLens movie file (u.item, movies.dat or movies.csv)",
        "data.items.path",
    )
    _first_line(source, "latin-1")
    name = source.name.lower()
    rows = (
        _movies_csv_rows
        if name.endswith(".csv")
        else _u_item_rows
        if name.endswith(".item")
        else _movies_dat_rows
    )
    movies = list(rows(source))
    fields = {
        key: [movie[k] for movie in movies] for k, key in enumerate(("title", "year", "genres"), start=1)
    }
    return ItemTable([movie[0] for movie in movies], fields)


def _load_json(path: Path, key: str) -> object:
    try:
        with open_text(path) as handle:
            return json.load(handle)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"not valid JSON: {exc.msg}", where=f"{path}:{exc.lineno}", fix=f"check {key}"
        ) from exc


def _attribute_names(path: Path) -> dict[str, str]:
    """id -> name from a datamaps JSON (`id2attribute` key) or a flat {id: name} object."""
    data = _load_json(path, "data.items.attribute_names")
    mapping = data.get("id2attribute", data) if isinstance(data, dict) else None
    if not isinstance(mapping, dict):
        raise DataError(
            "expected a JSON object with an 'id2attribute' mapping",
            where=str(path),
            fix="point data.items.attribute_names at a datamaps JSON, or remove it",
        )
    return {str(key): str(value) for key, value in mapping.items()}


def read_attributes_json(base: Path, spec: ItemInfoSpec) -> ItemTable:
    """S3-Rec `*_item2attributes.json` -> field `attributes` (", "-joined).

    Ids are named through `attribute_names` where it has them and kept as ids otherwise; repeats are dropped. CAUTION: for the
    S3-Rec Amazon data the datamaps' attribute ids were never verified to match item2attributes' ids, so
    names from there may be wrong; the ids themselves are always right.
    """
    path = resolve_path(base, spec.path)
    data = _load_json(check_exists(path), "data.items.path")
    if not isinstance(data, dict):
        raise DataError(
            'expected a JSON object {"item_id": [attribute ids]}',
            where=str(path),
            fix="check data.items.format",
        )
    names = (
        _attribute_names(check_exists(resolve_path(base, spec.attribute_names)))
        if spec.attribute_names
        else {}
    )
    ids: list[str] = []
    attributes: list[str] = []
    for item, values in data.items():
        values = values if isinstance(values, list) else [values]
        ids.append(str(item).strip())
        # dict.fromkeys: some files repeat an attribute (LastFM tags); keep each once, in first-seen order.
        attributes.append(", ".join(dict.fromkeys(names.get(str(v), str(v)) for v in values)))
    return ItemTable(ids, {"attributes": attributes})


def read_id_map(path: Path) -> list[tuple[str, str]]:
    """(dataset id, info id) pairs from a two-column whitespace file."""
    pairs: list[tuple[str, str]] = []
    for number, line in numbered_lines(Source(path)):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2:
            raise DataError(
                f"expected 2 whitespace-separated fields 'dataset_item_id info_item_id', found {len(fields)}",
                where=f"{path}:{number}",
                fix="fix that line of data.items.id_map",
            )
        pairs.append((fields[0], fields[1]))
    if not pairs:
        raise DataError(
            "the id map is empty", where=str(path), fix="point data.items.id_map at the right file"
        )
    return pairs


def apply_id_map(table: ItemTable, pairs: list[tuple[str, str]], where: str) -> ItemTable:
    """Re-key the table by dataset ids (left column); unmatched ones get "" fields."""
    row_of: dict[str, int] = {}
    for row, item in enumerate(table.ids):
        row_of.setdefault(item, row)
    rows = [row_of.get(info) for _, info in pairs]
    if all(row is None for row in rows):
        raise DataError(
            "no info id (right column) of the id map is in the item file",
            where=where,
            fix="data.items.id_map must map dataset item ids (left) to the item file's ids (right)",
        )
    fields = {
        name: [values[r] if r is not None else "" for r in rows] for name, values in table.fields.items()
    }
    return ItemTable([dataset for dataset, _ in pairs], fields)


ITEM_READERS: dict[str, Callable[[Path, ItemInfoSpec], ItemTable]] = {
    "recbole": read_recbole_items,
    "movielens": read_movielens_items,
    "table": read_table_items,
    "attributes_json": read_attributes_json,
}


def read_item_info(base: Path, spec: ItemInfoSpec) -> ItemTable:
    """Item side information; paths in `spec` resolve under `base` (a folder, or a file's folder)."""
    table = ITEM_READERS[spec.format](Path(base), spec)
    if not table.ids:
        raise DataError(
            "no items in the item file", where=spec.path, fix="point data.items.path at the right file"
        )
    if spec.id_map:
        map_path = check_exists(resolve_path(base, spec.id_map))
        table = apply_id_map(table, read_id_map(map_path), str(map_path))
    return table
