"""--help shows a value type only for options that take a value.

Typer 0.29 labels every flag (`--resume`, `--dry-run`, `--help`) `<bool>`, as if it took a value. A flag's
type column is left empty instead; everything else is typer's own rendering. Imported by cli/common.py.
"""

from __future__ import annotations

from typer import core as _typer_core


def _install() -> None:
    option = getattr(_typer_core, "TyperOption", None)
    original = getattr(option, "display_type_rich", None)
    if original is None or getattr(original, "_seqrec_flags", False):
        return  # another typer version, or already installed

    def display_type_rich(self, ctx):
        if getattr(self, "is_flag", False) and self.metavar is None:
            return None
        return original(self, ctx)

    display_type_rich._seqrec_flags = True
    option.display_type_rich = display_type_rich


_install()
