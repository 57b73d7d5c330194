"""Item side-information readers, chosen through the `ITEM_READERS` registry, plus item id maps.

Kept apart from the interaction readers because items are optional and have their own formats; the
registry keys are exactly the `ItemInfoFormat` Literal values of the spec (a test checks this).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa

from seqrec_cli.data.columns import Context, as_strings, id_values
from seqrec_cli.data.delimited import (
    TABLE_SUFFIXES,
    Layout,
    data_rows,
    delimiter,
    header_names,
    is_parquet,
    read_delimited,
    read_parquet,
    read_parquet_schema,
)
from seqrec_cli.data.io import check_exists, open_text
from seqrec_cli.data.raw import ItemTable
from seqrec_cli.data.readers import match_column, recbole_header
from seqrec_cli.data.sources import Source, first_line, locate, numbered_lines, resolve_path
from seqrec_cli.errors import DataError
from seqrec_cli.spec.models import ItemInfoSpec

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
    return as_strings(column).fill_null("").to_pylist()


def _item_columns(spec: ItemInfoSpec, present: list[str], source: Source) -> tuple[str, list[str]]:
    """(id column, text columns) checked against the columns present."""
    id_column = match_column(spec.id_column, present)
    if id_column is None:
        raise DataError(
            f"item id column {spec.id_column!r} (data.items.id_column) not found; "
            f"columns present: {', '.join(present)}",
            where=source.label,
            fix="set data.items.id_column to one of the columns present",
        )
    if spec.text_columns is None:
        return id_column, [name for name in present if name != id_column]
    text = []
    for asked in spec.text_columns:
        found = match_column(asked, present)
        if found is None:
            raise DataError(
                f"column {asked!r} (data.items.text_columns) not found; "
                f"columns present: {', '.join(present)}",
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
    if is_parquet(source):
        id_column, text = _item_columns(spec, read_parquet_schema(source), source)
        table = read_parquet(source, list(dict.fromkeys([id_column, *text])))
        return _item_table(table, id_column, text, Context(source, None))
    delim = delimiter(spec.delimiter, source, "data.items.delimiter")
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
    for number, fields in data_rows(source, layout):
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
    first_line(source, "latin-1")
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
    except RecursionError as exc:
        raise DataError("JSON nested too deeply to read", where=str(path), fix=f"check {key}") from exc


def _attribute_names(path: Path, min_count: int | None) -> tuple[dict[str, str], dict[str, int]]:
    """(id -> name, id -> count) from a datamaps JSON (`id2attribute`, optional `attributeid2num`) or a
    flat {id: name} object. With `min_count`, ids are renumbered 1.. over the names whose count is at
    least min_count, in id order: how S3-Rec numbered its item2attributes files."""
    data = _load_json(path, "data.items.attribute_names")
    mapping = data.get("id2attribute", data) if isinstance(data, dict) else None
    if not isinstance(mapping, dict):
        raise DataError(
            "expected a JSON object with an 'id2attribute' mapping",
            where=str(path),
            fix="point data.items.attribute_names at a datamaps JSON, or remove it",
        )
    names = {str(key): str(value) for key, value in mapping.items()}
    raw_counts = data.get("attributeid2num", {}) if isinstance(data, dict) else {}
    counts = {str(key): int(value) for key, value in raw_counts.items()}
    if min_count is None:
        return names, counts
    if not counts:
        raise DataError(
            "data.items.attribute_min_count needs the names file's 'attributeid2num' counts",
            where=str(path), fix="remove data.items.attribute_min_count, or use a datamaps JSON with counts",
        )
    kept = sorted((key for key in names if counts.get(key, 0) >= min_count),
                  key=lambda k: (not k.isdigit(), int(k) if k.isdigit() else 0, k))  # numeric id order
    return (
        {str(i): names[k] for i, k in enumerate(kept, 1)},
        {str(i): counts[k] for i, k in enumerate(kept, 1)},
    )


def _check_counts(used: dict[str, int], counts: dict[str, int], where: str) -> None:
    """The names file's counts must equal how often each attribute id occurs in the attribute file:
    a cheap signature that the two files number attributes the same way (the S3-Rec datamaps do not,
    unless renumbered with attribute_min_count)."""
    wrong = [key for key, n in used.items() if key in counts and counts[key] != n]
    if wrong:
        raise DataError(
            f"{len(wrong)} of {len(used)} attribute ids occur a different number of times than the "
            f"names file says (id {wrong[0]}: {used[wrong[0]]} vs {counts[wrong[0]]}), "
            "so the names would be wrong",
            where=where,
            fix="for the S3-Rec Amazon data set data.items.attribute_min_count: 5; "
            "otherwise drop attribute_names",
        )


def read_attributes_json(base: Path, spec: ItemInfoSpec) -> ItemTable:
    """S3-Rec `*_item2attributes.json` -> field `attributes` (", "-joined).

    Ids are named through `attribute_names` where it has them and kept as ids otherwise; repeats are
    dropped. When the names file carries counts (datamaps' attributeid2num), every id's count must
    match its occurrences here: the S3-Rec Amazon datamaps match only after renumbering the names with
    count >= 5 (data.items.attribute_min_count: 5), which all 637 Beauty attribute counts confirm.
    """
    path = resolve_path(base, spec.path)
    data = _load_json(check_exists(path), "data.items.path")
    if not isinstance(data, dict):
        raise DataError(
            'expected a JSON object {"item_id": [attribute ids]}',
            where=str(path),
            fix="check data.items.format",
        )
    names: dict[str, str] = {}
    if spec.attribute_names:
        names_path = check_exists(resolve_path(base, spec.attribute_names))
        names, counts = _attribute_names(names_path, spec.attribute_min_count)
        used: dict[str, int] = {}
        for values in data.values():
            for v in values if isinstance(values, list) else [values]:
                used[str(v)] = used.get(str(v), 0) + 1
        _check_counts(used, counts, f"{path} vs {names_path}")
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
