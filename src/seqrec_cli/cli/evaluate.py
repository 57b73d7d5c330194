from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer
from rich.table import Table

from seqrec_cli.cli.common import DryRunOpt, SetOpt, SpecArg, console, load, user_errors


class Split(str, Enum):
    valid = "valid"
    test = "test"


class Sampled(str, Enum):
    uniform = "uniform"
    popularity = "popularity"


SplitOpt = Annotated[Split, typer.Option("--split", help="which held-out item to rank")]
SampledOpt = Annotated[Sampled | None, typer.Option(
    "--sampled", help="ALSO report sampled metrics (target vs eval.sampled_negatives sampled items), labelled sampled_*")]


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
                     dry_run: DryRunOpt = False, sampled: SampledOpt = None) -> None:
    """Full-ranking metrics with bootstrap CIs of the best checkpoint (or fitted baseline); writes
    eval/<split>.json and eval/<split>_cases.csv (one row per user and target) in the run folder."""
    with user_errors():
        spec = load(spec_path, set_, dry_run)
        from seqrec_cli.pipelines.evaluate import evaluate

        with console.status(f"ranking the whole catalogue for every user ({split.value})..."):
            result = evaluate(spec, split.value, sampled=sampled.value if sampled else None)
        rep = result.report
        title = (f"{spec.name} · {split.value} · {rep['users']:,} users · {rep['num_items']:,} items · "
                 f"split {rep['protocol']['split']['kind']} · filter_seen={rep['filter_seen']} · ties pessimistic")
        keep = {k: v for k, v in rep["metrics"].items() if k.split("@")[0] in ("HR", "NDCG", "MRR")}
        console.print(metrics_table(keep, title, rep.get("ci")))
        if rep["targets"] > rep["cases"]:
            multi = {k: v for k, v in rep["metrics"].items() if k.split("@")[0] in ("Recall", "Precision", "MAP")}
            console.print(metrics_table(multi, "multi-item targets", rep.get("ci")))
        console.print(metrics_table(rep["list_metrics"], "recommended lists (coverage of the catalogue, novelty in bits)"))
        if "sampled" in rep:
            s = rep["sampled"]
            console.print(metrics_table(s["metrics"], f"SAMPLED: target vs {s['negatives']} {s['strategy']} negatives "
                                        "(not comparable with full ranking)", prefix="sampled_"))
        ci_note = (f"; ± = half-width of the 95% CI from {rep['protocol']['bootstrap']['resamples']} bootstrap "
                   "resamples of users" if rep.get("ci") else "")
        console.print(f"checkpoint epoch {rep['checkpoint']['epoch']}{ci_note}; {rep['cases_per_second']:,.0f} "
                      f"users/s; written {result.path}")
