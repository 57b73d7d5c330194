"""Production-size logs on small data: the synthetic generator, partitioned Parquet input, and the
duckdb engine giving the local engine's exact prepared dataset (fingerprint), plus bad input at scale
(a bad row deep in a part, a schema mismatch between parts) reported by file and row."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from seqrec_cli.data.store import load_prepared
from seqrec_cli.data.synth import SynthConfig, generate
from seqrec_cli.errors import DataError
from seqrec_cli.pipelines.prepare import prepare
from seqrec_cli.spec.models import ExperimentSpec

REPO = Path(__file__).resolve().parents[1]
DATA_ROOT = REPO.parent / "shared" / "datasets"
SMALL = SynthConfig(interactions=12_000, items=400, seed=3, mean_len=20, users_per_chunk=150, cluster_size=20)


@pytest.fixture(scope="module")
def synth_log(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "log"
    generate(SMALL, out)
    return out


def spec_for(path: Path, out: Path, engine: str, **data) -> ExperimentSpec:
    fields = {"path": str(path), "format": "table", "engine": engine, "prepared_dir": str(out / engine),
              "columns": {"user": "user_id", "item": "item_id", "time": "timestamp", "rating": "rating"},
              "min_rating": 2, "dedup": "first", "user_core": 5, "item_core": 5, **data}
    return ExperimentSpec(name="scale", data=fields, runtime={"output_root": str(out), "threads": 1})


def test_generator_is_seeded_exact_and_shaped(synth_log: Path, tmp_path: Path):
    parts = sorted((synth_log / "interactions").glob("part-*.parquet"))
    table = pq.read_table(synth_log / "interactions")
    assert len(parts) > 3 and table.num_rows == SMALL.interactions  # exact size, several parts
    assert table.schema.field("user_id").type == pa.int64()
    again = generate(SMALL, tmp_path / "again")
    assert again["rows"] == SMALL.interactions
    for part in parts:  # same seed and sizes -> same bytes
        assert part.read_bytes() == (tmp_path / "again" / "interactions" / part.name).read_bytes()
    counts = np.sort(np.unique(table.column("item_id").to_numpy(), return_counts=True)[1])[::-1]
    assert counts[: len(counts) // 10].sum() > 0.3 * counts.sum()  # power law: a heavy head
    users = np.unique(table.column("user_id").to_numpy(), return_counts=True)[1]
    assert users.max() > 4 * np.median(users)  # log-normal activity: a long tail of heavy users
    times = table.column("timestamp").to_numpy()
    assert (np.diff(times) >= 0).sum() > 0.9 * len(times)  # each part written in time order
    items = pq.read_table(synth_log / "items.parquet")
    assert items.num_rows == SMALL.items and items.column("title")[0].as_py()


def test_walks_follow_the_item_ring_most_of_the_time(synth_log: Path):
    """The learnable structure: most next items are 1-3 steps along the ring inside the cluster."""
    table = pq.read_table(synth_log / "interactions").sort_by(
        [("user_id", "ascending"), ("timestamp", "ascending")]
    )
    catalogue = (
        pq.read_table(synth_log / "items.parquet").column("item_id").to_numpy()
    )  # row = internal index
    order = np.argsort(catalogue)
    internal = order[np.searchsorted(catalogue[order], table.column("item_id").to_numpy())]
    same_user = np.diff(table.column("user_id").to_numpy()) == 0
    step = (np.diff(internal) % SMALL.cluster_size)[same_user]
    assert np.isin(step, [1, 2, 3]).mean() > 0.4  # vs 3/cluster_size = 0.15 for random next items


@pytest.mark.parametrize("dedup", ["first", "last"])
def test_duckdb_engine_gives_the_local_fingerprint_on_partitions(synth_log: Path, tmp_path: Path, dedup: str):
    local = prepare(spec_for(synth_log / "interactions", tmp_path, "local", dedup=dedup)).manifest
    duck = prepare(spec_for(synth_log / "interactions", tmp_path, "duckdb", dedup=dedup)).manifest
    assert local["fingerprint"] == duck["fingerprint"]
    assert local["source"]["rows"] == duck["source"]["rows"] == SMALL.interactions
    assert local["fingerprint"]["interactions"] < SMALL.interactions  # the filters really dropped rows
    a, _ = load_prepared(tmp_path / "local")
    b, _ = load_prepared(tmp_path / "duckdb")
    assert np.array_equal(a.timestamps, b.timestamps)
    assert isinstance(b.items, np.memmap)  # training reads the prepared arrays memory-mapped


def test_engines_agree_on_string_ids_iso_dates_and_time_ties(tmp_path: Path):
    rng = np.random.default_rng(0)
    n = 3000
    users = [f" u{u:03d}" if u % 7 == 0 else f"u{u}" for u in rng.integers(0, 60, n)]  # padded + mixed widths
    items = [f"i{i}" for i in rng.integers(0, 40, n)]
    seconds = 1_600_000_000 + rng.integers(0, 50, n) * 3600  # many exact ties
    dates = np.array(seconds, dtype="datetime64[s]").astype(str).tolist()
    folder = tmp_path / "parts"
    folder.mkdir()
    for k in range(3):
        sl = slice(k * 1000, (k + 1) * 1000)
        pq.write_table(pa.table({"user_id": users[sl], "item_id": items[sl], "timestamp": dates[sl],
                                 "rating": rng.integers(1, 6, 1000).astype(float)}), folder / f"p{k}.parquet")
    local = prepare(spec_for(folder, tmp_path, "local", dedup="none")).manifest
    duck = prepare(spec_for(folder, tmp_path, "duckdb", dedup="none")).manifest
    assert local["fingerprint"] == duck["fingerprint"] and local["fingerprint"]["users"] > 30


@pytest.mark.skipif(not (DATA_ROOT / "ml-100k" / "ml-100k.inter").is_file(), reason="MovieLens-100K not here")
def test_duckdb_engine_gives_the_local_fingerprint_on_movielens(tmp_path: Path):
    def spec(engine):
        return ExperimentSpec(
            name="ml",
            data={
                "dataset": "ml-100k",
                "user_core": 5,
                "item_core": 5,
                "engine": engine,
                "columns": {"rating": "rating"},
                "min_rating": 3,
                "prepared_dir": str(tmp_path / engine),
            },
            runtime={"data_root": str(DATA_ROOT), "output_root": str(tmp_path)},
        )
    assert prepare(spec("local")).manifest["fingerprint"] == prepare(spec("duckdb")).manifest["fingerprint"]


def _parts_with(tmp_path: Path, third: pa.Table) -> Path:
    folder = tmp_path / "bad"
    folder.mkdir()
    good = pa.table(
        {
            "user_id": pa.array(np.arange(500) % 50, pa.int64()),
            "item_id": pa.array(np.arange(500) % 20, pa.int64()),
            "timestamp": pa.array(np.arange(500), pa.int64()),
            "rating": pa.array(np.full(500, 4.0)),
        }
    )
    pq.write_table(good, folder / "part-0.parquet")
    pq.write_table(good, folder / "part-1.parquet")
    pq.write_table(third, folder / "part-2.parquet")
    return folder


@pytest.mark.parametrize("engine", ["local", "duckdb"])
def test_a_bad_row_deep_in_a_part_is_reported_at_its_file_and_row(tmp_path: Path, engine: str):
    users = pa.array([None if r == 377 else r % 50 for r in range(500)], pa.int64())
    third = pa.table(
        {
            "user_id": users,
            "item_id": pa.array(np.arange(500) % 20, pa.int64()),
            "timestamp": pa.array(np.arange(500), pa.int64()),
            "rating": pa.array(np.full(500, 4.0)),
        }
    )
    folder = _parts_with(tmp_path, third)
    with pytest.raises(DataError) as err:
        prepare(spec_for(folder, tmp_path, engine))
    assert err.value.where == f"{folder / 'part-2.parquet'}:row 378"
    assert "user" in err.value.message and "data.columns.user" in err.value.fix


@pytest.mark.parametrize("engine", ["local", "duckdb"])
def test_a_schema_mismatch_between_parts_names_the_part(tmp_path: Path, engine: str):
    third = pa.table(
        {
            "user_id": pa.array([str(r % 50) for r in range(500)]),
            "item_id": pa.array(np.arange(500) % 20, pa.int64()),
            "timestamp": pa.array(np.arange(500), pa.int64()),
            "rating": pa.array(np.full(500, 4.0)),
        }
    )
    folder = _parts_with(tmp_path, third)
    with pytest.raises(DataError) as err:
        prepare(spec_for(folder, tmp_path, engine))
    assert err.value.where == str(folder / "part-2.parquet")
    assert (
        "user_id" in err.value.message
        and "int64" in err.value.message
        and "part-0.parquet" in err.value.message
    )


def test_cli_schema_mismatch_exits_2_naming_the_partition(tmp_path: Path):
    third = pa.table(
        {
            "user_id": pa.array(np.arange(500) % 50, pa.int64()),
            "item_id": pa.array(np.arange(500) % 20, pa.int64()),
            "timestamp": pa.array(np.arange(500, dtype=np.float64)),
            "rating": pa.array(np.full(500, 4.0)),
        }
    )
    folder = _parts_with(tmp_path, third)
    spec = tmp_path / "s.yaml"
    spec.write_text(f"name: bad\ndata:\n  path: {folder}\n  format: table\n  engine: duckdb\n"
                    f"  columns: {{rating: rating}}\nruntime:\n  output_root: {tmp_path}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "seqrec_cli", "prepare", str(spec)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    assert proc.returncode == 2, proc.stderr
    assert "part-2.parquet" in proc.stderr and "schema mismatch" in proc.stderr and "fix:" in proc.stderr


def test_synth_cli_writes_parts_and_never_overwrites(tmp_path: Path):
    out = tmp_path / "log"
    args = [sys.executable, "-m", "seqrec_cli", "synth", "--out", str(out), "--interactions", "2000",
            "--items", "100", "--users-per-part", "30"]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    first = subprocess.run(args, capture_output=True, text=True, env=env)
    assert first.returncode == 0, first.stderr
    assert (
        pq.read_table(out / "interactions").num_rows == 2000
        and len(list((out / "interactions").iterdir())) > 1
    )
    again = subprocess.run(args, capture_output=True, text=True, env=env)
    assert again.returncode == 2 and "already exists" in again.stderr and "fix:" in again.stderr
