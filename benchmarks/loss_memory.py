"""Peak memory and step time (forward + backward) of the full-softmax cross-entropy:
seqrec's chunked fused CE vs plain autograd, catalogue sizes 10K / 100K / 1M, D = 64,
8,192 target positions by default, in one run.

Each case runs in a fresh subprocess so its peak is its own:
  CPU:  peak resident memory of the step above the memory held before it (ru_maxrss delta)
  CUDA: torch.cuda.max_memory_allocated above the inputs
Plain autograd holds about 4 copies of the [positions x items] logits (logits, log-softmax,
their gradients); a plain case whose estimate exceeds --max-plain-gib is not attempted at full
size (it would be killed for memory, or take a shared machine down): it runs at the largest
power-of-two number of positions that fits, and the JSON says so.

  python benchmarks/loss_memory.py                      # full run, writes benchmarks/results/loss_memory.json
  python benchmarks/loss_memory.py --sizes 10000 --positions 1024 --out /tmp/quick.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

GIB = 1024**3


def plain_estimate_bytes(positions: int, items: int) -> int:
    return 4 * positions * (items + 1) * 4  # fp32 logits, log-softmax and two gradients of that size


def _rss_peak_bytes() -> int:
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is KiB on Linux, bytes on macOS
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def run_case(
    impl: str, items: int, positions: int, dim: int, repeats: int, device: str, threads: int, queue
) -> None:
    import torch

    from seqrec_cli.core.losses import CE_CHUNK, CE_MAX_ELEMENTS, full_cross_entropy, plain_full_cross_entropy

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    dev = torch.device(device)
    loss_fn = {"chunked": full_cross_entropy, "plain": plain_full_cross_entropy}[impl]
    hidden = torch.randn(1, positions, dim, device=dev, requires_grad=True)  # [1, P, D]
    weights = (0.1 * torch.randn(items + 1, dim, device=dev)).requires_grad_()  # [N + 1, D]
    labels = torch.randint(1, items + 1, (1, positions), device=dev)  # [1, P]

    def step() -> tuple[float, float]:
        hidden.grad = weights.grad = None
        if dev.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        loss = loss_fn(hidden, labels, weights)
        loss.backward()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start, float(loss.detach())

    if dev.type == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    else:
        base = _rss_peak_bytes()
    first, loss = step()
    peak = (torch.cuda.max_memory_allocated() if dev.type == "cuda" else _rss_peak_bytes()) - base
    times = [step()[0] for _ in range(repeats)] or [first]
    queue.put(
        {
            "peak_bytes": int(peak),
            "step_seconds": round(statistics.median(times), 4),
            "first_step_seconds": round(first, 4),
            "loss": round(loss, 6),
            "ce_chunk_rows": max(1, min(CE_CHUNK, CE_MAX_ELEMENTS // (items + 1)))
            if impl == "chunked"
            else None,
        }
    )


def measure(impl: str, items: int, positions: int, args) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=run_case, args=(impl, items, positions, args.dim, args.repeats, args.device,
                                              args.threads, queue))
    proc.start()
    proc.join()
    if proc.exitcode != 0:
        return {"status": f"failed (exit code {proc.exitcode}; -9 means killed, usually out of memory)"}
    return {"status": "measured", **queue.get()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000,1000000", help="catalogue sizes, comma-separated")
    parser.add_argument("--positions", type=int, default=8192, help="target positions per step")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2, help="timed steps after the first (memory) step")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument(
        "--max-plain-gib",
        type=float,
        default=8.0,
        help="largest estimated plain-CE footprint to attempt; bigger cases run with fewer positions",
    )
    parser.add_argument("--out", default="benchmarks/results/loss_memory.json")
    args = parser.parse_args()

    cases = []
    for items in (int(s) for s in args.sizes.split(",")):
        row = {"items": items, "dim": args.dim, "positions": args.positions}
        print(f"N={items:,}: chunked ...", flush=True)
        row["chunked"] = {"positions": args.positions, **measure("chunked", items, args.positions, args)}
        need = plain_estimate_bytes(args.positions, items)
        positions = args.positions
        while plain_estimate_bytes(positions, items) > args.max_plain_gib * GIB and positions > 1:
            positions //= 2
        plain = {"positions": positions, "estimated_bytes_at_full_positions": need}
        if positions != args.positions:
            plain["note"] = (
                f"not run at {args.positions} positions: plain autograd needs ~{need / GIB:.1f} GiB "
                f"(limit --max-plain-gib {args.max_plain_gib}); measured at {positions} positions"
            )
        print(f"N={items:,}: plain at {positions} positions ...", flush=True)
        plain.update(measure("plain", items, positions, args))
        row["plain"] = plain
        c, p = row["chunked"], row["plain"]
        if c["status"] == p["status"] == "measured":
            scale = args.positions / positions  # plain memory and time grow linearly in positions
            row["plain_peak_bytes_at_full_positions"] = (
                int(p["peak_bytes"] * scale) if scale > 1 else p["peak_bytes"]
            )
            row["memory_ratio_plain_over_chunked"] = round(row["plain_peak_bytes_at_full_positions"]
                                                           / max(c["peak_bytes"], 1), 1)
            row["loss_abs_diff"] = abs(c["loss"] - p["loss"]) if scale == 1 else None
            if scale > 1:
                row["ratio_note"] = "plain extrapolated linearly from the reduced-positions run"
        cases.append(row)
        print(json.dumps(row), flush=True)

    import torch

    report = {
        "benchmark": "loss_memory",
        "what": "full-softmax CE, one forward + backward over `positions` targets; "
        "chunked fused vs plain autograd",
        "memory": "CPU: peak RSS above the inputs (ru_maxrss delta); "
        "CUDA: max_memory_allocated above the inputs",
        "cases": cases,
        "machine": {
            "device": args.device,
            "cpu_count": os.cpu_count(),
            "torch_threads": args.threads,
            "platform": platform.platform(),
            "torch": torch.__version__,
        },
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(args.out).with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    tmp.replace(args.out)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
