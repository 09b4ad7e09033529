"""The migrations build exactly the tables the models describe, and the history has one
head (a new migration goes after it)."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from tracker.store.db import alembic_config, make_engine, migrate
from tracker.store.models import Base


def test_one_head() -> None:
    engine = make_engine("sqlite://")
    heads = ScriptDirectory.from_config(alembic_config(engine)).get_heads()
    assert heads == ["0008"]


def test_migrated_schema_is_the_models(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    assert migrate(engine) == "0008"
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == []
