"""Data parallel: `torchrun --nproc_per_node=2 -m seqrec_cli finetune` on CPU (gloo) trains the same
model and reports the same metrics as one process taking the same optimizer steps.

Two processes with train.grad_accum=1 take, per optimizer step, the same two batches that one
process with train.grad_accum=2 takes, each weighted by its share of labelled positions, with the
same dropout masks (seeded per batch). So the runs differ only in float summation order: gradients
are summed by an all-reduce instead of accumulated in .grad. Validation shards users at
evaluation-batch boundaries and gathers ranks, so every user is scored by the same batch either
way. Tolerance: 1e-5 relative on losses and weights, 1e-9 absolute on metrics (ranks are integers;
a 1-ulp difference in one score could only move a metric by flipping an exact tie).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from engine_fixtures import REPO, child_env, cli_args, epoch_records, needs_ml100k, overrides, weights
from seqrec_cli.core.distributed import World, shard_bounds, user_slice
from seqrec_cli.data.process import Sequences
from seqrec_cli.pipelines.finetune import finetune
from seqrec_cli.spec.loader import load_spec

RUN = ["train.epochs=2", "train.batch_size=32", "eval.batch_size=100"]


def test_shards_are_disjoint_cover_all_users_and_cut_at_batch_boundaries():
    for users, batch, size in [(943, 100, 2), (10, 4, 3), (5, 8, 2), (7, 1, 4)]:
        bounds = [shard_bounds(users, batch, World(rank=r, size=size)) for r in range(size)]
        assert bounds[0][0] == 0 and bounds[-1][1] == users
        assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))
        assert all(start % batch == 0 for start, stop in bounds if stop > start)


def test_user_slice_keeps_each_users_items():
    items = np.array([1, 2, 3, 4, 5, 6, 7], dtype=np.int32)
    seqs = Sequences(items=items, offsets=np.array([0, 2, 5, 7]), timestamps=None, user_ids=["a", "b", "c"],
                     item_ids=[""] + [str(i) for i in range(1, 8)])
    part = user_slice(seqs, 1, 3)
    assert part.user_ids == ["b", "c"] and part.num_items == 7
    assert part.user_items(0).tolist() == [3, 4, 5] and part.user_items(1).tolist() == [6, 7]


@needs_ml100k
def test_two_gloo_processes_match_one_process(tmp_path):
    single = load_spec(REPO / "experiments/ml100k/sasrec.yaml",
                       overrides(tmp_path, *RUN, "train.grad_accum=2", "name=single"))
    finetune(single)  # prepares the dataset too
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
              "-m", "seqrec_cli", *cli_args(tmp_path, *RUN, "train.grad_accum=1", "name=ddp")]
    result = subprocess.run(launch, env=child_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.count("done (epochs)") == 1  # rank 0 alone reports

    one, two = epoch_records(tmp_path / "runs/single"), epoch_records(tmp_path / "runs/ddp")
    assert [r["epoch"] for r in two] == [1, 2]
    assert_same_training(tmp_path, one, two)
    assert not (tmp_path / "runs/ddp/checkpoints/last.pt.tmp").exists()


@needs_ml100k
def test_two_gloo_processes_match_one_process_with_sampled_sliding_windows(tmp_path):
    # Windows are rows of the plan like users were: the per-epoch window sample and the batch plan come
    # from (seed, epoch) on every process, so the split of each step's group is the only difference.
    windows = [
        "model.max_len=10",
        "train.windows=sliding",
        "train.window_stride=7",
        "train.windows_per_user=4",
        "train.epochs=2",
        "train.batch_size=64",
        "eval.batch_size=100",
    ]
    finetune(load_spec(REPO / "experiments/ml100k/sasrec.yaml",
                       overrides(tmp_path, *windows, "train.grad_accum=2", "name=single")))
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
              "-m", "seqrec_cli", *cli_args(tmp_path, *windows, "train.grad_accum=1", "name=ddp")]
    result = subprocess.run(launch, env=child_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    one, two = epoch_records(tmp_path / "runs/single"), epoch_records(tmp_path / "runs/ddp")
    assert [r["epoch"] for r in two] == [1, 2]
    assert one[0]["positions"] != one[1]["positions"]  # a different window sample each epoch
    assert_same_training(tmp_path, one, two)


def assert_same_training(tmp_path, one: list[dict], two: list[dict]) -> None:
    """runs/single and runs/ddp trained the same positions to the same losses, metrics and weights."""
    for a, b in zip(one, two, strict=True):
        assert a["positions"] == b["positions"]
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)
        for metric, value in a["valid"].items():
            assert b["valid"][metric] == pytest.approx(value, abs=1e-9), metric
    wa, wb = (
        weights(tmp_path / "runs/single/checkpoints/last.pt"),
        weights(tmp_path / "runs/ddp/checkpoints/last.pt"),
    )
    for key in wa:
        torch.testing.assert_close(wb[key], wa[key], rtol=1e-5, atol=1e-6)
