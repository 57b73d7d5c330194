from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer
from rich.table import Table

from seqrec_cli.cli.common import DryRunOpt, SetOpt, SpecArg, console, load, user_errors


class Split(str, Enum):
    valid = "valid"
    test = "test"


SplitOpt = Annotated[Split, typer.Option("--split", help="which held-out item to rank")]


def metrics_table(metrics: dict[str, float], title: str) -> Table:
    ks = sorted({int(key.split("@")[1]) for key in metrics})
    names = [n for n in ("HR", "NDCG", "MRR") if f"{n}@{ks[0]}" in metrics]
    table = Table(title=title)
    table.add_column("K", justify="right")
    for name in names:
        table.add_column(name, justify="right")
    for k in ks:
        table.add_row(str(k), *(f"{metrics[f'{n}@{k}']:.4f}" for n in names))
    return table


def evaluate_command(spec_path: SpecArg, split: SplitOpt = Split.test, set_: SetOpt = None,
                     dry_run: DryRunOpt = False) -> None:
    """Full-ranking HR/NDCG/MRR@K of the best checkpoint; writes eval/<split>.json in the run folder."""
    with user_errors():
        spec = load(spec_path, set_, dry_run)
        from seqrec_cli.pipelines.evaluate import evaluate

        with console.status(f"ranking the whole catalogue for every user ({split.value})..."):
            result = evaluate(spec, split.value)
        rep = result.report
        title = (f"{spec.name} · {split.value} · {rep['users']:,} users · {rep['num_items']:,} items · "
                 f"filter_seen={rep['filter_seen']} · ties pessimistic")
        console.print(metrics_table(rep["metrics"], title))
        console.print(f"checkpoint epoch {rep['checkpoint']['epoch']}; written {result.path}")
