from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from seqrec_cli.cli.common import console, user_errors

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

        rec = Recommender.load(export_dir)
        items = [h.strip() for h in history.split(",") if h.strip()]
        with open(Path(export_dir) / "items.jsonl", encoding="utf-8") as handle:
            table = {row["item_id"]: row for row in map(json.loads, handle)}
        try:
            top = rec.recommend(items, k=k, exclude_history=not include_history)
        except ValueError as exc:
            from seqrec_cli.errors import UserError

            raise UserError(
                str(exc), where="--history", fix="pass item ids that appear in the training data"
            ) from exc
        view = Table(title=f"history: {', '.join(_label(table.get(i, {'item_id': i})) or i for i in items)}")
        view.add_column("#", justify="right")
        view.add_column("item id")
        view.add_column("score", justify="right")
        view.add_column("item")
        for rank, (item, score) in enumerate(top, 1):
            view.add_row(str(rank), item, f"{score:.3f}", _label(table.get(item, {})))
        console.print(view)
