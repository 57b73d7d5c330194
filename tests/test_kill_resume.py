"""Fault tolerance: a real `seqrec finetune` process killed with SIGKILL mid-epoch and resumed ends
exactly where an uninterrupted run ends; a damaged checkpoint is refused (exit 2), never loaded."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from engine_fixtures import (
    REPO,
    child_env,
    cli_args,
    epoch_records,
    needs_ml100k,
    overrides,
    seqrec_command,
    weights,
)
from seqrec_cli.cli.app import app
from seqrec_cli.core.checkpoint import load_checkpoint
from seqrec_cli.pipelines.finetune import finetune
from seqrec_cli.spec.loader import load_spec

pytestmark = needs_ml100k
EPOCHS = 2
RUN = [f"train.epochs={EPOCHS}", "train.batch_size=32", "train.checkpoint_every_steps=3"]


def sidecar(run: Path) -> dict | None:
    try:
        return json.loads((run / "checkpoints/last.pt.sha256").read_text())
    except (FileNotFoundError, ValueError):  # not written yet, or caught mid-rename
        return None


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("kill")
    whole = load_spec(REPO / "experiments/ml100k/sasrec.yaml", overrides(out, *RUN, "name=whole"))
    finetune(whole)  # uninterrupted, in this process (also prepares the dataset for the child)

    cmd = [*seqrec_command(), *cli_args(out, *RUN, "name=killed")]
    proc = subprocess.Popen(cmd, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    killed = out / "runs/killed"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        about = sidecar(killed)
        if about and about["epoch"] >= 2 and about["batches_done"] >= 6:  # well inside epoch 2 (30 batches)
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.002)
    output = proc.communicate(timeout=60)[0].decode()
    state = load_checkpoint(killed / "checkpoints/last.pt")
    resumed = subprocess.run(
        [*seqrec_command(), *cli_args(out, *RUN, "name=killed"), "--resume"],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    return {"out": out, "whole": out / "runs/whole", "killed": killed, "returncode": proc.returncode,
            "output": output, "state": state, "resumed": resumed}


def test_the_run_was_killed_mid_epoch(runs):
    assert runs["returncode"] == -signal.SIGKILL, runs["output"]
    loop = runs["state"]["loop"]
    assert loop["epoch"] >= 2 and 0 < loop["batches_done"], loop  # the checkpoint resumed from is mid-epoch
    assert runs["resumed"].returncode == 0, runs["resumed"].stdout + runs["resumed"].stderr
    assert "resuming in epoch" in " ".join(runs["resumed"].stdout.split())


def test_resumed_run_ends_exactly_like_the_uninterrupted_one(runs):
    whole, killed = runs["whole"], runs["killed"]
    assert [r["epoch"] for r in epoch_records(killed)] == list(range(1, EPOCHS + 1))
    assert epoch_records(killed) == epoch_records(whole)  # losses and validation metrics, every epoch
    for name in ("best.pt", "last.pt"):
        a, b = weights(whole / "checkpoints" / name), weights(killed / "checkpoints" / name)
        for key in a:
            assert torch.equal(a[key], b[key]), (name, key)
    info_a, info_b = (json.loads((r / "run.json").read_text()) for r in (whole, killed))
    for key in ("best_epoch", "best_valid_NDCG@10", "global_step", "epochs_run", "stop_reason"):
        assert info_a[key] == info_b[key], key


def test_damaged_checkpoint_is_refused_with_exit_2(runs):
    last = runs["killed"] / "checkpoints/last.pt"
    intact = last.read_bytes()
    runner = CliRunner()
    try:
        last.write_bytes(intact[: len(intact) - 100])  # truncated
        result = runner.invoke(app, [*cli_args(runs["out"], *RUN, "name=killed"), "--resume"])
        assert result.exit_code == 2, result.output
        assert "truncated or corrupted" in " ".join(result.output.split())
        flipped = bytearray(intact)
        flipped[len(flipped) // 2] ^= 0xFF  # same size, one byte changed
        last.write_bytes(bytes(flipped))
        result = runner.invoke(app, [*cli_args(runs["out"], *RUN, "name=killed"), "--resume"])
        assert result.exit_code == 2 and "truncated or corrupted" in " ".join(result.output.split())
    finally:
        last.write_bytes(intact)
    assert last.read_bytes() == intact  # refusing never rewrote the user's checkpoint
