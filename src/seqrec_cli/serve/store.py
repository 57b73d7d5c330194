"""Per-user event histories. HistoryStore is the interface; SQLiteStore the embedded default.

SQLite in WAL mode with synchronous=FULL: a commit is fsynced to the log before `append` returns,
so an event the service acknowledged survives kill -9 (and power loss). Each user keeps at most
`cap` events: older ones are deleted in the same transaction.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class StoredEvent:
    item: str
    time: float | None


class HistoryStore(Protocol):
    def append(self, user: str, events: list[StoredEvent]) -> int:
        """Append in order; returns how many events the user now has."""

    def history(self, user: str) -> list[StoredEvent]:
        """Oldest first; empty for a user never seen."""

    def close(self) -> None: ...


class SQLiteStore:
    def __init__(self, path: str | Path, cap: int):
        self.cap = cap
        self.lock = threading.Lock()  # one connection, used from the server's worker threads in turn
        self.db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
            "user TEXT NOT NULL, item TEXT NOT NULL, time REAL)"
        )
        self.db.execute("CREATE INDEX IF NOT EXISTS events_user ON events (user, seq)")

    def append(self, user: str, events: list[StoredEvent]) -> int:
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                self.db.executemany(
                    "INSERT INTO events (user, item, time) VALUES (?, ?, ?)",
                    [(user, e.item, e.time) for e in events],
                )
                # keep the newest `cap`: delete everything at or below the cap-th newest's predecessor
                self.db.execute(
                    "DELETE FROM events WHERE user = ? AND seq <= (SELECT seq FROM events WHERE "
                    "user = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)",
                    (user, user, self.cap),
                )
                (count,) = self.db.execute("SELECT COUNT(*) FROM events WHERE user = ?", (user,)).fetchone()
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
        return int(count)

    def history(self, user: str) -> list[StoredEvent]:
        with self.lock:
            rows = self.db.execute(
                "SELECT item, time FROM events WHERE user = ? ORDER BY seq", (user,)
            ).fetchall()
        return [StoredEvent(item, time) for item, time in rows]

    def close(self) -> None:
        with self.lock:
            self.db.close()
