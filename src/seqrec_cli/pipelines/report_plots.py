"""PNG figures for `seqrec report` (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from seqrec_cli.atomic import atomic_write
from seqrec_cli.core.breakdowns import bucket_labels
from seqrec_cli.pipelines.results import RunEval


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))
    _pyplot().close(fig)


def leaderboard(runs: list[RunEval], k: int, path: Path) -> None:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    names = [r.name for r in runs]
    for ax, metric in zip(axes, (f"NDCG@{k}", f"HR@{k}"), strict=True):
        values = [r.report.metrics[metric] for r in runs]
        ci = [r.report.ci.get(metric) for r in runs]
        err = np.array(
            [[v - c["low"], c["high"] - v] if c else [0, 0] for v, c in zip(values, ci, strict=True)]
        ).T
        ax.barh(names, values, xerr=err, color="#4c72b0", capsize=3)
        ax.invert_yaxis()
        ax.set_xlabel(f"{metric} (95% bootstrap CI)")
        ax.grid(axis="x", alpha=0.3)
    axes[1].set_yticklabels([])
    fig.suptitle("Leaderboard (full ranking)")
    _save(fig, path)


def metric_at_k(runs: list[RunEval], path: Path) -> None:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, name in zip(axes, ("NDCG", "HR"), strict=True):
        for run in runs:
            ks = run.report.protocol.ks
            ax.plot(ks, [run.report.metrics[f"{name}@{k}"] for k in ks], marker="o", label=run.name)
        ax.set_xscale("log")
        ax.set_xlabel("K")
        ax.set_ylabel(f"{name}@K")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("Metric@K curves")
    _save(fig, path)


def training_curves(runs: list[RunEval], monitor: str, path: Path) -> bool:
    trained = [r for r in runs if any("loss" in e for e in r.epochs)]
    if not trained:
        return False
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for run in trained:
        epochs = [e for e in run.epochs if "loss" in e]
        axes[0].plot([e["epoch"] for e in epochs], [e["loss"] for e in epochs], label=run.name)
        valid = [e for e in run.epochs if monitor in e.get("valid", {})]
        axes[1].plot([e["epoch"] for e in valid], [e["valid"][monitor] for e in valid], label=run.name)
    axes[0].set_ylabel("training loss")
    axes[1].set_ylabel(f"validation {monitor}")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("Training curves")
    _save(fig, path)
    return True


def breakdown(runs: list[RunEval], kind: str, metric: str, title: str, path: Path) -> None:
    plt = _pyplot()
    present = {b["bucket"] for run in runs for b in run.report.breakdowns[kind].buckets}
    labels = [
        lab for lab in bucket_labels(tuple(runs[0].report.breakdowns[kind].edges)) if lab in present
    ]
    fig, ax = plt.subplots(figsize=(10, 3.6))
    width = 0.8 / len(runs)
    x = np.arange(len(labels))
    for i, run in enumerate(runs):
        by = {b["bucket"]: b for b in run.report.breakdowns[kind].buckets}
        ax.bar(
            x + i * width - 0.4 + width / 2,
            [by[lab][metric] if lab in by else 0.0 for lab in labels],
            width,
            label=run.name,
        )
    counts = {b["bucket"]: b["cases"] for b in runs[0].report.breakdowns[kind].buckets}
    ax.set_xticks(x, [f"{lab}\n(n={counts.get(lab, 0)})" for lab in labels], fontsize=8)
    ax.set_ylabel(metric)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)
