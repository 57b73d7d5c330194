"""PNG figures of a sweep (matplotlib): optimisation history, validation curves, parameter
importances, parallel coordinates. Inputs are plain trial records (sweep_report.TrialRow)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from seqrec_cli.pipelines.report_plots import _pyplot, _save

COLORS = {"complete": "#4c72b0", "pruned": "#dd8452", "fail": "#c44e52"}


def history(rows: list, monitor: str, path: Path, reference: tuple[str, float] | None = None) -> None:
    """Each trial's validation value by trial number (pruned: its last reported value), the best so far,
    and a reference line (the shipped default's best validation value) when given."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(8, 3.8))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if reference is not None:
        ax.axhline(
            reference[1], color="#8c8c8c", linestyle="--", label=f"{reference[0]} ({reference[1]:.4f})"
        )
    for state, marker in (("complete", "o"), ("pruned", "x")):
        pts = [(r.number, r.value) for r in rows if r.state == state and r.value is not None]
        if pts:
            ax.scatter(*zip(*pts, strict=True), marker=marker, color=COLORS[state], label=state, zorder=3)
    best, xs, ys = -math.inf, [], []
    for r in sorted(rows, key=lambda r: r.number):
        if r.state == "complete" and r.value is not None:
            best = max(best, r.value)
        if best > -math.inf:
            xs.append(r.number)
            ys.append(best)
    if xs:
        ax.step(xs, ys, where="post", color="#55a868", label="best so far (complete trials)")
    ax.set_xlabel("trial")
    ax.set_ylabel(f"validation {monitor}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Optimisation history")
    _save(fig, path)


def curves(rows: list, monitor: str, path: Path) -> None:
    """Per-epoch validation of every trial: where the pruner cut the weak ones."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(8, 3.8))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for r in rows:
        if r.intermediate:
            epochs = sorted(r.intermediate)
            ax.plot(epochs, [r.intermediate[e] for e in epochs], color=COLORS.get(r.state, "#8c8c8c"),
                    alpha=0.8, linewidth=1.2, linestyle="-" if r.state == "complete" else "--")
            ax.annotate(f"t{r.number}", (epochs[-1], r.intermediate[epochs[-1]]), fontsize=7)
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"validation {monitor}")
    ax.set_title("Validation per epoch (solid: complete, dashed: pruned or failed)")
    ax.grid(alpha=0.3)
    _save(fig, path)


def importances(values: dict[str, float], path: Path) -> None:
    plt = _pyplot()
    names = list(values)
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(names) + 1.2))
    ax.barh(names, [values[n] for n in names], color="#4c72b0")
    ax.invert_yaxis()
    ax.set_xlabel("importance (share of the objective's variance, fANOVA)")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title("Parameter importances")
    _save(fig, path)


def _axis(values: list, log: bool) -> tuple[np.ndarray, list[str], list[float]]:
    """Positions in [0, 1] for one parameter's values, with tick labels and tick positions."""
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        x = np.log10(np.asarray(values, dtype=float)) if log else np.asarray(values, dtype=float)
        lo, hi = float(x.min()), float(x.max())
        pos = (x - lo) / (hi - lo) if hi > lo else np.full(len(x), 0.5)
        ticks = [lo, hi] if hi > lo else [lo]
        labels = [f"{10 ** t:.3g}" if log else f"{t:.3g}" for t in ticks]
        return pos, labels, [0.0, 1.0] if hi > lo else [0.5]
    cats = sorted({str(v) for v in values})
    index = {c: i for i, c in enumerate(cats)}
    span = max(len(cats) - 1, 1)
    return (np.array([index[str(v)] / span for v in values]), cats,
            [i / span for i in range(len(cats))])


def parallel_coordinates(
    rows: list, params: list[str], log_params: set[str], monitor: str, path: Path
) -> None:
    """One vertical axis per parameter plus the objective; one line per complete trial, coloured by value."""
    plt = _pyplot()
    done = [r for r in rows if r.state == "complete" and r.value is not None]
    axes_names = [*params, f"valid {monitor}"]
    fig, ax = plt.subplots(figsize=(max(7, 1.6 * len(axes_names)), 4.2))
    columns, ticks = [], []
    for name in params:
        pos, labels, at = _axis([r.params.get(name) for r in done], name in log_params)
        columns.append(pos)
        ticks.append((labels, at))
    pos, labels, at = _axis([r.value for r in done], False)
    columns.append(pos)
    ticks.append((labels, at))
    matrix = np.stack(columns, axis=1) if done else np.zeros((0, len(axes_names)))  # [trials, axes]
    values = np.array([r.value for r in done])
    cmap = plt.get_cmap("viridis")
    lo, hi = (values.min(), values.max()) if len(values) else (0.0, 1.0)
    for row, value in zip(matrix, values, strict=True):
        ax.plot(
            range(len(axes_names)), row, color=cmap((value - lo) / (hi - lo) if hi > lo else 0.5), alpha=0.85
        )
    for i, (labels, at) in enumerate(ticks):
        ax.axvline(i, color="#444444", linewidth=0.8)
        for label, y in zip(labels, at, strict=True):
            ax.text(i + 0.03, y, label, fontsize=7, va="center")
    ax.set_xticks(range(len(axes_names)), axes_names, rotation=20, ha="right", fontsize=8)
    ax.set_yticks([])
    ax.set_ylim(-0.05, 1.05)
    ax.set_title(f"Parallel coordinates ({len(done)} complete trials; colour: validation {monitor})")
    _save(fig, path)
