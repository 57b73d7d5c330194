from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from seqrec_cli.cli.common import DryRunOpt, SetOpt, SpecArg, console, load, user_errors


class SweepDisplay:
    """Renders sweep events: one line per trial start/end, one per validated epoch."""

    def __init__(self, monitor: str):
        self.monitor = monitor

    def __call__(self, event) -> None:
        from seqrec_cli.pipelines import sweep as sw

        if isinstance(event, sw.SweepStarted):
            console.print(f"study {event.study} ({event.storage}): {event.counted} of {event.target} "
                          f"trials counted (complete + pruned); {event.jobs} worker(s)", highlight=False)
            if event.reaped:
                console.print(
                    f"trial(s) {list(event.reaped)} were interrupted (owner process gone): marked FAIL, "
                    "not counted; their parameters run again as new trials"
                )
        elif isinstance(event, sw.TrialStarted):
            params = ", ".join(f"{k}={_short(v)}" for k, v in event.params.items())
            retry = f" (retry of trial {event.retry_of})" if event.retry_of is not None else ""
            console.print(f"trial {event.number}{retry}: {params} -> {event.run_dir}", highlight=False)
        elif isinstance(event, sw.TrialEpoch):
            console.print(
                f"  t{event.number} epoch {event.epoch:>3}  valid {event.monitor} {event.value:.4f}",
                highlight=False,
            )
        elif isinstance(event, sw.TrialFinished):
            if event.state == "complete":
                console.print(
                    f"trial {event.number} complete: best valid {self.monitor} {event.value:.4f} "
                    f"({event.epochs} epochs, {event.seconds / 60:.1f} min, stopped by {event.detail})",
                    highlight=False,
                )
            elif event.state == "pruned":
                console.print(f"trial {event.number} pruned: {event.detail}", highlight=False)
            else:
                label = f"trial {event.number}" if event.number >= 0 else "worker"
                console.print(f"{label} failed: {event.detail}", highlight=False, markup=False)


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def sweep_command(
    spec_path: SpecArg,
    space: Annotated[
        Path, typer.Option("--space", help="search space YAML (dotted spec keys -> distributions)")
    ],
    trials: Annotated[
        int, typer.Option("--trials", min=1, help="complete + pruned trials the study should hold")
    ] = 20,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", min=0.1, help="minutes: no trial starts after, running ones stop by then"),
    ] = None,
    jobs: Annotated[int, typer.Option("--jobs", min=1, help="parallel worker processes on this machine")] = 1,
    study: Annotated[
        str | None, typer.Option("--study", help="study name (default: <spec name>-sweep)")
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(
            "--storage", help="Optuna database URL (default: SQLite under <output_root>/sweeps/<study>/)"
        ),
    ] = None,
    evaluate_best: Annotated[
        bool, typer.Option("--evaluate-best", help="evaluate the best trial (by validation) on test, once")
    ] = False,
    set_: SetOpt = None,
    dry_run: DryRunOpt = False,
) -> None:
    """Hyperparameter search (Optuna TPE, median/Hyperband pruning on each epoch's validation metric).
    Every trial is a run folder runs/<study>-t<N>; rerunning the same command continues the study."""
    with user_errors():
        import re

        from seqrec_cli.errors import UserError
        from seqrec_cli.spec.space import load_space

        spec = load(spec_path, set_, False)
        search = load_space(space, spec.model_dump(mode="json"))
        name = study or f"{spec.name}-sweep"
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
            raise UserError(f"study name {name!r} cannot name run folders", where="--study",
                            fix="use letters, digits, '_', '.' and '-'")
        if jobs > 1 and spec.runtime.threads is None:  # J workers x all cores each would thrash
            spec.runtime.threads = max(1, (os.cpu_count() or 1) // jobs)
        if dry_run:
            console.print(f"# space {space} is valid: {len(search.params)} parameter(s), pruner "
                          f"{search.pruner.kind}; study {name}", highlight=False, markup=False)
            load(spec_path, set_, True)
        from seqrec_cli.pipelines.sweep import SweepConfig, sweep

        command = "seqrec " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        config = SweepConfig(
            spec=spec,
            space=search,
            trials=trials,
            study=name,
            storage=storage,
            timeout_minutes=timeout,
            jobs=jobs,
            spec_path=str(spec_path),
            space_path=str(space),
            command=command,
        )
        result = sweep(config, SweepDisplay(spec.train.monitor), evaluate_best)
        _print_result(result, spec.train.monitor)


def _print_result(result, monitor: str) -> None:
    counts = ", ".join(f"{v} {k}" for k, v in result.counts.items() if v)
    console.print(f"study folder {result.folder}: {counts or 'no trials'}", highlight=False)
    if result.best is None:
        console.print("no trial completed yet; rerun the same command to continue")
        return
    best = result.best
    table = Table(title=f"best trial {best['number']} (selected on validation {monitor})")
    table.add_column("parameter")
    table.add_column("value", justify="right")
    for key, value in best["params"].items():
        table.add_row(key, _short(value))
    table.add_row(f"valid {monitor}", f"{best['value']:.4f}")
    console.print(table)
    console.print(f"best spec: {result.best_spec_path}; run folder {best['run_dir']}", highlight=False)
    if result.test:
        metrics, ci = result.test["metrics"], result.test["ci"]
        parts = []
        for name in (monitor, monitor.replace("NDCG", "HR")):
            if name in metrics:
                bounds = f" [{ci[name]['low']:.4f}, {ci[name]['high']:.4f}]" if name in ci else ""
                parts.append(f"{name} {metrics[name]:.4f}{bounds}")
        console.print(
            f"test (best trial only): {'; '.join(parts)}; written {result.test['path']}", highlight=False
        )
        if len(result.tested_trials) > 1:
            console.print(f"note: this study has tested trials {result.tested_trials} over its life "
                          "(the best changed as trials were added); report the last one")
