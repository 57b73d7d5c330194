"""benchmarks/curves.py: validation curves side by side."""

import importlib.util
import json
from pathlib import Path

import pytest

spec = importlib.util.spec_from_file_location(
    "curves_bench", Path(__file__).parents[1] / "benchmarks/curves.py"
)
curves = importlib.util.module_from_spec(spec)
spec.loader.exec_module(curves)


def write_run(folder: Path, values: list[float], seconds: float) -> Path:
    folder.mkdir(parents=True)
    rows = [{"epoch": i + 1, "seconds": seconds, "valid": {"NDCG@10": v}} for i, v in enumerate(values)]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_window_means_best_epoch_and_seconds_by_hand(tmp_path):
    curve = curves.load_curve(write_run(tmp_path / "a", [0.1, 0.3, 0.2, 0.3, 0.25], 2.0), "NDCG@10")
    assert (curve["best_epoch"], curve["best"], curve["seconds_per_epoch"]) == (2, 0.3, 2.0)
    means = curves.window_means(curve, [(1, 2), (3, 5), (4, 6)])
    assert means["1-2"] == pytest.approx(0.2)
    assert means["3-5"] == pytest.approx(0.75 / 3)
    assert means["4-6"] is None  # the run stopped before epoch 6: no mean over a partial window


def test_json_out_and_bad_windows(tmp_path):
    run = write_run(tmp_path / "a", [0.1, 0.2], 1.0)
    curves.main([str(run), "--windows", "1-2", "--out", str(tmp_path / "out.json")])
    assert json.loads((tmp_path / "out.json").read_text())["runs"][0]["window_means"]["1-2"] == pytest.approx(
        0.15
    )
    with pytest.raises(SystemExit, match="FIRST <= LAST"):
        curves.main([str(run), "--windows", "5-2"])
