"""`data.engine: duckdb`: prepare out of core. Tables live in a DuckDB file under a work folder and
sorts/aggregations spill to disk past `data.engine_memory_gb`, so a log larger than RAM prepares.

Same steps and result as data/process.py (see engine_common). Columns in the work tables:
u, i (raw ids: BIGINT or trimmed VARCHAR), t (DOUBLE seconds), rt (DOUBLE rating), r (global row).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from seqrec_cli.data.engine_common import (
    ArrayWriter,
    EngineResult,
    check_rating,
    empty_error,
    id_order,
    offsets_from_counts,
)
from seqrec_cli.data.engine_input import EngineInput, engine_input
from seqrec_cli.data.process import Sequences
from seqrec_cli.errors import DataError
from seqrec_cli.spec.models import DataSpec

BATCH = 1 << 20


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _id_expr(column: str, kind: pa.DataType) -> str:
    if pa.types.is_integer(kind):
        return f"CAST({_quote(column)} AS BIGINT)"
    return f"trim(CAST({_quote(column)} AS VARCHAR))"


def _float_expr(column: str, kind: pa.DataType, dates: bool) -> str:
    col = _quote(column)
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        return f"epoch_us(CAST({col} AS TIMESTAMP)) / 1e6"
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return f"CAST({col} AS DOUBLE)"
    text = f"trim(CAST({col} AS VARCHAR))"
    if dates:  # numbers first, then ISO dates (naive ones as UTC), as the local reader does
        return f"coalesce(TRY_CAST({text} AS DOUBLE), epoch_us(TRY_CAST({text} AS TIMESTAMPTZ)) / 1e6)"
    return f"TRY_CAST({text} AS DOUBLE)"


def _load(con, source: EngineInput) -> None:
    cols, types = source.columns, source.types
    select = [
        f"{_id_expr(cols['user'], types['user'])} AS u",
        f"{_id_expr(cols['item'], types['item'])} AS i",
    ]
    select.append(f"{_float_expr(cols['time'], types['time'], True)} AS t" if "time" in cols else "0.0 AS t")
    select.append(f"{_float_expr(cols['rating'], types['rating'], False)} AS rt" if "rating" in cols
                  else "NULL::DOUBLE AS rt")
    for index, (part, start) in enumerate(zip(source.parts, source.starts, strict=True)):
        query = (f"SELECT {', '.join(select)}, file_row_number + {start} AS r "
                 f"FROM read_parquet(?, file_row_number = true)")
        verb = "CREATE TABLE raw AS" if index == 0 else "INSERT INTO raw"
        con.execute(f"{verb} {query}", [str(part)])


def _check(con, source: EngineInput) -> None:
    """The first bad value (lowest row) of each column, reported at its part file and row."""
    checks = [("u IS NULL OR CAST(u AS VARCHAR) = ''", "empty user id", "user"),
              ("i IS NULL OR CAST(i AS VARCHAR) = ''", "empty item id", "item")]
    if "time" in source.columns:
        checks.append(("t IS NULL", "missing or unparsable timestamp (not a number or an ISO date)", "time"))
    if "rating" in source.columns:
        checks.append(("rt IS NULL", "missing or unparsable rating (not a number)", "rating"))
    for condition, what, role in checks:
        row = con.execute(f"SELECT min(r) FROM raw WHERE {condition}").fetchall()[0][0]
        if row is not None:
            raise DataError(what, where=source.where(int(row)),
                            fix=f"fix that row, or set data.columns.{role} to the right column")


def _configure(con, spec: DataSpec, work: Path, threads: int | None) -> None:
    con.execute(f"SET memory_limit = '{spec.engine_memory_gb}GB'")
    con.execute(f"SET temp_directory = '{work / 'spill'}'")
    con.execute("SET preserve_insertion_order = false")  # every order we need is explicit
    if threads:
        con.execute(f"SET threads = {int(threads)}")


def _dedup(con, spec: DataSpec) -> None:
    if spec.dedup == "none":
        con.execute("ALTER TABLE kept RENAME TO cur")
        return
    pick = "min" if spec.dedup == "first" else "max"  # first/last in (time, row) order
    con.execute(f"CREATE TABLE cur AS SELECT u, i, k.t AS t, k.r AS r FROM "
                f"(SELECT u, i, {pick}({{'t': t, 'r': r}}) AS k FROM kept GROUP BY u, i)")
    con.execute("DROP TABLE kept")


def _kcore(con, user_min: int, item_min: int) -> None:
    while True:
        con.execute("CREATE OR REPLACE TABLE uc AS SELECT u, count(*) AS c FROM cur GROUP BY u")
        con.execute("CREATE OR REPLACE TABLE ic AS SELECT i, count(*) AS c FROM cur GROUP BY i")
        bad_u = con.execute("SELECT count(*) FROM uc WHERE c < ?", [user_min]).fetchall()[0][0]
        bad_i = con.execute("SELECT count(*) FROM ic WHERE c < ?", [item_min]).fetchall()[0][0]
        if bad_u == 0 and bad_i == 0:
            return
        con.execute("CREATE TABLE nxt AS SELECT * FROM cur WHERE u IN (SELECT u FROM uc WHERE c >= ?) "
                    "AND i IN (SELECT i FROM ic WHERE c >= ?)", [user_min, item_min])
        con.execute("DROP TABLE cur")
        con.execute("ALTER TABLE nxt RENAME TO cur")


def _id_map(con, column: str, first: int) -> list[str]:
    values = (
        con.sql(f"SELECT DISTINCT {column} FROM cur")
        .to_arrow_table()
        .column(0)
        .to_numpy(zero_copy_only=False)
    )
    ordered, strings = id_order(values)
    mapping = pa.table({column: pa.array(ordered), "d" + column: np.arange(first, first + len(ordered))})
    con.register("mapping", mapping)
    con.execute(f"CREATE TABLE map_{column} AS SELECT * FROM mapping")
    con.unregister("mapping")
    return strings


def prepare_duckdb(path: Path, spec: DataSpec, work: Path, threads: int | None = None) -> EngineResult:
    import duckdb

    work.mkdir(parents=True, exist_ok=True)
    source = engine_input(path, spec, work)
    check_rating(spec, "rating" in source.columns, source.label)
    con = duckdb.connect(str(work / "prepare.duckdb"))
    try:
        _configure(con, spec, work, threads)
        _load(con, source)
        _check(con, source)
        where = "WHERE rt >= ?" if spec.min_rating is not None else ""
        params = [spec.min_rating] if spec.min_rating is not None else []
        con.execute(f"CREATE TABLE kept AS SELECT u, i, t, r FROM raw {where}", params)
        con.execute("DROP TABLE raw")
        _dedup(con, spec)
        _kcore(con, max(spec.user_core, spec.min_user_len), spec.item_core)
        total = con.execute("SELECT count(*) FROM cur").fetchall()[0][0]
        if total == 0:
            raise empty_error(spec, source.label)
        user_ids = _id_map(con, "u", 0)
        item_ids = [""] + _id_map(con, "i", 1)
        # Result order: DuckDB only keeps ORDER BY through an Arrow reader while this is on.
        con.execute("SET preserve_insertion_order = true")
        counts = con.sql(
            "SELECT count(*) FROM cur JOIN map_u USING (u) GROUP BY du ORDER BY du"
        ).to_arrow_table()
        offsets = offsets_from_counts(counts.column(0).to_numpy())
        has_time = "time" in source.columns
        items_out = ArrayWriter(work / "sequences.npy", np.int32, total)
        times_out = ArrayWriter(work / "timestamps.npy", np.float64, total) if has_time else None
        reader = con.sql("SELECT di, t FROM cur JOIN map_u USING (u) JOIN map_i USING (i) "
                         "ORDER BY du, t, r").to_arrow_reader(BATCH)
        for batch in reader:
            items_out.add(batch.column(0).to_numpy().astype(np.int32))
            if times_out is not None:
                times_out.add(batch.column(1).to_numpy())
    finally:
        con.close()
    seqs = Sequences(items_out.close(), offsets, times_out.close() if times_out else None, user_ids, item_ids)
    return EngineResult(seqs, source.rows)
