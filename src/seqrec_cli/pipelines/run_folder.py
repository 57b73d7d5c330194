"""Who may write a run folder, and when a folder may be (re)started.

The lock: `runs/.<name>.lock`, beside the folder (so `--restart` can move the folder while holding it),
taken with flock for the life of the process that trains into the folder: a second process is refused
at once, and the kernel drops the lock when its holder dies, even by kill -9. The file holds the
holder's pid, host and start time; the holder removes it on a clean exit, so a file still there when
the next process locks it was left by a process that died, and that process is reported.

The rules: a folder with contents is never started over silently. Without a flag it is refused;
`--resume` continues from checkpoints/last.pt and refuses a folder that has results but no
last.pt; `--resume` of a run that does not exist is refused; `--restart` moves the old folder aside
(runs/<name>.replaced-<time>) and starts over: nothing is deleted.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from seqrec_cli.atomic import sweep_temps
from seqrec_cli.errors import UserError

LAST = "checkpoints/last.pt"
BEST = "checkpoints/best.pt"
RESULTS = ("metrics.jsonl", BEST, LAST, "eval")  # what a started-over run would replace


def lock_path(folder: Path) -> Path:
    return Path(folder).parent / f".{Path(folder).name}.lock"


@dataclass
class RunLock:
    path: Path
    fd: int
    stale: dict | None  # the record a dead holder left behind (None when the lock was free)

    def release(self) -> None:
        """Remove the lock file (only if it is still ours), then unlock by closing."""
        if self.fd < 0:
            return
        try:
            if os.fstat(self.fd).st_ino == os.stat(self.path).st_ino:
                self.path.unlink()
        except OSError:
            pass
        os.close(self.fd)
        self.fd = -1


def _read_record(fd: int) -> dict:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = os.read(fd, 4096)
    try:
        record = json.loads(raw.decode("utf-8")) if raw.strip() else {}
    except (UnicodeDecodeError, ValueError):
        record = {"unreadable": raw[:80].decode("utf-8", "replace")}
    return record if isinstance(record, dict) else {}


def _describe(record: dict) -> str:
    when = (
        time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record["started_unix"]))
        if isinstance(record.get("started_unix"), (int, float))
        else "an unknown time"
    )
    return f"pid {record.get('pid', '?')} on {record.get('host', '?')}, started {when}"


def _pid_alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lock_run(folder: Path) -> RunLock:
    """Take the run's lock or raise a UserError that names its holder."""
    folder = Path(folder)
    path = lock_path(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_record(fd)
            os.close(fd)
            fix = "wait for that process to finish, or stop it"
            if holder.get("host") == socket.gethostname() and not _pid_alive(holder.get("pid")):
                fix += (
                    f"; pid {holder.get('pid')} is gone, but a process it started still holds the lock "
                    f"(`fuser {path}` names it)"
                )
            else:
                fix += (f"; if it no longer runs (e.g. it ran on another machine sharing this disk), "
                        f"delete {path}")
            raise UserError(
                f"run folder is in use by another seqrec ({_describe(holder)}); two processes "
                "writing one run would mix their results",
                where=str(folder),
                fix=fix,
            ) from None
        try:  # the file at `path` may have been unlinked by its releasing holder between open and flock
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            continue
        left = _read_record(fd)
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started_unix": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        return RunLock(path, fd, left or None)


def stale_note(lock: RunLock) -> str | None:
    """What to tell the user about a lock a dead process left behind."""
    if lock.stale is None:
        return None
    return (
        f"the previous seqrec on this run ({_describe(lock.stale)}) ended without releasing its lock "
        "(killed or crashed); took it over"
    )


def _has_contents(folder: Path) -> bool:
    return folder.is_dir() and any(folder.iterdir())


def _results(folder: Path) -> list[str]:
    found = []
    for name in RESULTS:
        path = folder / name
        if (path.is_file() and path.stat().st_size > 0) or (path.is_dir() and any(path.iterdir())):
            found.append(name)
    return found


def move_aside(folder: Path) -> Path:
    """Rename `folder` to runs/<name>.replaced-<time>[-n]; returns the new path (nothing is deleted)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = folder.with_name(f"{folder.name}.replaced-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = folder.with_name(f"{folder.name}.replaced-{stamp}-{n}")
    os.rename(folder, target)
    return target


@dataclass
class Claim:
    folder: Path
    has_state: bool  # checkpoints/last.pt is there to resume from
    moved_to: Path | None = None  # --restart: where the old folder went
    note: str | None = None  # something the user should read (a resume that has nothing to resume)


def claim_run_dir(folder: Path, resume: bool, restart: bool) -> Claim:
    """Apply the rules above to `folder` (the caller holds its lock). A resumed folder's temp files
    of killed writes are removed: no one else writes here while the lock is held."""
    folder = Path(folder)
    if resume and restart:
        raise UserError(
            "--resume and --restart contradict each other",
            where=str(folder),
            fix="--resume continues the run; --restart moves it aside and starts over: pass one",
        )
    if folder.exists() and not folder.is_dir():
        raise UserError(
            "a file stands where the run folder belongs",
            where=str(folder),
            fix="move that file aside, or choose another name (--set name=...)",
        )
    if _has_contents(folder):
        if restart:
            moved = move_aside(folder)
            folder.mkdir(parents=True)
            return Claim(folder, False, moved_to=moved)
        if not resume:
            raise UserError(
                "run folder already exists; refusing to overwrite it",
                where=str(folder),
                fix="pass --resume to continue it, --restart to move it aside and start over, "
                "or choose another name (--set name=...)",
            )
        for sub in (folder, folder / "checkpoints"):
            sweep_temps(sub, owned=True)
        if (folder / LAST).is_file():
            return Claim(folder, True)
        results = _results(folder)
        if results:
            raise UserError(
                f"nothing to resume from: {LAST} is missing, and the folder has results "
                f"({', '.join(results)}) that starting over would replace",
                where=str(folder / LAST),
                fix=f"restore {LAST} and its .sha256 from a backup, or pass --restart (moves this "
                "folder aside, starts over), or choose another name (--set name=...)",
            )
        return Claim(
            folder, False, note="the run stopped before its first checkpoint; starting it from the beginning"
        )
    if resume:
        raise UserError(
            "no run to resume: the run folder does not exist or is empty",
            where=str(folder),
            fix="drop --resume to start this run, or check `name` and runtime.output_root",
        )
    folder.mkdir(parents=True, exist_ok=True)
    return Claim(folder, False)
