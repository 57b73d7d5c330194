"""`data.engine: spark` in Spark local mode gives the local engine's fingerprint, on MovieLens-100K and
on a small synthetic partitioned log. One SparkSession for the module (JVM start-up is the cost)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from seqrec_cli.data.synth import SynthConfig, generate
from seqrec_cli.pipelines.prepare import prepare
from seqrec_cli.spec.models import ExperimentSpec

pyspark = pytest.importorskip("pyspark", reason="pyspark is in the [spark] extra")
pytestmark = pytest.mark.skipif(shutil.which("java") is None,
                                reason="Spark needs a Java runtime (.ci/run installs default-jdk-headless)")

REPO = Path(__file__).resolve().parents[1]
DATA_ROOT = REPO.parent / "shared" / "datasets"


@pytest.fixture(scope="module")
def spark():
    from pyspark.sql import SparkSession

    session = (SparkSession.builder.master("local[1]").appName("seqrec-test")
               .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
               .config("spark.sql.shuffle.partitions", "2").config("spark.sql.session.timeZone", "UTC")
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    yield session  # the engine finds this active session and leaves it running
    session.stop()


def _fingerprints(make_spec, tmp_path: Path) -> dict[str, dict]:
    return {engine: prepare(make_spec(engine, tmp_path / engine)).manifest["fingerprint"]
            for engine in ("local", "spark")}


def test_spark_matches_local_on_a_partitioned_synthetic_log(spark, tmp_path: Path):
    log = tmp_path / "log"
    # three parts (the row numbering across parts is what this checks); small, so k-core ends fast
    generate(SynthConfig(interactions=6_000, items=300, seed=5, mean_len=15, users_per_chunk=150,
                         cluster_size=20), log)

    def make_spec(engine, folder):
        return ExperimentSpec(
            name="s",
            data={
                "path": str(log / "interactions"),
                "format": "table",
                "engine": engine,
                "prepared_dir": str(folder),
                "columns": {"rating": "rating"},
                "min_rating": 2,
                "dedup": "first",
                "user_core": 5,
                "item_core": 3,
            },
            runtime={"output_root": str(tmp_path)},
        )

    found = _fingerprints(make_spec, tmp_path)
    assert found["spark"] == found["local"] and found["local"]["interactions"] < 6_000


@pytest.mark.skipif(not (DATA_ROOT / "ml-100k" / "ml-100k.inter").is_file(), reason="MovieLens-100K not here")
def test_spark_matches_local_on_movielens_100k(spark, tmp_path: Path):
    def make_spec(engine, folder):
        return ExperimentSpec(name="ml", data={"dataset": "ml-100k", "user_core": 5, "item_core": 5,
                                               "engine": engine, "prepared_dir": str(folder)},
                              runtime={"data_root": str(DATA_ROOT), "output_root": str(tmp_path)})

    found = _fingerprints(make_spec, tmp_path)
    assert found["spark"] == found["local"] and found["local"]["users"] == 943
