"""Engines and migrations.

SQLite (the default) runs in WAL mode with ``synchronous=FULL``, so a commit is on disk
before the tracker acknowledges anything, and every write transaction starts with
``BEGIN IMMEDIATE`` so two writers (the tracker and ``ironroom ledger``) queue instead of
failing half-way. PostgreSQL is used through psycopg 3 (``postgresql://`` URLs).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

DEFAULT_URL = "sqlite:///ironroom.db"
MIGRATIONS = Path(__file__).with_name("migrations")


class StoreError(RuntimeError):
    """The database cannot be opened, migrated or written."""


def default_url() -> str:
    return os.environ.get("IRONROOM_DB") or DEFAULT_URL


def normalise_url(url: str) -> str:
    """``postgresql://`` means psycopg 3; anything but SQLite and PostgreSQL is refused."""
    try:
        u = make_url(url)
    except ArgumentError:
        raise StoreError(f"not a database URL: {url!r}") from None
    if u.drivername in ("postgresql", "postgres"):
        u = u.set(drivername="postgresql+psycopg")
    if u.get_backend_name() not in ("sqlite", "postgresql"):
        raise StoreError(f"unsupported database {u.drivername!r}: use sqlite:/// or postgresql://")
    return u.render_as_string(hide_password=False)


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        path = make_url(url).database
        if path and path != ":memory:":
            parent = Path(path).parent
            if not parent.is_dir():
                raise StoreError(f"database folder {parent} does not exist")
        engine = create_engine(url, connect_args={"timeout": 30})
        _sqlite_pragmas(engine)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below emit BEGIN itself (the pysqlite driver's
        # own transaction handling would start a deferred transaction).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        # Up to 64 MiB of pages held per connection (SQLite's default is 2 MiB): listings
        # and lookups of a large ledger jump between the loans and documents tables, and
        # each page not held is read from the file again.
        cur.execute("PRAGMA cache_size=-65536")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Readers (reports, audit verify) take no write lock: WAL lets them read a
        # consistent snapshot while the ingest keeps committing.
        readonly = conn.get_execution_options().get("ironroom_readonly", False)
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")


def sessions(engine: Engine) -> sessionmaker[Session]:
    """Sessions for changes (on SQLite each transaction takes the write lock at once)."""
    return sessionmaker(engine, expire_on_commit=False)


def readers(engine: Engine) -> sessionmaker[Session]:
    """Sessions that only read: no write lock on SQLite."""
    return sessionmaker(engine.execution_options(ironroom_readonly=True), expire_on_commit=False)


def alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def migrate(engine: Engine) -> str:
    """Bring the schema to the newest revision (nothing to do: a quick look); returns it."""
    import logging

    logging.getLogger("alembic").setLevel(logging.WARNING)
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    cfg = alembic_config(engine)
    heads = set(ScriptDirectory.from_config(cfg).get_heads())
    try:
        with engine.connect() as conn:
            current = set(MigrationContext.configure(conn).get_current_heads())
        if current != heads:
            command.upgrade(cfg, "heads")
    except OperationalError as exc:
        raise StoreError(f"cannot migrate {_safe(engine)}: {exc.orig}") from None
    return "+".join(sorted(heads))


def _safe(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)
