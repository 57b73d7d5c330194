"""Options every command shares, spec loading, and the map from known errors to exit code 2."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from seqrec_cli.cli import help_format  # noqa: F401  (flags show no `<bool>` type in --help)
from seqrec_cli.errors import UserError

console = Console(soft_wrap=True)  # never break a path or a file:line in a pipe
err_console = Console(stderr=True)

SpecArg = Annotated[Path, typer.Argument(help="YAML experiment spec", show_default=False, metavar="SPEC")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set", metavar="KEY=VALUE", help="override a spec value before validation: section.key=value (repeatable)"
    ),
]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="validate, print the resolved spec, exit 0")]


@contextlib.contextmanager
def user_errors():
    """Known, fixable problems exit 2 with the message; anything else is a bug and keeps its traceback."""
    try:
        yield
    except UserError as exc:
        # escape: messages hold paths, zip members and "[from --set]", not markup; soft_wrap: never
        # break a file:line or path when stderr is a pipe (rich would wrap at 80 columns)
        err_console.print(f"[bold red]error:[/] {escape(exc.render())}", highlight=False, soft_wrap=True)
        sys.exit(2)


def load(spec_path: Path, overrides: list[str] | None, dry_run: bool):
    """Load and validate the spec; with --dry-run print it and exit 0."""
    from seqrec_cli.spec.loader import dump_spec, load_spec, spec_hash

    spec = load_spec(spec_path, overrides or [])
    if dry_run:
        # soft_wrap: the printout must stay valid YAML (rich would wrap long values at 80 columns)
        console.print(f"# spec {spec_path} is valid; spec hash {spec_hash(spec)[:16]}", highlight=False,
                      markup=False, soft_wrap=True)
        console.print(dump_spec(spec), highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(0)
    return spec
