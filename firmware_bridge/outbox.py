"""The durable outbox: every event is written here (SQLite, fsync'd) before it is sent,
and stays until an ``ack`` from the tracker covers it.

The same file keeps the boot counter, the ids of executed commands (replay protection)
and small durable settings (arming, the cached policy).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    boot INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    alarm INTEGER NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    UNIQUE (boot, seq)
);
CREATE INDEX IF NOT EXISTS events_alarm ON events (alarm, id);
CREATE TABLE IF NOT EXISTS commands (id TEXT PRIMARY KEY, expires REAL NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class Stored:
    rowid: int
    boot: int
    seq: int
    alarm: bool
    topic: str
    payload: bytes


class OutboxError(RuntimeError):
    """The outbox file cannot be opened or written (disk full, read-only, corrupt)."""


class Outbox:
    def __init__(self, path: str | Path, *, durable: bool = True) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: every commit is fsync'd before append() returns.
            self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'OFF'}")
            self._db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot open outbox {self.path}: {exc}") from exc
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- boot and settings ------------------------------------------------------------

    def next_boot(self) -> int:
        """Increment the boot counter and make it durable before any event of the boot."""
        with self._lock, self._tx():
            row = self._db.execute("SELECT value FROM meta WHERE key='boot'").fetchone()
            boot = int(row[0]) + 1 if row else 1
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('boot', ?)", (str(boot),))
        return boot

    def get(self, key: str, default: Any = None) -> Any:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def put(self, key: str, value: Any) -> None:
        with self._lock, self._tx():
            self._db.execute(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                (key, json.dumps(value, sort_keys=True)),
            )

    # -- events -----------------------------------------------------------------------

    def append(self, rows: Iterable[tuple[int, int, str, bytes, bool]]) -> int:
        """Store ``(boot, seq, topic, payload, alarm)`` rows in one fsync'd transaction."""
        batch = [(b, s, int(a), t, p) for b, s, t, p, a in rows]
        if not batch:
            return 0
        with self._lock:
            try:
                with self._tx():
                    self._db.executemany(
                        "INSERT INTO events (boot, seq, alarm, topic, payload) VALUES (?,?,?,?,?)",
                        batch,
                    )
            except sqlite3.Error as exc:
                raise OutboxError(f"cannot write to outbox {self.path}: {exc}") from exc
        return len(batch)

    def after(self, rowid: int, *, alarm: bool, limit: int = 100) -> list[Stored]:
        """Unacknowledged events after ``rowid`` in creation order, alarms or the rest."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, boot, seq, alarm, topic, payload FROM events "
                "WHERE alarm=? AND id>? ORDER BY id LIMIT ?",
                (int(alarm), rowid, limit),
            ).fetchall()
        return [Stored(r[0], r[1], r[2], bool(r[3]), r[4], bytes(r[5])) for r in rows]

    def ack(self, boot: int, seq: int) -> int:
        """Drop every event of ``boot`` up to ``seq``; returns how many went."""
        with self._lock, self._tx():
            cur = self._db.execute("DELETE FROM events WHERE boot=? AND seq<=?", (boot, seq))
        return cur.rowcount

    def rowid_range(self) -> tuple[int, int]:
        """``(lowest, highest)`` row id still in the outbox, ``(0, 0)`` when empty."""
        with self._lock:
            lo, hi = self._db.execute("SELECT min(id), max(id) FROM events").fetchone()
        return (lo or 0, hi or 0)

    def depth(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM events").fetchone()[0])

    def all(self) -> list[Stored]:
        return self.after(0, alarm=True, limit=10**9) + self.after(0, alarm=False, limit=10**9)

    # -- commands ---------------------------------------------------------------------

    def remember_command(self, command_id: str, expires: float, now: float) -> bool:
        """Record an executed command id; False if it was already there (a replay)."""
        with self._lock, self._tx():
            self._db.execute("DELETE FROM commands WHERE expires < ?", (now - 3600,))
            cur = self._db.execute(
                "INSERT OR IGNORE INTO commands VALUES (?, ?)", (command_id, expires)
            )
        return cur.rowcount == 1

    # -- helpers ----------------------------------------------------------------------

    def _tx(self) -> _Tx:
        return _Tx(self._db)


class _Tx:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
