"""benchmarks/quality.py --record: a run stopped by hand is recorded from its metrics."""

import importlib.util
from pathlib import Path

import pytest

spec = importlib.util.spec_from_file_location("quality_bench", Path(__file__).parents[1] / "benchmarks/quality.py")
quality = importlib.util.module_from_spec(spec)
spec.loader.exec_module(quality)


def epochs(values):
    return [{"epoch": i + 1, "valid": {"NDCG@10": v}} for i, v in enumerate(values)]


def test_a_killed_run_takes_its_epochs_and_first_best_epoch_from_the_metrics():
    info = quality.settled_run_info({"name": "r", "status": "running"}, epochs([0.1, 0.3, 0.2, 0.3]), "NDCG@10")
    assert (info["epochs_run"], info["best_epoch"], info["best_valid_NDCG@10"]) == (4, 2, 0.3)
    assert info["stop_reason"] == "interrupted"
    assert quality.budget_mark({"overrides": {}, "stop_reason": info["stop_reason"]}) == "stopped"


def test_a_finished_run_is_left_as_written():
    info = {"name": "r", "status": "finished", "stop_reason": "early_stop", "best_epoch": 1, "epochs_run": 3}
    assert quality.settled_run_info(info, epochs([0.1, 0.5, 0.2]), "NDCG@10") is info
    assert quality.budget_mark({"overrides": {}, "stop_reason": "early_stop"}) == ""


def test_a_run_with_no_validated_epoch_cannot_be_recorded():
    with pytest.raises(SystemExit, match="no validated epoch"):
        quality.settled_run_info({"name": "r", "status": "running"}, [{"epoch": 1}], "NDCG@10")
