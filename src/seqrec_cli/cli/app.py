"""The `seqrec` command."""

from __future__ import annotations

import typer

from seqrec_cli.cli import (
    backtest,
    compare,
    evaluate,
    export,
    finetune,
    prepare,
    recommend,
    report,
    serve,
    sweep,
    synth,
    trust,
    update,
)

app = typer.Typer(
    name="seqrec",
    help="Sequential recommendation experiments from one validated YAML spec.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("prepare")(prepare.prepare_command)
app.command("finetune")(finetune.finetune_command)
app.command("evaluate")(evaluate.evaluate_command)
app.command("export")(export.export_command)
app.command("recommend")(recommend.recommend_command)
app.command("compare")(compare.compare_command)
app.command("report")(report.report_command)
app.command("serve")(serve.serve_command)
app.command("synth")(synth.synth_command)
app.command("sweep")(sweep.sweep_command)
app.command("trust")(trust.trust_command)
app.command("update")(update.update_command)
app.command("backtest")(backtest.backtest_command)


def main() -> None:
    app()
