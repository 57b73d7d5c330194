"""Training reports typed events (seqrec_cli.events), and the CLI's display renders each of them."""

from __future__ import annotations

from pathlib import Path

from seqrec_cli.cli.finetune import TrainDisplay
from seqrec_cli.events import (
    EpochDone,
    PrepareReading,
    PrepareWritten,
    StepDone,
    TrainDone,
    TrainStarted,
)
from seqrec_cli.pipelines.finetune import finetune
from seqrec_cli.spec.models import ExperimentSpec


def tiny_spec(tmp_path: Path, **train) -> ExperimentSpec:
    log = tmp_path / "log.txt"
    log.write_text("".join(f"u{u} {(u * 3 + j) % 20 + 1}\n" for u in range(40) for j in range(6)))
    return ExperimentSpec(
        name="events", data={"path": str(log), "format": "user_item_lines"},
        model={"max_len": 8, "hidden": 8, "layers": 1},
        train={"epochs": 2, "batch_size": 16, **train}, eval={"ks": [5], "bootstrap": 0},
        runtime={"output_root": str(tmp_path / "out"), "device": "cpu", "threads": 1},
    )


def test_finetune_reports_typed_events_in_order(tmp_path):
    seen = []
    result = finetune(tiny_spec(tmp_path, monitor="NDCG@5"), events=seen.append)
    kinds = [type(e) for e in seen]
    assert kinds[:2] == [PrepareReading, PrepareWritten]
    assert kinds.index(TrainStarted) < kinds.index(StepDone) < kinds.index(EpochDone)
    assert kinds[-1] is TrainDone
    epochs = [e for e in seen if isinstance(e, EpochDone)]
    assert [e.epoch for e in epochs] == [1, 2]
    assert epochs[0].valid is not None and epochs[0].monitored == epochs[0].valid["NDCG@5"]
    started = next(e for e in seen if isinstance(e, TrainStarted))
    assert started.run_dir == str(result.run_dir) and started.run["status"] == "running"
    done = seen[-1]
    assert done.stop_reason == result.stop_reason and done.run["status"] == "finished"


def test_display_renders_every_training_event(tmp_path, capsys):
    display = TrainDisplay()
    try:
        finetune(tiny_spec(tmp_path, monitor="NDCG@5"), events=display)
    finally:
        display.progress.stop()
    out = capsys.readouterr().out
    assert "preparing dataset from" in out and "epoch   2" in out and "valid NDCG@5" in out
