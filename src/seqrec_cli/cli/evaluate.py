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


class Sampled(str, Enum):
    uniform = "uniform"
    popularity = "popularity"


SplitOpt = Annotated[Split, typer.Option("--split", help="which held-out item to rank")]
ModelOpt = Annotated[str | None, typer.Option(
    "--model", help="evaluate this run/checkpoint/export instead of the spec's run (zero-shot when it was "
    "trained on another dataset with text items)")]
SampledOpt = Annotated[
    Sampled | None,
    typer.Option(
        "--sampled",
        help="ALSO report sampled metrics (target vs eval.sampled_negatives sampled items), "
        "labelled sampled_*",
    ),
]


def metrics_table(metrics: dict[str, float], title: str, ci: dict | None = None, prefix: str = "") -> Table:
    ks = sorted({int(key.split("@")[1]) for key in metrics})
    names = [n for n in ("HR", "NDCG", "MRR", "Recall", "Precision", "MAP", "Coverage", "Novelty")
             if f"{prefix}{n}@{ks[0]}" in metrics][: 3 if prefix else None]
    table = Table(title=title)
    table.add_column("K", justify="right")
    for name in names:
        table.add_column(prefix + name, justify="right")
    for k in ks:
        cells = []
        for n in names:
            key = f"{prefix}{n}@{k}"
            cell = f"{metrics[key]:.4f}"
            if ci and key in ci:
                cell += f" ±{(ci[key]['high'] - ci[key]['low']) / 2:.4f}"
            cells.append(cell)
        table.add_row(str(k), *cells)
    return table


def evaluate_command(spec_path: SpecArg, split: SplitOpt = Split.test, set_: SetOpt = None,
                     dry_run: DryRunOpt = False, sampled: SampledOpt = None, model: ModelOpt = None) -> None:
    """Full-ranking metrics with bootstrap CIs of the best checkpoint (or fitted baseline, or --model);
    writes eval/<split>.json and eval/<split>_cases.csv (one row per user and target) in the run folder."""
    with user_errors():
        spec = load(spec_path, set_, dry_run)
        from seqrec_cli.pipelines.evaluate import evaluate

        text = TextDisplay()
        try:
            with console.status(f"ranking the whole catalogue for every user ({split.value})..."):
                result = evaluate(spec, split.value, sampled=sampled.value if sampled else None,
                                  model_source=model, events=text)
        finally:
            text.stop()
        rep = result.report
        title = (
            f"{spec.name} · {split.value} · {rep.users:,} users · {rep.num_items:,} items · "
            f"split {rep.protocol.split['kind']} · filter_seen={rep.filter_seen} · ties pessimistic"
        )
        keep = {k: v for k, v in rep.metrics.items() if k.split("@")[0] in ("HR", "NDCG", "MRR")}
        console.print(metrics_table(keep, title, rep.ci))
        if rep.targets > rep.cases:
            multi = {
                k: v for k, v in rep.metrics.items() if k.split("@")[0] in ("Recall", "Precision", "MAP")
            }
            console.print(metrics_table(multi, "multi-item targets", rep.ci))
        console.print(
            metrics_table(
                rep.list_metrics, "recommended lists (coverage of the catalogue, novelty in bits)"
            )
        )
        if rep.sampled is not None:
            s = rep.sampled
            console.print(
                metrics_table(
                    s.metrics,
                    f"SAMPLED: target vs {s.negatives} {s.strategy} negatives "
                    "(not comparable with full ranking)",
                    prefix="sampled_",
                )
            )
        ci_note = (
            f"; ± = half-width of the 95% CI from {rep.protocol.bootstrap.resamples} bootstrap "
            "resamples of users"
            if rep.ci
            else ""
        )
        cold = rep.cold_start
        if cold:
            if cold["rankable"] and cold["cold_metrics"]:
                console.print(
                    metrics_table(
                        cold["cold_metrics"],
                        f"cold targets · {cold['cold_targets']:,} users · "
                        f"{cold['cold_items']:,} items never seen in training",
                    )
                )
                chance = ", ".join(f"{k} {v:.4f}" for k, v in cold["cold_chance"].items())
                console.print(f"chance on cold targets (random scores): {chance}")
            else:
                console.print(
                    f"cold targets: {cold['cold_targets']:,} users; not rankable by an id item table "
                    f"(reported as 0)"
                )
        ckpt = rep.checkpoint
        origin = f"checkpoint epoch {ckpt['epoch']}" if "epoch" in ckpt else \
            f"model {ckpt['source']} ({'zero-shot' if ckpt['zero_shot'] else 'same dataset'})"
        console.print(f"{origin}{ci_note}; {rep.cases_per_second:,.0f} users/s; written {result.path}")
