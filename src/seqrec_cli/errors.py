"""Errors the user can fix. The CLI maps these to exit code 2; anything else is a bug (exit 1)."""


class UserError(Exception):
    """Bad spec, bad data, bad path or missing artifact: say what, where, and how to fix it."""

    def __init__(self, message: str, *, where: str | None = None, fix: str | None = None):
        self.message = message
        self.where = where
        self.fix = fix
        super().__init__(self.render())

    def render(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.fix:
            text += f"\n  fix: {self.fix}"
        return text


class SpecError(UserError):
    """One or more problems in a YAML spec; `problems` holds (dotted key, message) pairs."""

    DEFAULT_FIX = (
        "correct the key(s) listed above in the spec or the --set value; "
        "--dry-run checks a spec without running"
    )

    def __init__(self, path: str, problems: list[tuple[str, str]], fix: str | None = None):
        self.problems = problems
        lines = "\n".join(f"  - {key}: {msg}" for key, msg in problems)
        super().__init__(f"{len(problems)} problem(s) in the spec\n{lines}", where=str(path),
                         fix=fix or self.DEFAULT_FIX)


class DataError(UserError):
    """A data file that cannot be read as declared (missing column, unparsable line, empty result)."""
