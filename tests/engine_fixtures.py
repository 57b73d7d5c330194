"""Shared by the engine tests that launch real `seqrec finetune` processes on MovieLens-100K."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
DATA_ROOT = Path(os.environ.get("SEQREC_DATA_ROOT", REPO.parent / "shared" / "datasets"))
needs_ml100k = pytest.mark.skipif(not (DATA_ROOT / "ml-100k" / "ml-100k.inter").is_file(),
                                  reason="MovieLens-100K not available under the data root")

# A tiny model so a process spends its time starting up, not training; a high lr so two epochs
# already rank well above chance (metrics that are all zero would compare equal too easily).
TINY = [
    "model.max_len=30",
    "model.hidden=16",
    "model.layers=1",
    "model.heads=1",
    "model.dropout=0.2",
    "train.batch_size=16",
    "train.lr=0.005",
    "train.max_minutes=null",
    "train.patience=50",
    "eval.ks=[10]",
    "runtime.device=cpu",
    "runtime.precision=fp32",
    "runtime.threads=1",
]


def overrides(out: Path, *extra: str) -> list[str]:
    return [f"runtime.output_root={out}", f"runtime.data_root={DATA_ROOT}", *TINY, *extra]


def cli_args(out: Path, *extra: str) -> list[str]:
    args = ["finetune", str(REPO / "experiments/ml100k/sasrec.yaml")]
    for item in overrides(out, *extra):
        args += ["--set", item]
    return args


def child_env() -> dict:
    """This checkout's sources first, one thread, so child processes are the code under test."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    return env


def seqrec_command() -> list[str]:
    return [sys.executable, "-m", "seqrec_cli"]


def epoch_records(run: Path) -> list[dict]:
    """metrics.jsonl without the wall-clock fields, which no two runs share."""
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("seconds", "positions_per_s")} for r in records]


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]
