from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from seqrec_cli.cli.common import console, say, user_errors

ExportArg = Annotated[Path, typer.Argument(help="folder written by `seqrec export`", show_default=False)]
HistoryOpt = Annotated[str, typer.Option("--history", help="comma-separated raw item ids, oldest first")]
KOpt = Annotated[int, typer.Option("-k", min=1, help="how many items to recommend")]
KeepOpt = Annotated[bool, typer.Option("--include-history", help="allow items already in the history")]


def _label(row: dict) -> str:
    """A short human label from whatever side information the item table has."""
    fields = [v for k, v in row.items() if k != "item_id" and v]
    return " · ".join(fields[:3])


def recommend_command(
    export_dir: ExportArg, history: HistoryOpt, k: KOpt = 10, include_history: KeepOpt = False
) -> None:
    """Top-k raw item ids for one history, from an exported model (no spec needed)."""
    with user_errors():
        from seqrec_cli.artifacts import Recommender
        from seqrec_cli.artifacts.format import REEXPORT_FIX
        from seqrec_cli.data.store import load_item_rows
        from seqrec_cli.errors import UserError

        items = [h.strip() for h in history.split(",") if h.strip()]
        if not items:
            raise UserError(f"no item ids in {history!r}", where="--history",
                            fix='pass comma-separated raw item ids, oldest first, e.g. '
                            '--history "50,172,133"')
        rec = Recommender.load(export_dir)
        rows = load_item_rows(Path(export_dir), REEXPORT_FIX)
        table = {str(row.get("item_id")): row for row in rows if isinstance(row, dict)}
        unknown = rec.unknown_ids(items)
        if len(unknown) == len(items):
            raise UserError(f"none of the ids is in this model's catalogue: {', '.join(unknown[:20])}",
                            where="--history", fix="pass item ids that appear in the training data")
        if unknown:
            more = " ..." if len(unknown) > 20 else ""
            say(f"{len(unknown)} of {len(items)} history ids are not in this model's catalogue and are left "
                f"out: {', '.join(unknown[:20])}{more}", lead="note:", style="yellow", stderr=True)
        top = rec.recommend(items, k=k, exclude_history=not include_history)
        view = Table(title=f"history: {', '.join(_label(table.get(i, {'item_id': i})) or i for i in items)}")
        view.add_column("#", justify="right")
        view.add_column("item id")
        view.add_column("score", justify="right")
        view.add_column("item")
        for rank, (item, score) in enumerate(top, 1):
            view.add_row(str(rank), item, f"{score:.3f}", _label(table.get(item, {})))
        console.print(view)
