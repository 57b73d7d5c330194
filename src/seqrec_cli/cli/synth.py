from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from seqrec_cli.cli.common import console, user_errors


def synth_command(
    out: Annotated[
        Path, typer.Option("--out", help="new folder: interactions/part-*.parquet + items.parquet")
    ],
    interactions: Annotated[
        int, typer.Option(help="rows in the log (e.g. 1000000, 10000000, 100000000)")
    ] = 1_000_000,
    items: Annotated[int, typer.Option(help="catalogue size (up to 1M and beyond)")] = 20_000,
    seed: Annotated[int, typer.Option(help="same seed and sizes -> same files")] = 0,
    mean_len: Annotated[float, typer.Option(help="mean of the log-normal user activity")] = 50.0,
    users_per_part: Annotated[
        int, typer.Option(help="users per Parquet part (about x mean-len rows)")
    ] = 20_000,
) -> None:
    """Write a seeded synthetic log (power-law items, log-normal users, learnable item-to-item walks,
    timestamps, ratings, item text) as partitioned Parquet, for `data.format: table`."""
    with user_errors():
        from seqrec_cli.data.synth import SynthConfig, generate

        cfg = SynthConfig(interactions, items, seed=seed, mean_len=mean_len, users_per_chunk=users_per_part)
        with console.status("writing parts...") as status:
            summary = generate(cfg, out, lambda index, rows: status.update(f"part {index} ({rows:,} rows)"))
        console.print(f"wrote {out}: {summary['rows']:,} interactions, {summary['users']:,} users, "
                      f"{items:,} items in {summary['partitions']} parts")
