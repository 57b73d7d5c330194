"""Data-parallel runs under torchrun: the process group, the few collectives the loop needs, and
validation sharded across processes.

One process (no WORLD_SIZE > 1 in the environment) is the same code with `World()`: every
collective is then the identity, so nothing else has to branch on it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch
import torch.distributed as dist

from seqrec_cli.core.evaluation import RankOptions, evaluate_split
from seqrec_cli.core.metrics import metrics_at_k
from seqrec_cli.core.model import SeqRecModel
from seqrec_cli.core.runtime import Runtime
from seqrec_cli.data.process import Sequences
from seqrec_cli.errors import UserError

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")  # where collectives' tensors live (cuda for nccl)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def sum(self, values: list[float]) -> list[float]:
        if self.size == 1:
            return values
        total = torch.tensor(values, dtype=torch.float64, device=self.device)  # [V]
        dist.all_reduce(total)
        return total.tolist()

    def any(self, flag: bool) -> bool:
        """True on every process when it is True on one (so e.g. a deadline stops them all together)."""
        if self.size == 1:
            return flag
        value = torch.tensor([int(flag)], device=self.device)  # [1]
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def gather(self, part: np.ndarray) -> np.ndarray:
        """Concatenate every process's array in rank order."""
        if self.size == 1:
            return part
        parts: list = [None] * self.size
        dist.all_gather_object(parts, part)
        return np.concatenate(parts)

    def on_main(self, fn: Callable[[], T]) -> T:
        """Run fn on rank 0 only and hand its result to every process; a UserError there is raised
        everywhere (other ranks would otherwise wait forever for a rank that has exited)."""
        if self.size == 1:
            return fn()
        outcome: list = [None]
        if self.is_main:
            try:
                outcome[0] = ("ok", fn())
            except UserError as exc:
                outcome[0] = ("user", (exc.message, exc.where, exc.fix))
                dist.broadcast_object_list(outcome, src=0)
                raise
            except BaseException as exc:
                outcome[0] = ("bug", f"{type(exc).__name__}: {exc}")
                dist.broadcast_object_list(outcome, src=0)
                raise
        dist.broadcast_object_list(outcome, src=0)
        kind, value = outcome[0]
        if kind == "user":
            message, where, fix = value
            raise UserError(message, where=where, fix=fix)
        if kind == "bug":
            raise RuntimeError(f"rank 0 failed: {value}")
        return value

    def close(self) -> None:
        if self.size > 1 and dist.is_initialized():
            dist.destroy_process_group()


def init_world(device: str) -> World:
    """Join the process group torchrun describes in the environment: gloo for CPU, nccl for CUDA."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device == "mps":
        raise UserError(
            "distributed training runs on CPU (gloo) or CUDA (nccl), not MPS",
            where="runtime.device",
            fix="launch one process, or use runtime.device=cpu under torchrun",
        )
    on_cuda = device in ("auto", "cuda") and torch.cuda.is_available()
    if on_cuda:
        if local_rank >= torch.cuda.device_count():
            raise UserError(f"torchrun started {local_rank + 1}+ processes on this node but it has "
                            f"{torch.cuda.device_count()} GPU(s)", where="torchrun --nproc_per_node",
                            fix="start at most one process per GPU")
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if on_cuda else "gloo", rank=rank, world_size=size)
    return World(rank=rank, size=size, local_rank=local_rank,
                 device=torch.device("cuda", local_rank) if on_cuda else torch.device("cpu"))


def user_slice(seqs: Sequences, start: int, stop: int) -> Sequences:
    """Users start..stop-1 as a Sequences of their own (offsets rebased to 0)."""
    lo, hi = int(seqs.offsets[start]), int(seqs.offsets[stop])
    return Sequences(items=seqs.items[lo:hi], offsets=seqs.offsets[start : stop + 1] - lo,
                     timestamps=None if seqs.timestamps is None else seqs.timestamps[lo:hi],
                     user_ids=seqs.user_ids[start:stop], item_ids=seqs.item_ids)


def shard_bounds(num_users: int, batch_size: int, world: World) -> tuple[int, int]:
    """This process's contiguous users, cut at evaluation-batch boundaries: every batch is the same
    as in a one-process run, so each user's scores (and rank) are computed identically."""
    batches = -(-num_users // batch_size)
    first, last = batches * world.rank // world.size, batches * (world.rank + 1) // world.size
    return min(first * batch_size, num_users), min(last * batch_size, num_users)


def evaluate_split_sharded(
    model: SeqRecModel,
    seqs: Sequences,
    split: str,
    options: RankOptions,
    ks: list[int],
    runtime: Runtime,
    world: World,
) -> tuple[dict[str, float], np.ndarray]:
    """Full-ranking metrics of a split; each process ranks its shard of users, ranks are gathered."""
    start, stop = shard_bounds(seqs.num_users, options.batch_size, world)
    part = np.zeros(0, dtype=np.int64)
    if stop > start:
        _, part = evaluate_split(model, user_slice(seqs, start, stop), split, options, ks, runtime)
    ranks = world.gather(part)  # [U] in user order
    return metrics_at_k(ranks, ks), ranks
