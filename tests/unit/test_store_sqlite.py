"""The SQLite store as make_engine opens it: WAL, synchronous=FULL and foreign keys on
every connection, and only SQLite and PostgreSQL (psycopg 3) URLs accepted."""

from __future__ import annotations

from pathlib import Path

import pytest

from tracker.store.db import StoreError, make_engine, migrate, normalise_url

#: PRAGMA synchronous reports a number: 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA.
FULL = 2


def test_every_sqlite_connection_runs_wal_and_synchronous_full(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        with engine.connect() as conn:  # through a transaction, as the store uses it
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == FULL
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        # Two driver connections at once: the pragmas are set on each one the pool opens
        # (raw, so neither takes the write lock).
        a, b = engine.raw_connection(), engine.raw_connection()
        try:
            for raw in (a, b):
                cur = raw.cursor()
                assert cur.execute("PRAGMA journal_mode").fetchone() == ("wal",)
                assert cur.execute("PRAGMA synchronous").fetchone() == (FULL,)
                cur.close()
        finally:
            a.close()
            b.close()
        migrate(engine)
        assert (tmp_path / "ledger.db-wal").exists()
    finally:
        engine.dispose()


def test_a_missing_database_folder_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        make_engine(f"sqlite:///{tmp_path / 'nowhere' / 'ledger.db'}")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u@127.0.0.1:5432/db", "postgresql+psycopg://u@127.0.0.1:5432/db"),
        ("postgres://u:pw@db.example/ledger", "postgresql+psycopg://u:pw@db.example/ledger"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:///ironroom.db", "sqlite:///ironroom.db"),
    ],
)
def test_urls_are_normalised_to_psycopg(url: str, expected: str) -> None:
    assert normalise_url(url) == expected


@pytest.mark.parametrize("url", ["mysql://u@h/db", "not a url", "oracle://h/db"])
def test_other_databases_are_refused(url: str) -> None:
    with pytest.raises(StoreError):
        normalise_url(url)
