"""Interaction readers: one function per format, chosen through the `INTERACTION_READERS` registry.

The registry keys are exactly the `InteractionFormat` Literal values of the spec, so a format the spec
accepts always has a reader (a test checks this). Line formats (SASRec, S3-Rec) are split in Python, with
a pyarrow fast path for the common one-space `user item` layout.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from seqrec_cli.data.columns import Context, first_true, float_values, id_values
from seqrec_cli.data.delimited import (
    TABLE_SUFFIXES,
    Layout,
    delimiter,
    header_names,
    is_parquet,
    read_delimited,
    read_parquet,
    read_parquet_schema,
)
from seqrec_cli.data.partitions import parquet_parts, read_parts
from seqrec_cli.data.raw import RawInteractions
from seqrec_cli.data.sources import Source, first_line, locate, numbered_lines
from seqrec_cli.errors import DataError
from seqrec_cli.spec.models import ColumnMap, DataSpec

ROLES = ("user", "item", "time", "rating")


def match_column(asked: str, present: list[str]) -> str | None:
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
        found = match_column(asked, present)
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
    source = interaction_source(path, spec)
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
        first = first_line(source)
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
    source = interaction_source(path, spec)
    first_line(source)
    layout, chosen = _movielens_layout(source)
    table = read_delimited(source, layout, list(chosen.values()))
    return assemble(table, chosen, Context(source, layout), fix=_movielens_fix)


def _movielens_fix(role: str) -> str:
    return f"fix the {role} field of that line; MovieLens ratings are user, item, rating, timestamp"


def _line_source(path: Path, spec: DataSpec) -> Source:
    return interaction_source(path, spec)


def _bad_line(source: Source, number: int, found: int, expected: str) -> DataError:
    return DataError(
        f"expected {expected} whitespace-separated fields, found {found}",
        where=f"{source.label}:{number}",
        fix="fix or remove that line, or check data.format",
    )


def read_user_item_lines(path: Path, spec: DataSpec) -> RawInteractions:
    """SASRec style `user item` lines, in time order within each user (so timestamps=None)."""
    source = _line_source(path, spec)
    first_line(source)
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
        if first_true(pc.equal(pc.utf8_length(column), 0)) is not None:
            return None  # doubled or trailing spaces: let the line loop judge them
    return RawInteractions(users.to_numpy(), items.to_numpy(), None, None, source=source.label)


def read_user_sequence_lines(path: Path, spec: DataSpec) -> RawInteractions:
    """S3-Rec style `user item item ...` lines, each in time order (so timestamps=None)."""
    source = _line_source(path, spec)
    first_line(source)
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


def read_table(path: Path, spec: DataSpec) -> RawInteractions:
    """Generic CSV/TSV/Parquet with columns named by `data.columns`; a folder of Parquet parts is one log."""
    parts = [] if spec.interactions else parquet_parts(path)
    if parts:
        present = list(pq.read_schema(parts[0]).names)
        chosen = pick_columns(spec.columns, present, Source(parts[0]))
        table, ctx = read_parts(path, parts, list(dict.fromkeys(chosen.values())))
        return assemble(table, chosen, ctx)
    source = interaction_source(path, spec)
    if is_parquet(source):
        present = read_parquet_schema(source)
        chosen = pick_columns(spec.columns, present, source)
        table = read_parquet(source, list(dict.fromkeys(chosen.values())))
        return assemble(table, chosen, Context(source, None))
    delim = delimiter(spec.delimiter, source, "data.delimiter")
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


# format -> (which file names in a folder or zip hold the interactions, what to call such a file)
INTERACTION_FILES: dict[str, tuple[Callable[[str], bool], str]] = {
    "recbole": (lambda n: n.endswith(".inter"), "*.inter file"),
    "movielens": (lambda n: n.lower() in MOVIELENS_RATINGS, "MovieLens ratings file"),
    "user_item_lines": (lambda _: True, "interaction file"),
    "user_sequence_lines": (lambda _: True, "interaction file"),
    "table": (lambda n: n.lower().endswith(TABLE_SUFFIXES), "table file"),
}


def interaction_source(path: Path, spec: DataSpec) -> Source:
    """The one file the reader of `spec.format` reads at `path` (a file, a folder or a zip)."""
    if spec.format is None:
        raise DataError("no data format given", where=str(path),
                        fix=f"set data.format to one of: {', '.join(INTERACTION_READERS)}")
    accept, what = INTERACTION_FILES[spec.format]
    return locate(Path(path), spec.interactions, accept, what, "data.interactions")


def read_interactions(path: Path, spec: DataSpec) -> RawInteractions:
    """Read the interactions at `path` (file, folder or zip) in the format `spec.format` names."""
    if spec.format is None:
        raise DataError(
            "no data format given",
            where=str(path),
            fix=f"set data.format to one of: {', '.join(INTERACTION_READERS)}",
        )
    return INTERACTION_READERS[spec.format](Path(path), spec)
