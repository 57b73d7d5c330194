from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer
from rich.table import Table

from seqrec_cli.cli.common import DryRunOpt, SetOpt, SpecArg, console, load, user_errors
from seqrec_cli.cli.text_display import TextDisplay


class Split(str, Enum):
    valid = "valid"
    test = "test"


SplitOpt = Annotated[Split, typer.Option("--split", help="which held-out item to rank")]
ModelOpt = Annotated[str | None, typer.Option(
    "--model", help="evaluate this run/checkpoint/export instead of the spec's run (zero-shot when it was "
    "trained on another dataset with text items)")]


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
                     dry_run: DryRunOpt = False, model: ModelOpt = None) -> None:
    """Full-ranking HR/NDCG/MRR@K of the best checkpoint; writes eval/<split>.json in the run folder."""
    with user_errors():
        spec = load(spec_path, set_, dry_run)
        from seqrec_cli.pipelines.evaluate import evaluate

        text = TextDisplay()
        try:
            result = evaluate(spec, split.value, model_source=model, events=text)
        finally:
            text.stop()
        rep = result.report
        title = (f"{spec.name} · {split.value} · {rep['users']:,} users · {rep['num_items']:,} items · "
                 f"filter_seen={rep['filter_seen']} · ties pessimistic")
        console.print(metrics_table(rep["metrics"], title))
        cold = rep.get("cold_start")
        if cold:
            if cold["rankable"] and cold["cold_metrics"]:
                console.print(metrics_table(cold["cold_metrics"], f"cold targets · {cold['cold_targets']:,} users · "
                                            f"{cold['cold_items']:,} items never seen in training"))
                chance = ", ".join(f"{k} {v:.4f}" for k, v in cold["cold_chance"].items())
                console.print(f"chance on cold targets (random scores): {chance}")
            else:
                console.print(f"cold targets: {cold['cold_targets']:,} users; not rankable by an id item table "
                              f"(reported as 0)")
        ckpt = rep["checkpoint"]
        origin = f"checkpoint epoch {ckpt['epoch']}" if "epoch" in ckpt else \
            f"model {ckpt['source']} ({'zero-shot' if ckpt['zero_shot'] else 'same dataset'})"
        console.print(f"{origin}; written {result.path}")
