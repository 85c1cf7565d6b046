"""The schema built by the shipped migrations is exactly the one the models describe."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from bankflow import DatabaseError, Engine
from bankflow.persistence import Base, Database


def test_migrated_schema_equals_models(db_url: str) -> None:
    Database(db_url).upgrade()
    with sa.create_engine(db_url).connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_upgrade_is_idempotent_and_reaches_head(db_url: str) -> None:
    db = Database(db_url)
    assert db.current_revision() is None
    head = db.upgrade()
    assert db.upgrade() == head
    assert db.current_revision() == head
    db.close()


def test_concurrent_upgrades_take_turns(pg_url: str) -> None:
    def upgrade() -> str | None:
        db = Database(pg_url)
        try:
            return db.upgrade()
        finally:
            db.close()

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: upgrade(), range(4)))
    assert len(set(results)) == 1
    assert Database(pg_url).current_revision() == results[0]


def test_server_database_must_be_upgraded_deliberately(pg_url: str) -> None:
    with pytest.raises(DatabaseError, match="db upgrade"):
        Engine(pg_url)
    Engine(pg_url, migrate=True).close()
    Engine(pg_url).close()


def test_embedded_sqlite_is_upgraded_automatically(sqlite_url: str) -> None:
    with Engine(sqlite_url) as engine:
        assert engine.definitions.list() == []
    assert Database(sqlite_url).current_revision() is not None
