from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from seqrec_cli.cli.common import console, user_errors
from seqrec_cli.cli.evaluate import Split, SplitOpt


def report_command(
    runs: Annotated[list[str], typer.Argument(help="run folders (runs/<name>) or run names")],
    out: Annotated[Path, typer.Option("--out", help="folder for README.md, PNGs and report.json")],
    split: SplitOpt = Split.test,
    title: Annotated[str | None, typer.Option(help="report title")] = None,
    resamples: Annotated[int, typer.Option(help="bootstrap resamples for paired comparisons")] = 1000,
    seed: Annotated[int, typer.Option(help="bootstrap seed")] = 0,
) -> None:
    """Markdown report with PNG plots: leaderboard with CIs, paired significance tests against the best run,
    metric@K curves, training curves, breakdowns by history length and target popularity."""
    with user_errors():
        from seqrec_cli.pipelines.report import build_report, command_line

        path = build_report(
            runs, out, split.value, resamples, seed, title, command_line(runs, out, split.value)
        )
        console.print(f"written {path} (+ PNGs)")
