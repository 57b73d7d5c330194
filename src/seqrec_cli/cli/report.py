from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from seqrec_cli.cli.common import console, user_errors
from seqrec_cli.cli.evaluate import Split, SplitOpt


def report_command(
    runs: Annotated[list[str] | None, typer.Argument(help="run folders (runs/<name>) or run names",
                                                     show_default=False)] = None,
    out: Annotated[Path, typer.Option("--out", help="folder for README.md, PNGs and report.json")] = ...,
    split: SplitOpt = Split.test,
    title: Annotated[str | None, typer.Option(help="report title")] = None,
    resamples: Annotated[int, typer.Option(help="bootstrap resamples for paired comparisons")] = 1000,
    seed: Annotated[int, typer.Option(help="bootstrap seed")] = 0,
    sweep: Annotated[Path | None, typer.Option(
        "--sweep", help="report a sweep: its study folder <output_root>/sweeps/<study>")] = None,
    baseline: Annotated[str | None, typer.Option(
        "--baseline", help="with --sweep: the run the best trial is compared with (default: the base spec's "
        "run beside the trials)")] = None,
) -> None:
    """Markdown report with PNG plots: leaderboard with CIs, paired significance tests against the best run,
    metric@K curves, training curves, breakdowns by history length and target popularity. With --sweep: the
    study's trials, optimisation history, parameter importances, parallel coordinates, and the best trial
    against the shipped default (paired)."""
    with user_errors():
        from seqrec_cli.errors import UserError

        if sweep is not None:
            if runs:
                raise UserError("give run folders or --sweep, not both", where="seqrec report",
                                fix="report the sweep alone; it compares its best trial with --baseline")
            from seqrec_cli.pipelines.sweep_report import build_sweep_report, sweep_command_line

            path = build_sweep_report(sweep, out, baseline, split.value, resamples, seed,
                                      sweep_command_line(sweep, out, baseline, split.value))
            console.print(f"written {path} (+ PNGs)")
            return
        if not runs:
            raise UserError(
                "nothing to report", where="seqrec report", fix="give run folders, or --sweep STUDY_FOLDER"
            )
        from seqrec_cli.pipelines.report import build_report, command_line

        path = build_report(
            runs, out, split.value, resamples, seed, title, command_line(runs, out, split.value)
        )
        console.print(f"written {path} (+ PNGs)")
