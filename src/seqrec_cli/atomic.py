"""Atomic writes: a reader sees the old file or the new one, never half of one.

Temp files and folders are named `.<name>.tmp-<pid>-<host>-<random>` beside their target, so one that
a killed process left behind can be told from one still being written (`sweep_temps`). Written files
get the modes the user's umask gives (mkstemp alone would leave them 0600, unreadable to others).
A write that fails for a reason the user can fix (disk full, read-only, file-size limit) is a
UserError naming the file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from seqrec_cli.errors import user_error_from_os

HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
_TEMP = re.compile(r"^\..+\.tmp-(\d+)-([0-9a-f]{8})-")
_OLD_TEMP = re.compile(r"^\..+\.tmp$")  # written before temp names carried a pid


def temp_prefix(name: str) -> str:
    return f".{name}.tmp-{os.getpid()}-{HOST}-"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def public_mode(path: Path) -> None:
    """Give `path` the mode a plain open()/mkdir() would have given it under the current umask."""
    base = 0o777 if Path(path).is_dir() else 0o666
    os.chmod(path, base & ~_umask())


@contextlib.contextmanager
def io_errors(where: Path | str) -> Iterator[None]:
    """OSErrors a user can fix -> UserError naming `where` (a write error itself names no file)."""
    try:
        yield
    except OSError as exc:
        mapped = user_error_from_os(exc, where=str(where))
        if mapped is None:
            raise
        raise mapped from exc


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call write(tmp) on a temp file beside `path`, fsync it, then rename it over `path`."""
    path = Path(path)
    with io_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=temp_prefix(path.name), dir=path.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            write(tmp)
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
            public_mode(tmp)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_json(path: Path, obj: object) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def append_jsonl(path: Path, record: dict) -> None:
    """Append one JSON line; a crash can lose at most this line, never earlier ones."""
    with io_errors(path), open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def temp_dir(folder: Path) -> Path:
    """A fresh temp folder beside `folder`, to be filled and then published with `publish_dir`."""
    folder = Path(folder)
    with io_errors(folder.parent):
        folder.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=temp_prefix(folder.name), dir=folder.parent))


def publish_dir(tmp: Path, folder: Path) -> None:
    """Rename the filled temp folder into place (fails if `folder` appeared meanwhile). Every file gets
    the umask's mode: some writers (mkdtemp, safetensors) create theirs 0600/0700."""
    for path in [*Path(tmp).rglob("*"), Path(tmp)]:
        if not path.is_symlink():
            public_mode(path)
    os.replace(tmp, folder)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def sweep_temps(folder: Path, owned: bool = False) -> list[Path]:
    """Remove temp files/folders in `folder` that killed writers left behind; returns what went.
    A temp of this host whose process is gone is stale; with `owned` (the caller holds the folder's
    lock, so nobody else writes here) every temp is."""
    removed: list[Path] = []
    if not Path(folder).is_dir():
        return removed
    for entry in Path(folder).iterdir():
        match = _TEMP.match(entry.name)
        if match:
            stale = owned or (match.group(2) == HOST and not _pid_alive(int(match.group(1))))
        else:
            stale = owned and bool(_OLD_TEMP.match(entry.name))
        if stale and int(match.group(1) if match else -1) != os.getpid():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed
