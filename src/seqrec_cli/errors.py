"""Errors the user can fix. The CLI maps these to exit code 2; anything else is a bug (exit 1)."""

import errno


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


# errno -> what the user can do about it. An OSError with one of these numbers is a problem of the
# machine or of paths the user chose (disk full, read-only, a file where a folder belongs), never a
# bug, so it exits 2 like any UserError; other OSErrors keep their traceback.
_OS_FIXES = {
    "ENOSPC": "the disk is full: free some space, or set runtime.output_root to a disk with room",
    "EDQUOT": "the disk quota is used up: free some space, or set runtime.output_root elsewhere",
    "EFBIG": "the file-size limit was reached (ulimit -f, or the filesystem's): raise it or write elsewhere",
    "EROFS": "the filesystem is read-only: set runtime.output_root (or the path) to a writable folder",
    "EACCES": "permission denied: check the folder's permissions, or use a folder you own",
    "EPERM": "operation not permitted: check the permissions, or use a folder you own",
    "ENOTDIR": "a file stands where a folder is expected: move that file aside or choose another path",
    "EISDIR": "a folder stands where a file is expected: name a file, or move the folder aside",
    "ENOENT": "check the path (relative paths resolve from the current folder or the data root)",
    "EEXIST": "something already exists there: choose another name or move it aside",
    "ENAMETOOLONG": "the path is too long: choose a shorter name or folder",
    "EIO": "the device reported an I/O error: check the disk, or copy the file elsewhere and retry",
    "EMFILE": "too many open files: raise the limit (ulimit -n) and run again",
}
_FIX_BY_ERRNO = {getattr(errno, name): fix for name, fix in _OS_FIXES.items() if hasattr(errno, name)}


def user_error_from_os(exc: OSError, where: str | None = None) -> UserError | None:
    """The UserError an OSError means for the user (naming `where` or the error's own file), or None
    when its errno is not one a user can fix (then it stays a bug)."""
    fix = _FIX_BY_ERRNO.get(exc.errno)
    if fix is None:
        return None
    place = where or exc.filename
    return UserError(f"{exc.strerror or exc}", where=str(place) if place is not None else None, fix=fix)
