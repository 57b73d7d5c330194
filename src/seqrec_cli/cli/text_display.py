"""Renders the text-encoding events (text.*) of any command: a progress bar while encoding, one line after."""

from __future__ import annotations

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from seqrec_cli.cli.common import console


class TextDisplay:
    def __init__(self):
        self.progress: Progress | None = None
        self.task = None

    def __call__(self, kind: str, info: dict) -> bool:
        """Render `kind` if it is a text event; returns whether it was one."""
        if kind == "text.encoding":
            console.print(f"encoding {info['with_text']:,} item texts with {info['encoder']}")
            self.progress = Progress(TextColumn("[bold]item text"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                                     console=console, transient=True)
            self.progress.start()
            self.task = self.progress.add_task("encode", total=info["with_text"])
        elif kind == "text.batch" and self.progress is not None:
            self.progress.update(self.task, completed=info["done"])
        elif kind == "text.encoded":
            self.stop()
            console.print(f"item text vectors: {info['seconds']}s, cached at {info['path']}")
        elif kind == "text.ready":
            source = "cache" if info["cached"] else "encoder"
            console.print(f"item texts: {info['items']:,} ({info['without_text']:,} without text) from {source}; "
                          f"e.g. {info['example']!r}")
        else:
            return False
        return True

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
