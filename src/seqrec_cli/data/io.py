"""Open data files whatever their compression (.gz, .xz, .bz2, .zip or none) and hash them.

Readers call these instead of `open` so that every format accepts compressed input for free,
and so that a missing file or an ambiguous zip is a DataError with a fix, not a traceback. Every
handle they return goes through one error path (`_Checked`): a truncated or damaged archive (an
interrupted download), a bad CRC, a file that is not what its suffix says, or a failing disk is a
DataError naming the file, wherever in the reading it shows up.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from seqrec_cli.errors import DataError, user_error_from_os

# Stream openers by suffix; zip is handled apart because it holds several files.
_STREAM_OPENERS = {".gz": gzip.open, ".xz": lzma.open, ".bz2": bz2.open}
COMPRESSED_SUFFIXES = (*_STREAM_OPENERS, ".zip")


def inner_name(path: Path | str) -> str:
    """File name without its compression suffix: `ratings.csv.gz` -> `ratings.csv` (format detection)."""
    name = Path(path).name
    for suffix in COMPRESSED_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


# What decompressors and file reads raise on damaged input: EOFError (truncated stream),
# gzip.BadGzipFile / OSError (not gzip, bad bz2 stream, disk errors), zlib.error, LZMAError, BadZipFile (CRC).
_READ_ERRORS = (EOFError, OSError, zlib.error, lzma.LZMAError, zipfile.BadZipFile)
_DAMAGED_FIX = ("the file is truncated or damaged (often an interrupted download): download or copy it again "
                "and compare its sha256 with the source's; `{tool} -t FILE` tests an archive")
_TOOLS = {".gz": "gzip", ".xz": "xz", ".bz2": "bzip2", ".zip": "unzip"}


@contextmanager
def read_errors(label: str, suffix: str = ""):
    """The one error path for reading data: any decompression or I/O failure -> DataError at `label`."""
    try:
        yield
    except _READ_ERRORS as exc:
        if isinstance(exc, OSError) and not isinstance(exc, gzip.BadGzipFile) and exc.errno is not None:
            mapped = user_error_from_os(exc, where=label)
            if mapped is not None:
                raise DataError(mapped.message, where=label, fix=mapped.fix) from exc
        kind = f"{suffix[1:]} " if suffix in _TOOLS else ""
        detail = str(exc) or type(exc).__name__
        raise DataError(f"cannot read this {kind}file ({type(exc).__name__}: {detail})", where=label,
                        fix=_DAMAGED_FIX.format(tool=_TOOLS.get(suffix, "xz"))) from exc


class _Checked(io.BufferedIOBase):
    """A read-only binary stream whose every read goes through `read_errors`."""

    def __init__(self, inner: IO[bytes], label: str, suffix: str):
        super().__init__()
        self._inner, self._label, self._suffix = inner, label, suffix

    def _guard(self):
        return read_errors(self._label, self._suffix)

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        with self._guard():
            return self._inner.read(-1 if size is None else size)

    def read1(self, size: int = -1) -> bytes:
        with self._guard():
            reader = getattr(self._inner, "read1", self._inner.read)
            return reader(size)

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readline(self, size: int | None = -1) -> bytes:
        with self._guard():
            return self._inner.readline(-1 if size is None else size)

    def seekable(self) -> bool:
        return self._inner.seekable()

    def seek(self, offset: int, whence: int = 0) -> int:
        with self._guard():
            return self._inner.seek(offset, whence)

    def tell(self) -> int:
        return self._inner.tell()

    def close(self) -> None:
        if not self.closed:
            self._inner.close()
        super().close()


def check_exists(path: Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise DataError(
            "file or folder not found",
            where=str(path),
            fix="check the path; relative paths resolve under runtime.data_root (or env SEQREC_DATA_ROOT)",
        )
    return path


def zip_members(path: Path) -> list[str]:
    """Data members of a zip: folders and macOS resource forks are not data."""
    with read_errors(str(path), ".zip"), zipfile.ZipFile(check_exists(path)) as archive:
        return [
            name
            for name in archive.namelist()
            if not name.endswith("/") and not name.startswith("__MACOSX/") and "/._" not in f"/{name}"
        ]


def zip_member(path: Path, member: str | None = None) -> str:
    """The member to read: the only data file, or `member` (a full name, or a bare name that is unique)."""
    members = zip_members(path)
    if member is None:
        if len(members) == 1:
            return members[0]
        raise DataError(
            f"zip has {len(members)} files, so which one to read is ambiguous: {', '.join(members[:20])}"
            + (" ..." if len(members) > 20 else ""),
            where=str(path),
            fix="name the member (e.g. data.interactions: <member>) or unzip the file you want",
        )
    if member in members:
        return member
    # Accept a bare file name when it names exactly one member in some subfolder.
    matches = [name for name in members if name.rsplit("/", 1)[-1] == member]
    if len(matches) == 1:
        return matches[0]
    raise DataError(
        f"zip has no single member named {member!r}; members: {', '.join(members[:20])}",
        where=str(path),
        fix="use one of the member names listed",
    )


def open_binary(path: Path, member: str | None = None) -> IO[bytes]:
    """Readable binary file object (a context manager), decompressed by suffix."""
    path = check_exists(Path(path))
    if path.is_dir():
        raise DataError("expected a file, found a folder", where=str(path), fix="name a file inside it")
    suffix = path.suffix.lower()
    if suffix == ".zip":
        name = zip_member(path, member)
        with read_errors(f"{path}[{name}]", suffix):
            archive = zipfile.ZipFile(path)
            handle = archive.open(name)
        # The member keeps its own reference to the underlying file, so closing the archive is safe.
        archive.close()
        return _Checked(handle, f"{path}[{name}]", suffix)
    if member is not None:
        raise DataError(f"member {member!r} given, but this is not a zip file", where=str(path))
    opener = _STREAM_OPENERS.get(suffix)
    with read_errors(str(path), suffix):
        handle = opener(path, "rb") if opener else open(path, "rb")
    return _Checked(handle, str(path), suffix)


class _CheckedText(io.TextIOWrapper):
    """Text on top of `_Checked`: bytes that are not valid in `encoding` are a DataError too."""

    def _decoding(self):
        return _decode_errors(self._label, self.encoding)

    def read(self, size: int | None = -1) -> str:
        with self._decoding():
            return super().read(size)

    def readline(self, size: int = -1) -> str:
        with self._decoding():
            return super().readline(size)

    def __next__(self) -> str:
        with self._decoding():
            return super().__next__()


@contextmanager
def _decode_errors(label: str, encoding: str):
    try:
        yield
    except UnicodeDecodeError as exc:
        raise DataError(f"not valid {encoding} text ({exc.reason} at byte {exc.start} of a block)",
                        where=label, fix=f"re-encode the file as {encoding}") from exc


def open_text(path: Path, encoding: str = "utf-8", member: str | None = None) -> IO[str]:
    """Readable text file object (a context manager); universal newlines, decompressed by suffix."""
    binary = open_binary(path, member)
    text = _CheckedText(binary, encoding=encoding)
    text._label = binary._label
    return text


def sha256_file(path: Path) -> str:
    """Hex sha256 of the file's bytes as stored (compressed files are hashed compressed)."""
    digest = hashlib.sha256()
    with read_errors(str(path)), open(check_exists(Path(path)), "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
