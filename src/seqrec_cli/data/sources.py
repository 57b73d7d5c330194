"""Where the bytes come from: a file, a member of a zip, or the one matching file in a folder.

Every reader starts from a `Source`, so file:line error locations work the same for every format.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from seqrec_cli.data.io import check_exists, inner_name, open_binary, zip_member, zip_members
from seqrec_cli.errors import DataError


@dataclass(frozen=True)
class Source:
    """One readable file: a path, or a member inside a zip."""

    path: Path
    member: str | None = None

    @property
    def label(self) -> str:
        return f"{self.path}[{self.member}]" if self.member else str(self.path)

    @property
    def name(self) -> str:
        """Bare file name without compression suffix, for format detection."""
        return inner_name(self.member.rsplit("/", 1)[-1] if self.member else self.path.name)

    def binary(self) -> IO[bytes]:
        return open_binary(self.path, self.member)


def locate(path: Path, explicit: str | None, accept: Callable[[str], bool], what: str, key: str) -> Source:
    """Resolve `path` (file, zip or folder) to one file; `explicit` names it inside a folder or zip."""
    path = check_exists(Path(path))
    if path.is_dir():
        if explicit:
            return locate(path / explicit, None, lambda _: True, what, key)
        found = sorted(p.name for p in path.iterdir() if p.is_file() and accept(inner_name(p)))
        return Source(path / _only_one(found, path, what, key))
    if path.suffix.lower() == ".zip":
        if explicit:
            return Source(path, zip_member(path, explicit))
        found = [m for m in zip_members(path) if accept(inner_name(m.rsplit("/", 1)[-1]))]
        return Source(path, _only_one(found, path, what, key))
    return Source(path)


def _only_one(found: list[str], where: Path, what: str, key: str) -> str:
    if len(found) == 1:
        return found[0]
    listing = f": {', '.join(found[:20])}" if found else ""
    raise DataError(
        f"expected exactly one {what} here, found {len(found)}{listing}",
        where=str(where),
        fix=f"set {key} to the file to read",
    )


def resolve_path(base: Path, relative: str) -> Path:
    """`relative` under `base` (a folder, or a file whose folder is used) unless it is absolute."""
    path = Path(relative).expanduser()
    if path.is_absolute():
        return path
    base = Path(base)
    return (base.parent if base.is_file() else base) / path


def numbered_lines(source: Source, encoding: str = "utf-8") -> Iterator[tuple[int, str]]:
    """(line number, line) pairs. Lines are decoded one by one so a bad byte is reported at its line."""
    with source.binary() as handle:
        for number, raw in enumerate(handle, 1):
            try:
                line = raw.decode(encoding)
            except UnicodeDecodeError as exc:
                raise DataError(
                    f"not valid {encoding} text (byte {exc.start + 1} of the line: {exc.reason})",
                    where=f"{source.label}:{number}",
                    fix=f"fix that line or re-encode the file as {encoding}",
                ) from exc
            yield number, (line.lstrip("\ufeff") if number == 1 else line)


def first_line(source: Source, encoding: str = "utf-8") -> str:
    """First non-blank line; an empty file is an error for every format."""
    for _, line in numbered_lines(source, encoding):
        if line.strip():
            return line.rstrip("\r\n").lstrip("\ufeff")
    raise DataError("the file is empty", where=source.label, fix="point the spec at the right file")
