from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from seqrec_cli.cli.common import DryRunOpt, SetOpt, SpecArg, console, load, user_errors


def _progress(event) -> None:
    from seqrec_cli.events import BacktestEvaluated, BacktestStarted, BacktestTraining, TrainDone

    match event:
        case BacktestStarted():
            console.print(f"backtest of {len(event.periods)} periods over {event.interactions:,} events -> "
                          f"{event.folder}")
        case BacktestTraining():
            console.print(f"period {event.period}: training {event.strategy}")
        case TrainDone(run=run):
            console.print(
                f"  {run.get('name')}: {run.get('epochs_run')} epochs, {run.get('seconds_this_session')}s, "
                f"stop {event.stop_reason}"
            )
        case BacktestEvaluated():
            console.print(f"period {event.period} {event.strategy:<8} NDCG@10 {event.ndcg10:.4f} "
                          f"HR@10 {event.hr10:.4f}")


def backtest_command(
    spec_path: SpecArg,
    set_: SetOpt = None,
    dry_run: DryRunOpt = False,
    periods: Annotated[int, typer.Option(min=1, help="number of periods, ending at the log's end")] = 8,
    period: Annotated[str, typer.Option(help="period length: 7d, 2w, 12h, 3600s")] = "7d",
    strategies: Annotated[
        str, typer.Option(help="comma-separated: retrain,update,frozen")
    ] = "retrain,update,frozen",
    out: Annotated[
        Path | None, typer.Option(help="work folder (default <output_root>/backtests/<name>)")
    ] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="also write the report here")] = None,
    png: Annotated[Path | None, typer.Option(help="also write the NDCG@10 figure here")] = None,
) -> None:
    """Rolling evaluation over a timestamped log: per period, retrain from scratch, update the previous model,
    or keep the first one (frozen), each trained only on events before the period; then rank the period's
    events."""
    with user_errors():
        spec = load(spec_path, set_, dry_run)
        from seqrec_cli.pipelines.backtest import (
            BacktestOptions,
            backtest,
            copy_results,
            parse_period,
            parse_strategies,
        )

        options = BacktestOptions(periods, parse_period(period), parse_strategies(strategies), out)
        result = backtest(spec, options, events=_progress)
        copy_results(result, json_out, png)
        report = result.report
        table = Table(title=f"{spec.name}: NDCG@10 per period (mean over users) and training seconds")
        table.add_column("period", justify="right")
        table.add_column("cases", justify="right")
        for name in report["strategies"]:
            table.add_column(name, justify="right")
            table.add_column(f"{name} s", justify="right")
        for p in report["periods"]:
            cells = [str(p["period"]), str(p["cases"])]
            for name in report["strategies"]:
                entry = p["strategies"][name]
                cells += [f"{entry['metrics']['NDCG@10']:.4f}", f"{entry['train_seconds']:.0f}"]
            table.add_row(*cells)
        console.print(table)
        summary = report["summary"]
        for name, s in summary["strategies"].items():
            console.print(f"{name}: mean NDCG@10 after the first period {s['mean_NDCG@10_after_first']:.4f}, "
                          f"training {s['train_seconds_after_first']:.0f}s")
        if "update_vs_retrain" in summary:
            r = summary["update_vs_retrain"]
            console.print(
                f"update / retrain: NDCG@10 {r['ndcg_ratio']:.3f}, seconds {r['seconds_ratio']:.3f}"
            )
        console.print(f"written {result.folder / 'backtest.json'} and {result.png}")
