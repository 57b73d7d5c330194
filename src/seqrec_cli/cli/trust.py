"""`seqrec trust CHECKPOINT`: write the digest file of a checkpoint you vouch for (e.g. one written by a
seqrec without digests), so evaluate, export and --resume accept it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from seqrec_cli.cli.common import say, user_errors

CheckpointArg = Annotated[Path, typer.Argument(help="checkpoint (.pt) to vouch for", show_default=False)]


def trust_command(checkpoint: CheckpointArg) -> None:
    """Vouch for a checkpoint that has no .sha256 digest file: checks it loads safely, then writes one."""
    with user_errors():
        from seqrec_cli.core.checkpoint import digest_path, trust_checkpoint

        record = trust_checkpoint(checkpoint)
        say(
            f"{digest_path(checkpoint)} (sha256 {record['sha256'][:16]}, {record['bytes']:,} bytes)",
            lead="written",
        )
