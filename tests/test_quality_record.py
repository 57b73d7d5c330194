"""benchmarks/quality.py --record: a run stopped by hand is recorded from its metrics."""

import importlib.util
from pathlib import Path

import pytest

spec = importlib.util.spec_from_file_location(
    "quality_bench", Path(__file__).parents[1] / "benchmarks/quality.py"
)
quality = importlib.util.module_from_spec(spec)
spec.loader.exec_module(quality)


def epochs(values):
    return [{"epoch": i + 1, "valid": {"NDCG@10": v}} for i, v in enumerate(values)]


def test_a_killed_run_takes_its_epochs_and_first_best_epoch_from_the_metrics():
    info = quality.settled_run_info(
        {"name": "r", "status": "running"}, epochs([0.1, 0.3, 0.2, 0.3]), "NDCG@10"
    )
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


def row(config, ndcg, **extra):
    return {"dataset": "ml1m", "config": config, "encoder": "sasrec", "loss": "full_ce", "best_epoch": 3,
            "epochs_run": 4, "stop_reason": "early_stop", "overrides": {}, "wall_seconds": 120.0,
            "machine": {"cpu_count": 2}, "test": {"HR@10": 0.3, "NDCG@10": ndcg}, **extra}


def test_the_table_says_how_each_rows_steps_were_averaged():
    # Rows recorded before train.loss_norm existed trained with per-step means: they read `step`.
    lines = quality.table({"ml1m/sasrec": row("sasrec", 0.19, loss_norm="epoch"),
                           "ml1m/sasrec_base": row("sasrec_base", 0.16)}).splitlines()
    header = next(line for line in lines if line.startswith("| config"))
    column = header.split(" | ").index("norm")
    cells = {line.split(" | ")[0]: line.split(" | ")[column] for line in lines if line.startswith("| sasrec")}
    assert cells == {"| sasrec": "epoch", "| sasrec_base": "step"}
    published_ndcg = header.split(" | ").index("published NDCG@10")
    assert all(line.split(" | ")[published_ndcg] == "0.1821" for line in lines if line.startswith("| sasrec"))


def test_a_recorded_run_cut_by_an_epoch_override_is_marked_as_a_budget_run(tmp_path):
    shipped = tmp_path / "sasrec.yaml"
    shipped.write_text("name: r\ndata: {dataset: ml-100k}\ntrain: {epochs: 200}\n")
    cut = quality.load_spec(shipped, ["train.epochs=39"])
    assert quality.epoch_override(cut, shipped) == {"epochs": 39}
    assert (
        quality.budget_mark({"overrides": quality.epoch_override(cut, shipped), "stop_reason": "epochs"})
        == "epochs"
    )
    assert quality.epoch_override(quality.load_spec(shipped), shipped) == {}
    assert quality.epoch_override(cut, tmp_path / "missing.yaml") == {}
