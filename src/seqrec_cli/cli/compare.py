from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from seqrec_cli.cli.common import console, user_errors
from seqrec_cli.cli.evaluate import Split, SplitOpt

RunArg = Annotated[str, typer.Argument(help="run folder (runs/<name>) or run name", show_default=False)]


def compare_command(
    run_a: RunArg,
    run_b: RunArg,
    split: SplitOpt = Split.test,
    resamples: Annotated[int, typer.Option(help="bootstrap resamples over users")] = 1000,
    seed: Annotated[int, typer.Option(help="bootstrap seed")] = 0,
    out: Annotated[str | None, typer.Option(help="also write the comparison as JSON here")] = None,
) -> None:
    """Paired comparison of two evaluated runs, user by user: mean difference (A - B), its bootstrap 95% CI,
    paired t-test and Wilcoxon signed-rank p-values. Refuses runs evaluated on different data or protocols."""
    with user_errors():
        from pathlib import Path

        from seqrec_cli.atomic import atomic_write_json
        from seqrec_cli.pipelines.report import format_p
        from seqrec_cli.pipelines.results import compare, load_run_eval

        a, b = load_run_eval(run_a, split.value), load_run_eval(run_b, split.value)
        result = compare(a, b, resamples, seed)
        table = Table(
            title=f"{a.name} (A) vs {b.name} (B) · {split.value} · {result['cases']:,} users · paired"
        )
        for col in ("metric", "A", "B", "A - B", "95% CI", "t-test p", "Wilcoxon p", "A>B / A<B"):
            table.add_column(col, justify="right")
        for name, r in result["metrics"].items():
            if name.split("@")[0] not in ("HR", "NDCG", "MRR"):
                continue
            table.add_row(name, f"{r['a']:.4f}", f"{r['b']:.4f}", f"{r['diff']:+.4f}",
                          f"[{r['low']:+.4f}, {r['high']:+.4f}]", format_p(r["t_test"]["p"]),
                          format_p(r["wilcoxon"]["p"]), f"{r['a_better']}/{r['b_better']}")
        console.print(table)
        if out:
            atomic_write_json(Path(out), result)
            console.print(f"written {out}")
