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
from seqrec_cli.events import Event, TextBatch, TextEncoded, TextEncoding, TextReady


class TextDisplay:
    def __init__(self):
        self.progress: Progress | None = None
        self.task = None

    def __call__(self, event: Event) -> bool:
        """Render `event` if it is a text event; returns whether it was one."""
        match event:
            case TextEncoding(with_text=with_text, encoder=encoder):
                console.print(f"encoding {with_text:,} item texts with {encoder}")
                self.progress = Progress(TextColumn("[bold]item text"), BarColumn(), MofNCompleteColumn(),
                                         TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                                         console=console, transient=True)
                self.progress.start()
                self.task = self.progress.add_task("encode", total=with_text)
            case TextBatch(done=done):
                if self.progress is not None:
                    self.progress.update(self.task, completed=done)
            case TextEncoded(seconds=seconds, path=path):
                self.stop()
                console.print(f"item text vectors: {seconds}s, cached at {path}")
            case TextReady():
                source = "cache" if event.cached else "encoder"
                console.print(
                    f"item texts: {event.items:,} ({event.without_text:,} without text) from {source}; "
                    f"e.g. {event.example!r}"
                )
            case _:
                return False
        return True

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
