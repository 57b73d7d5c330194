"""Two processes preparing the same dataset at once: the one whose rename loses reuses the folder
the other wrote (after the usual data-spec check) instead of failing."""

from __future__ import annotations

from pathlib import Path

import pytest

import seqrec_cli.pipelines.prepare as prepare_module
from seqrec_cli.data.store import write_prepared
from seqrec_cli.events import PrepareReused
from seqrec_cli.pipelines.prepare import prepare
from seqrec_cli.spec.models import ExperimentSpec


def make_spec(tmp_path: Path) -> ExperimentSpec:
    log = tmp_path / "log.txt"
    log.write_text("".join(f"u{u} {(u * 3 + j) % 20 + 1}\n" for u in range(30) for j in range(5)))
    return ExperimentSpec(name="race", data={"path": str(log), "format": "user_item_lines"},
                          runtime={"output_root": str(tmp_path / "out")})


def test_losing_the_rename_reuses_the_winners_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def other_process_finishes_first(folder, *args, **kwargs):
        won = write_prepared(folder, *args, **kwargs)  # the other process's rename lands first
        assert (folder / "manifest.json").is_file() and won
        return write_prepared(folder, *args, **kwargs)  # ours now finds the folder taken

    monkeypatch.setattr(prepare_module, "write_prepared", other_process_finishes_first)
    events = []
    result = prepare(make_spec(tmp_path), lambda event: events.append(event))
    assert result.reused and (result.folder / "manifest.json").is_file()
    assert isinstance(events[-1], PrepareReused)
    assert not [p for p in result.folder.parent.iterdir() if p.name.startswith(".")]  # no temp folder left


def test_other_write_failures_still_raise(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def disk_full(folder, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(prepare_module, "write_prepared", disk_full)
    with pytest.raises(OSError, match="No space left"):
        prepare(make_spec(tmp_path))
