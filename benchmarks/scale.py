"""How costs grow with log size and catalogue size (issue: production-size logs). Writes JSON + PNG.

  prepare:  synthetic logs of 1M / 10M (/ 100M) interactions (`seqrec synth`, catalogues 20K / 100K / 1M
            items) prepared by each engine in a fresh `seqrec prepare` process; wall time and peak RSS of
            the whole process tree (Spark's JVM included), sampled every 0.2 s; fingerprints compared.
  train:    SASRec (D=64, L=50, batch 64) train steps at 10K / 100K / 1M items for chunked full CE and
            sampled softmax + logQ (256 popularity negatives): positions/s and peak RSS (fresh process).
  eval:     full-ranking evaluation (core.evaluation.rank_cases, blocks of eval.chunk_items) users/s
            against catalogue size, 512 users with 50-item histories, random weights.
  quality:  SASRec (sampled softmax + logQ) trained for --quality-steps steps on the prepared 10M log
            (memory-mapped) vs most-popular, both ranked over the whole catalogue for the same
            --quality-users random test users (optional, --quality).

  python benchmarks/scale.py                                   # 1M and 10M, local + duckdb + spark (1M)
  python benchmarks/scale.py --sizes 1m --engines duckdb --skip-train --skip-eval --out /tmp/s.json

Generated logs and prepared folders live under --work (.scale/, git-ignored); --clean deletes them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "experiments" / "scale" / "synth.yaml"
SIZES = {"1m": (1_000_000, 20_000), "10m": (10_000_000, 100_000), "100m": (100_000_000, 1_000_000)}
GIB = 1024**3


def tree_rss(proc) -> int:
    import psutil

    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def run_measured(cmd: list[str], env: dict, log: Path, timeout: float) -> dict:
    """Wall seconds and the peak summed RSS of the process tree, sampled every 0.2 s."""
    import psutil

    start = time.perf_counter()
    with open(log, "w") as out:
        popen = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        proc, peak = psutil.Process(popen.pid), 0
        while popen.poll() is None:
            peak = max(peak, tree_rss(proc))
            if time.perf_counter() - start > timeout:
                popen.kill()
                break
            time.sleep(0.2)
    return {"seconds": round(time.perf_counter() - start, 1), "peak_rss_gib": round(peak / GIB, 3),
            "returncode": popen.returncode}


def env_for(threads: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), OMP_NUM_THREADS=str(threads),
               POLARS_MAX_THREADS=str(threads))
    return env


def ensure_log(size: str, work: Path, threads: int) -> dict:
    rows, items = SIZES[size]
    out = work / f"synth-{size}"
    if not (out / "synth.json").is_file():
        shutil.rmtree(out, ignore_errors=True)
        cmd = [sys.executable, "-m", "seqrec_cli", "synth", "--out", str(out), "--interactions", str(rows),
               "--items", str(items), "--seed", "0"]
        got = run_measured(cmd, env_for(threads), work / f"synth-{size}.log", 3600)
        if got["returncode"] != 0:
            raise SystemExit(f"synth {size} failed: see {work / f'synth-{size}.log'}")
        (work / f"synth-{size}.time.json").write_text(json.dumps(got))
    info = json.loads((out / "synth.json").read_text())
    timing = work / f"synth-{size}.time.json"
    return {**info, **({"generate": json.loads(timing.read_text())} if timing.is_file() else {})}


def prepare_case(size: str, engine: str, work: Path, threads: int, memory_gb: float, keep: bool) -> dict:
    folder = work / "prepared" / f"{size}-{engine}"
    shutil.rmtree(folder, ignore_errors=True)
    cmd = [sys.executable, "-m", "seqrec_cli", "prepare", str(SPEC),
           "--set", f"data.path={work / f'synth-{size}' / 'interactions'}", "--set", f"data.engine={engine}",
           "--set", f"data.prepared_dir={folder}", "--set", f"runtime.threads={threads}",
           "--set", f"data.engine_memory_gb={memory_gb}"]
    got = run_measured(cmd, env_for(threads), work / f"prepare-{size}-{engine}.log", 3 * 3600)
    if got["returncode"] == 0:
        manifest = json.loads((folder / "manifest.json").read_text())
        got["fingerprint"] = manifest["fingerprint"]
        got["rows"] = manifest["source"]["rows"]
    else:
        got["error_tail"] = (work / f"prepare-{size}-{engine}.log").read_text()[-800:]
    if not keep:
        shutil.rmtree(folder, ignore_errors=True)
    return got


def child(kind: str, items: int, loss: str, threads: int) -> None:
    """One training or evaluation measurement in this (fresh) process; prints one JSON line."""
    import resource

    import numpy as np
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    from seqrec_cli.core.model import SeqRecModel
    from seqrec_cli.spec.models import ModelSpec

    model = SeqRecModel(ModelSpec(max_len=50, hidden=64, layers=2, heads=1, dropout=0.0), items)
    rng = np.random.default_rng(0)
    zipf = 1.0 / np.arange(1, items + 1)
    probs = zipf / zipf.sum()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if kind == "train":
        from seqrec_cli.core.losses import make_loss
        from seqrec_cli.spec.models import TrainSpec

        popularity = torch.zeros(items + 1)
        popularity[1:] = torch.from_numpy(probs * 1e6).float()
        extra = {"num_negatives": 256, "negatives": "popularity"} if loss == "sampled_softmax" else {}
        loss_fn = make_loss(TrainSpec(loss=loss, **extra), popularity)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        batch, length, steps = 64, 50, (6 if items <= 100_000 else 3)
        if (
            loss == "full_ce" and items > 100_000
        ):  # a 1M-item full-CE step over 3,200 positions is ~15 min here
            batch, steps = 8, 1
        seconds = 0.0
        for step in range(steps + 1):
            x = torch.from_numpy(rng.choice(items, size=(batch, length + 1), p=probs) + 1)  # [B, L + 1]
            start = time.perf_counter()
            h = model.encode(x[:, :-1])  # [B, L, D]
            value = loss_fn(h, x[:, 1:], model.item_weights())
            opt.zero_grad(set_to_none=True)
            value.backward()
            opt.step()
            if step:  # step 0 is warm-up
                seconds += time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        result = {"positions_per_s": round(batch * length * steps / seconds, 1), "steps": steps,
                  "batch": batch, "length": length}
    else:
        from seqrec_cli.core.evaluation import ModelScorer, RankOptions, rank_cases
        from seqrec_cli.core.runtime import resolve_runtime
        from seqrec_cli.data.process import Sequences
        from seqrec_cli.data.splits import leave_one_out

        users, length = 512, 51
        seq = rng.integers(1, items + 1, size=users * length).astype(np.int32)
        seqs = Sequences(seq, np.arange(users + 1, dtype=np.int64) * length, None,
                         [str(u) for u in range(users)], [""] + [str(i) for i in range(1, items + 1)])
        cases = leave_one_out(seqs).cases["test"]
        runtime = resolve_runtime("cpu", "fp32")
        model.eval()
        start = time.perf_counter()
        with torch.no_grad():
            rank_cases(ModelScorer(model, runtime), seqs, cases,
                       RankOptions(50, 256, True, top_k=10, chunk_items=1 << 18), runtime.device)
        seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        result = {"users_per_s": round(users / seconds, 1), "users": users, "chunk_items": 1 << 18}
    result.update({"items": items, "peak_rss_gib": round(peak / GIB, 3),
                   "step_rss_gib": round((peak - before) / GIB, 3), "threads": threads})
    print("RESULT " + json.dumps(result), flush=True)


def measure_child(kind: str, items: int, loss: str, threads: int) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--child-items", str(items), "--child-loss", loss,
           "--threads", str(threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env_for(threads), timeout=3600)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return {"items": items, "error": proc.stderr[-800:]}


def quality(work: Path, threads: int, steps: int, eval_users: int, max_len: int = 10,
            lr: float = 0.01) -> dict:
    """SASRec trained for `steps` steps on the prepared (memory-mapped) 10M log vs most-popular, both
    ranked over the whole catalogue on the same random sample of test users (leave-one-out)."""
    import numpy as np
    import torch

    from seqrec_cli.core.baselines import Popularity, training_popularity
    from seqrec_cli.core.evaluation import ModelScorer, RankOptions, rank_cases
    from seqrec_cli.core.losses import make_loss
    from seqrec_cli.core.metrics import metrics_at_k
    from seqrec_cli.core.model import SeqRecModel
    from seqrec_cli.core.runtime import resolve_runtime
    from seqrec_cli.data.batching import TrainBatcher
    from seqrec_cli.data.splits import EvalCases, leave_one_out
    from seqrec_cli.data.store import load_prepared
    from seqrec_cli.spec.models import ModelSpec, TrainSpec

    folder = work / "prepared" / "10m-duckdb"
    if not (folder / "manifest.json").is_file():
        return {"error": "no prepared 10M dataset (run the 10m duckdb prepare case first)"}
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    seqs, manifest = load_prepared(folder)
    plan = leave_one_out(seqs)
    full = plan.cases["test"]
    pick = np.sort(np.random.default_rng(0).choice(len(full), min(eval_users, len(full)), replace=False))
    test = EvalCases(full.users[pick], full.input_end[pick], full.target_start[pick], full.target_end[pick])
    runtime = resolve_runtime("cpu", "fp32")
    ks = [10]  # max_len: a short window keeps a step cheap on a shared CPU (the walk is first-order)
    out = {"dataset": manifest["fingerprint"], "eval_users": len(test), "filter_seen": False,
           "protocol": "leave-one-out test targets, full ranking over all items, pessimistic ties"}
    start = time.perf_counter()
    pop = Popularity(Popularity.fit(seqs, plan.train_len, 0))
    options = RankOptions(max_len, 256, False, chunk_items=1 << 18)
    ranked = rank_cases(pop, seqs, test, options, runtime.device)
    out["most_popular"] = {**metrics_at_k(ranked.ranks, ks), "seconds": round(time.perf_counter() - start, 1)}
    print("most popular", out["most_popular"], flush=True)

    spec_m = ModelSpec(max_len=max_len, hidden=64, layers=2, heads=1, dropout=0.2)
    spec_t = TrainSpec(loss="sampled_softmax", num_negatives=256, lr=lr)
    model = SeqRecModel(spec_m, seqs.num_items)
    batcher = TrainBatcher(seqs, max_len, 256, True, train_lengths=plan.train_len)
    loss_fn = make_loss(spec_t, training_popularity(seqs))
    opt = torch.optim.Adam(model.parameters(), lr=spec_t.lr)
    batches, epoch = [], 0
    while len(batches) < steps:  # whole epochs' plans until `steps` batches (on 10M: part of one epoch)
        batches += batcher.plan(np.random.default_rng([0, epoch]))
        epoch += 1
    batches = batches[:steps]
    start, positions = time.perf_counter(), 0
    model.train()
    for rows in batches:
        batch = batcher.make_batch(rows)
        loss = loss_fn(model.encode(batch.inputs), batch.labels, model.item_weights())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        positions += int((batch.labels >= 0).sum())
    train_s = time.perf_counter() - start
    model.eval()
    start = time.perf_counter()
    with torch.no_grad():
        ranked = rank_cases(ModelScorer(model, runtime), seqs, test, options, runtime.device)
    out["sasrec"] = {**metrics_at_k(ranked.ranks, ks), "model": spec_m.model_dump(mode="json"),
                     "loss": "sampled_softmax, 256 uniform negatives, logQ", "steps": len(batches),
                     "batch_size": 256, "positions_trained": positions,
                     "epochs": round(positions / batcher.num_positions, 4),
                     "train_seconds": round(train_s, 1),
                     "train_positions_per_s": round(positions / train_s, 1),
                     "eval_seconds": round(time.perf_counter() - start, 1)}
    print("sasrec", out["sasrec"], flush=True)
    return out


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(20, 4.2))
    for engine, cases in report["prepare"].items():
        done = [(SIZES[s][0], c) for s, c in cases.items() if c.get("returncode") == 0]
        if done:
            axes[0].plot([x for x, _ in done], [c["seconds"] for _, c in done], "o-", label=engine)
            axes[1].plot([x for x, _ in done], [c["peak_rss_gib"] for _, c in done], "o-", label=engine)
    axes[0].set(
        title="prepare: wall time", xlabel="interactions", ylabel="seconds", xscale="log", yscale="log"
    )
    axes[1].set(title="prepare: peak RSS (process tree)", xlabel="interactions", ylabel="GiB", xscale="log")
    twin = axes[2].twinx() if report.get("train") else None
    for loss, cases in report.get("train", {}).items():
        ok = [c for c in cases if "error" not in c]
        axes[2].plot(
            [c["items"] for c in ok], [c["positions_per_s"] for c in ok], "o-", label=f"{loss} pos/s"
        )
        twin.plot([c["items"] for c in ok], [c["peak_rss_gib"] for c in ok], "x--", label=f"{loss} GiB")
        twin.set_ylabel("peak RSS GiB (dashed)")
    axes[2].set(
        title="train step (D=64, 64x50 positions)", xlabel="items", ylabel="positions/s", xscale="log"
    )
    ok = [c for c in report.get("eval", []) if "error" not in c]
    axes[3].plot([c["items"] for c in ok], [c["users_per_s"] for c in ok], "o-")
    axes[3].set(title="full-ranking eval", xlabel="items", ylabel="users/s", xscale="log", yscale="log")
    for ax in axes:
        if any(len(line.get_xdata()) for line in ax.lines):
            if ax is not axes[3]:
                ax.legend(fontsize=8)
        else:  # a section this invocation skipped: log axes have nothing to scale to
            ax.set(xscale="linear", yscale="linear")
            ax.text(0.5, 0.5, "not measured in this run", ha="center", transform=ax.transAxes)
    fig.suptitle(f"seqrec scaling, {report['machine']['description']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1m,10m", help="comma list of 1m,10m,100m")
    parser.add_argument("--engines", default="local,duckdb,spark")
    parser.add_argument(
        "--spark-sizes", default="1m", help="sizes Spark local mode is run on (slow start-up)"
    )
    parser.add_argument("--local-sizes", default="1m,10m", help="sizes the in-memory local engine is run on")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--memory-gb", type=float, default=4.0)
    parser.add_argument("--train-items", default="10000,100000,1000000")
    parser.add_argument("--losses", default="full_ce,sampled_softmax")
    parser.add_argument("--eval-items", default="10000,100000,1000000")
    parser.add_argument("--skip-prepare", action="store_true")
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--skip-eval", action="store_true")
    parser.add_argument("--quality", action="store_true", help="train on the 10M log vs most-popular")
    parser.add_argument("--quality-steps", type=int, default=60)
    parser.add_argument("--quality-max-len", type=int, default=10)
    parser.add_argument("--quality-users", type=int, default=2000)
    parser.add_argument("--work", default=str(REPO / ".scale"))
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "scale.json"))
    parser.add_argument("--merge", action="store_true", help="keep sections of an existing --out not rerun")
    parser.add_argument("--clean", action="store_true", help="delete generated logs and prepared data after")
    parser.add_argument("--child", choices=["train", "eval"])
    parser.add_argument("--child-items", type=int)
    parser.add_argument("--child-loss", default="full_ce")
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.child_items, args.child_loss, args.threads)

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    out = Path(args.out)
    report = json.loads(out.read_text()) if args.merge and out.is_file() else {}
    report["machine"] = {"description": f"{os.cpu_count()}-core shared CPU", "cpus": os.cpu_count(),
                         "platform": platform.platform(), "python": platform.python_version(),
                         "threads": args.threads, "engine_memory_gb": args.memory_gb,
                         "loadavg_at_start": [round(x, 2) for x in os.getloadavg()]}
    report["command"] = "python benchmarks/scale.py " + " ".join(sys.argv[1:])
    if not args.skip_prepare:
        prep = report.setdefault("prepare", {})
        report.setdefault("logs", {})
        for size in args.sizes.split(","):
            report["logs"][size] = ensure_log(size, work, args.threads)
            print(f"log {size}: {report['logs'][size]['rows']:,} rows", flush=True)
            for engine in args.engines.split(","):
                if (engine == "spark" and size not in args.spark_sizes.split(",")) or \
                        (engine == "local" and size not in args.local_sizes.split(",")):
                    continue
                keep = size == "10m" and engine == "duckdb" and args.quality
                prep.setdefault(engine, {})[size] = got = prepare_case(size, engine, work, args.threads,
                                                                       args.memory_gb, keep)
                print(
                    f"prepare {size} {engine}: {got.get('seconds')} s, {got.get('peak_rss_gib')} GiB",
                    flush=True,
                )
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(json.dumps(report, indent=2) + "\n")
    if report.get("prepare"):
        prep, fps = report["prepare"], {}
        for engine, cases in prep.items():
            for size, case in cases.items():
                if "fingerprint" in case:
                    fps.setdefault(size, {})[engine] = case["fingerprint"]["hash"]
        report["fingerprints_agree"] = {size: len(set(h.values())) == 1 for size, h in fps.items()}
        if "10m" in prep.get("duckdb", {}) and "100m" in prep.get("duckdb", {}):
            report["duckdb_100m_over_10m_time"] = round(prep["duckdb"]["100m"]["seconds"]
                                                        / prep["duckdb"]["10m"]["seconds"], 2)
    if not args.skip_train:
        report["train"] = {loss: [measure_child("train", int(n), loss, args.threads)
                                  for n in args.train_items.split(",")] for loss in args.losses.split(",")}
        print("train", json.dumps(report["train"]), flush=True)
    if not args.skip_eval:
        report["eval"] = [measure_child("eval", int(n), "", args.threads) for n in args.eval_items.split(",")]
        print("eval", json.dumps(report["eval"]), flush=True)
    if args.quality:
        report["quality"] = quality(work, args.threads, args.quality_steps, args.quality_users,
                                    args.quality_max_len)
    report["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    plot(report, out.with_suffix(".png"))
    if args.clean:
        for size in args.sizes.split(","):
            shutil.rmtree(work / f"synth-{size}", ignore_errors=True)
        shutil.rmtree(work / "prepared", ignore_errors=True)
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
