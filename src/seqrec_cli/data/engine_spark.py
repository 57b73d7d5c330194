"""`data.engine: spark`: the same prepare steps as DataFrame jobs on Apache Spark (local mode here,
a cluster under spark-submit). Only SQL operators run on the executors (no Python UDFs), so only the
driver needs seqrec installed; input parts and the work folder must be on storage the driver and the
executors both see.

Global row number = the part's first row (from the Parquet footers) + `_metadata.row_index`, so ties
in time break by the same row order as the local engine. The sorted result is written by Spark as
Parquet (range-partitioned, so part files in name order are in global order) and streamed into the
.npy files.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

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
from seqrec_cli.errors import DataError, UserError
from seqrec_cli.spec.models import DataSpec

MASTER_ENV = "SEQREC_SPARK_MASTER"


def spark_session(threads: int | None, memory_gb: float):
    """The active session (spark-submit, or a test's), else a local-mode one; (session, created)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise UserError(
            "data.engine is spark but pyspark is not installed",
            where="data.engine",
            fix="pip install 'seqrec[spark]' (and a Java 17+ runtime), or use data.engine: duckdb",
        ) from exc
    active = SparkSession.getActiveSession()
    if active is not None:
        return active, False
    from pyspark import SparkConf

    builder = SparkSession.builder.appName("seqrec-prepare")
    if not SparkConf().contains("spark.master"):  # under spark-submit the master and memory are set there
        builder = (builder.master(os.environ.get(MASTER_ENV, f"local[{threads or '*'}]"))
                   .config("spark.driver.memory", f"{max(1, int(memory_gb))}g"))
    session = (builder
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.sql.shuffle.partitions", str(max(4, 2 * (threads or os.cpu_count() or 2))))
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    return session, True


def _columns(df, source: EngineInput):
    from pyspark.sql import functions as F
    from pyspark.sql.types import DoubleType, LongType, StringType

    def ident(role):
        col, kind = F.col(f"`{source.columns[role]}`"), source.types[role]
        return col.cast(LongType()) if pa.types.is_integer(kind) else F.trim(col.cast(StringType()))

    def number(role, dates):
        col, kind = F.col(f"`{source.columns[role]}`"), source.types[role]
        if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
            return F.unix_micros(col.cast("timestamp")) / 1e6
        if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
            return col.cast(DoubleType())
        text = f"trim(CAST(`{source.columns[role]}` AS STRING))"
        parsed = F.expr(f"try_cast({text} AS DOUBLE)")
        if dates:  # numbers first, then ISO dates (naive ones as UTC: the session time zone)
            return F.coalesce(parsed, F.unix_micros(F.expr(f"try_to_timestamp({text})")) / 1e6)
        return parsed

    return [
        ident("user").alias("u"),
        ident("item").alias("i"),
        (number("time", True) if "time" in source.columns else F.lit(0.0)).alias("t"),
        (number("rating", False) if "rating" in source.columns else F.lit(None).cast(DoubleType())).alias(
            "rt"
        ),
    ]


def _raw(spark, source: EngineInput):
    from pyspark.sql import functions as F

    starts = spark.createDataFrame(
        [(_path_key(p.resolve().as_uri()), int(s)) for p, s in zip(source.parts, source.starts, strict=True)],
        "key string, start long")
    df = spark.read.parquet(*[str(p) for p in source.parts])
    key = F.regexp_replace(F.col("_metadata.file_path"), "^file:/+", "/")
    df = df.select(*_columns(df, source), key.alias("key"), F.col("_metadata.row_index").alias("row_index"))
    return df.join(F.broadcast(starts), "key").select(
        "u", "i", "t", "rt", (F.col("start") + F.col("row_index")).alias("r")
    )


def _path_key(uri: str) -> str:
    return "/" + uri.split(":", 1)[1].lstrip("/")


def _check(raw, source: EngineInput) -> None:
    from pyspark.sql import functions as F

    checks = [((F.col("u").isNull()) | (F.col("u").cast("string") == ""), "empty user id", "user"),
              ((F.col("i").isNull()) | (F.col("i").cast("string") == ""), "empty item id", "item")]
    if "time" in source.columns:
        checks.append(
            (F.col("t").isNull(), "missing or unparsable timestamp (not a number or an ISO date)", "time")
        )
    if "rating" in source.columns:
        checks.append((F.col("rt").isNull(), "missing or unparsable rating (not a number)", "rating"))
    firsts = raw.agg(
        *[F.min(F.when(cond, F.col("r"))).alias(f"c{n}") for n, (cond, _, _) in enumerate(checks)]
    ).first()
    for n, (_, what, role) in enumerate(checks):
        if firsts[f"c{n}"] is not None:
            raise DataError(what, where=source.where(int(firsts[f"c{n}"])),
                            fix=f"fix that row, or set data.columns.{role} to the right column")


def _kcore(df, user_min: int, item_min: int):
    """Rounds of: count per user and per item (windows, one job), drop rows below either minimum."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    while True:
        counted = df.select("*", F.count("*").over(Window.partitionBy("u")).alias("uc"),
                            F.count("*").over(Window.partitionBy("i")).alias("ic"))
        # a checkpoint per round keeps the plan (and the re-computation) from growing each round
        counted = counted.localCheckpoint(eager=True)
        good = (F.col("uc") >= user_min) & (F.col("ic") >= item_min)
        if counted.filter(~good).limit(1).count() == 0:
            return counted.drop("uc", "ic")
        df = counted.filter(good).drop("uc", "ic")


def _id_map(spark, df, column: str, first: int):
    values = df.select(column).distinct().toArrow().column(0).to_numpy(zero_copy_only=False)
    ordered, strings = id_order(values)
    table = pa.table(
        {column: pa.array(ordered), "d" + column: np.arange(first, first + len(ordered), dtype=np.int64)}
    )
    return spark.createDataFrame(table), strings


def prepare_spark(path: Path, spec: DataSpec, work: Path, threads: int | None = None) -> EngineResult:
    from pyspark.sql import functions as F

    work.mkdir(parents=True, exist_ok=True)
    source = engine_input(path, spec, work)
    check_rating(spec, "rating" in source.columns, source.label)
    spark, created = spark_session(threads, spec.engine_memory_gb)
    try:
        raw = _raw(spark, source)
        _check(raw, source)
        df = raw.filter(F.col("rt") >= spec.min_rating) if spec.min_rating is not None else raw
        df = df.select("u", "i", "t", "r")
        if spec.dedup != "none":
            pick = F.min if spec.dedup == "first" else F.max  # first/last in (time, row) order
            df = df.groupBy("u", "i").agg(pick(F.struct("t", "r")).alias("k")).select("u", "i", "k.t", "k.r")
        df = _kcore(df, max(spec.user_core, spec.min_user_len), spec.item_core)
        total = df.count()
        if total == 0:
            raise empty_error(spec, source.label)
        umap, user_ids = _id_map(spark, df, "u", 0)
        imap, item_ids = _id_map(spark, df, "i", 1)
        mapped = df.join(F.broadcast(umap) if len(user_ids) < 1_000_000 else umap, "u").join(imap, "i")
        counts = mapped.groupBy("du").count().orderBy("du").toArrow().column("count").to_numpy()
        out = work / "sorted"
        mapped.orderBy("du", "t", "r").select(F.col("di").cast("int"), "t").write.parquet(
            out.resolve().as_uri()
        )
    finally:
        if created:
            spark.stop()
    has_time = "time" in source.columns
    items_out = ArrayWriter(work / "sequences.npy", np.int32, total)
    times_out = ArrayWriter(work / "timestamps.npy", np.float64, total) if has_time else None
    for part in sorted(out.glob("part-*.parquet")):
        for batch in pq.ParquetFile(part).iter_batches(batch_size=1 << 20):
            items_out.add(batch.column(0).to_numpy())
            if times_out is not None:
                times_out.add(batch.column(1).to_numpy())
    seqs = Sequences(items_out.close(), offsets_from_counts(counts), times_out.close() if times_out else None,
                     user_ids, [""] + item_ids)
    return EngineResult(seqs, source.rows)
