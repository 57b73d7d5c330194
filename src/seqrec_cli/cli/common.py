"""Options every command shares, spec loading, and the map from known errors to exit code 2."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from seqrec_cli.cli import help_format  # noqa: F401  (flags show no `<bool>` type in --help)
from seqrec_cli.errors import UserError, user_error_from_os

# The one place that decides how text reaches the terminal: literally. Messages carry paths, file:line
# locations, zip members and item titles, so no markup ("[x]"), no emoji codes (":100:") and no
# highlighting; styling is applied explicitly (say's `lead`, Text objects). soft_wrap: never break a
# path or a file:line when output is a pipe (rich would wrap at 80 columns).
_LITERAL = {"soft_wrap": True, "markup": False, "emoji": False, "highlight": False}
console = Console(**_LITERAL)
err_console = Console(stderr=True, **_LITERAL)
EXIT_INTERRUPTED = 130  # the shell's code for a process ended by Ctrl-C (128 + SIGINT)

SpecArg = Annotated[Path, typer.Argument(help="YAML experiment spec", show_default=False, metavar="SPEC")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="KEY=VALUE",
        help="override a spec value before validation: section.key=value (repeatable)",
    ),
]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="validate, print the resolved spec, exit 0")]


def say(text: str, lead: str | None = None, style: str = "green", stderr: bool = False) -> None:
    """Print `text` literally, after an optional styled `lead` word ("done", "error:")."""
    line = Text()
    if lead:
        line.append(lead, style=style)
        line.append(" ")
    line.append(text)
    (err_console if stderr else console).print(line)


@contextlib.contextmanager
def user_errors(interrupted_hint: str | None = None):
    """Known, fixable problems exit 2 with the message; anything else is a bug and keeps its traceback.
    OSErrors a user can fix (disk full, read-only, a file where a folder belongs) count as known;
    Ctrl-C exits 130 with `interrupted_hint` (e.g. how to resume)."""
    try:
        yield
    except UserError as exc:
        say(exc.render(), lead="error:", style="bold red", stderr=True)
        sys.exit(2)
    except OSError as exc:
        mapped = user_error_from_os(exc)
        if mapped is None:
            raise
        say(mapped.render(), lead="error:", style="bold red", stderr=True)
        sys.exit(2)
    except KeyboardInterrupt:
        say(interrupted_hint or "stopped before finishing", lead="interrupted:", style="bold yellow",
            stderr=True)
        sys.exit(EXIT_INTERRUPTED)


def load(spec_path: Path, overrides: list[str] | None, dry_run: bool, for_training: bool = False):
    """Load and validate the spec; with --dry-run print it and exit 0 (the same checks either way)."""
    from seqrec_cli.spec.loader import dump_spec, load_spec, spec_hash

    spec = load_spec(spec_path, overrides or [], for_training=for_training)
    if dry_run:
        # soft_wrap: the printout must stay valid YAML (rich would wrap long values at 80 columns)
        console.print(f"# spec {spec_path} is valid; spec hash {spec_hash(spec)[:16]}")
        console.print(dump_spec(spec))
        raise typer.Exit(0)
    return spec
