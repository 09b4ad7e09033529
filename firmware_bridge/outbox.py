"""The durable outbox: every event is written here (SQLite, fsync'd) before it is sent,
and stays until an ``ack`` from the tracker covers it.

The same file keeps the boot counter, the highest ``seq`` made in each boot (an ack for
more than that is not believed), the ids of executed commands (replay protection) and small
durable settings (latched alarms, siren requests, arming, the cached policy). Events and
the settings they go with are written in one transaction (:meth:`Outbox.commit`).

Every failure of the file is an :class:`OutboxError`.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firmware_bridge.errors import OutboxError

__all__ = ["Outbox", "OutboxError", "Row", "Stored"]

#: ``(boot, seq, topic, payload, alarm)``: one event as the controller made it.
Row = tuple[int, int, str, bytes, bool]

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
CREATE TABLE IF NOT EXISTS boots (boot INTEGER PRIMARY KEY, high INTEGER NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class Stored:
    rowid: int
    boot: int
    seq: int
    alarm: bool
    topic: str
    payload: bytes


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
        except (sqlite3.Error, OSError) as exc:
            raise OutboxError(f"cannot open outbox {self.path}: {exc}") from exc
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @property
    def synchronous(self) -> int:
        """The connection's ``PRAGMA synchronous``: 2 (FULL) when durable, 0 (OFF) not."""
        with self._lock, self._errors("read"):
            return int(self._db.execute("PRAGMA synchronous").fetchone()[0])

    # -- boot and settings ------------------------------------------------------------

    def next_boot(self) -> int:
        """Increment the boot counter and make it durable before any event of the boot."""
        with self._lock, self._errors("write"), self._tx():
            row = self._db.execute("SELECT value FROM meta WHERE key='boot'").fetchone()
            boot = int(row[0]) + 1 if row else 1
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('boot', ?)", (str(boot),))
        return boot

    def get(self, key: str, default: Any = None) -> Any:
        with self._lock, self._errors("read"):
            row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def put(self, key: str, value: Any) -> None:
        self.commit([], {key: value})

    # -- events -----------------------------------------------------------------------

    def append(self, rows: Iterable[Row]) -> int:
        """Store ``(boot, seq, topic, payload, alarm)`` rows in one fsync'd transaction."""
        return self.commit(rows)

    def commit(self, rows: Iterable[Row], meta: dict[str, Any] | None = None) -> int:
        """Store event rows and settings (``meta``: key -> JSON value) in ONE fsync'd
        transaction: all of it is on disk when this returns, or none of it and
        :class:`OutboxError` is raised. Returns the number of rows stored."""
        batch = [(b, s, int(a), t, p) for b, s, t, p, a in rows]
        settings = [(k, json.dumps(v, sort_keys=True)) for k, v in (meta or {}).items()]
        if not batch and not settings:
            return 0
        highs: dict[int, int] = {}
        for b, s, *_ in batch:
            highs[b] = max(highs.get(b, 0), s)
        with self._lock, self._errors("write to"), self._tx():
            if batch:
                self._db.executemany(
                    "INSERT INTO events (boot, seq, alarm, topic, payload) VALUES (?,?,?,?,?)",
                    batch,
                )
                self._db.executemany(
                    "INSERT INTO boots VALUES (?, ?) ON CONFLICT (boot) "
                    "DO UPDATE SET high = max(high, excluded.high)",
                    list(highs.items()),
                )
            if settings:
                self._db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", settings)
        return len(batch)

    def highest_seqs(self) -> dict[int, int]:
        """``boot -> highest seq made`` for every boot the outbox knows of."""
        with self._lock, self._errors("read"):
            known = self._db.execute("SELECT boot, high FROM boots").fetchall()
            stored = self._db.execute("SELECT boot, max(seq) FROM events GROUP BY boot").fetchall()
        out: dict[int, int] = {}
        for boot, high in [*known, *stored]:
            out[boot] = max(out.get(boot, 0), high)
        return out

    def after(self, rowid: int, *, alarm: bool, limit: int = 100) -> list[Stored]:
        """Unacknowledged events after ``rowid`` in creation order, alarms or the rest."""
        with self._lock, self._errors("read"):
            rows = self._db.execute(
                "SELECT id, boot, seq, alarm, topic, payload FROM events "
                "WHERE alarm=? AND id>? ORDER BY id LIMIT ?",
                (int(alarm), rowid, limit),
            ).fetchall()
        return [Stored(r[0], r[1], r[2], bool(r[3]), r[4], bytes(r[5])) for r in rows]

    def ack(self, boot: int, seq: int) -> int:
        """Drop every event of ``boot`` up to ``seq``; returns how many went."""
        with self._lock, self._errors("prune"), self._tx():
            cur = self._db.execute("DELETE FROM events WHERE boot=? AND seq<=?", (boot, seq))
        return cur.rowcount

    def rowid_range(self) -> tuple[int, int]:
        """``(lowest, highest)`` row id still in the outbox, ``(0, 0)`` when empty."""
        with self._lock, self._errors("read"):
            lo, hi = self._db.execute("SELECT min(id), max(id) FROM events").fetchone()
        return (lo or 0, hi or 0)

    def depth(self) -> int:
        with self._lock, self._errors("read"):
            return int(self._db.execute("SELECT count(*) FROM events").fetchone()[0])

    def all(self) -> list[Stored]:
        return self.after(0, alarm=True, limit=10**9) + self.after(0, alarm=False, limit=10**9)

    # -- commands ---------------------------------------------------------------------

    def remember_command(self, command_id: str, expires: float, now: float) -> bool:
        """Record an executed command id; False if it was already there (a replay)."""
        with self._lock, self._errors("write to"), self._tx():
            self._db.execute("DELETE FROM commands WHERE expires < ?", (now - 3600,))
            cur = self._db.execute(
                "INSERT OR IGNORE INTO commands VALUES (?, ?)", (command_id, expires)
            )
        return cur.rowcount == 1

    # -- helpers ----------------------------------------------------------------------

    def _tx(self) -> _Tx:
        return _Tx(self._db)

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Turn what SQLite raises (or an integer it cannot store) into OutboxError."""
        try:
            yield
        except (sqlite3.Error, OverflowError) as exc:
            raise OutboxError(f"cannot {doing} outbox {self.path}: {exc}") from exc


class _Tx:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            try:
                self.db.execute("COMMIT")
                return
            except sqlite3.Error:
                self._rollback()  # a COMMIT that fails (disk full) leaves it open
                raise
        self._rollback()

    def _rollback(self) -> None:
        if self.db.in_transaction:
            try:
                self.db.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # the error being raised says more
