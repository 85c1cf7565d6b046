"""The database fixtures themselves: real servers, empty databases, one per test."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa


@pytest.mark.parametrize("run", [1, 2])
def test_pg_url_is_a_fresh_postgresql_database(pg_url: str, run: int) -> None:
    # Runs twice and leaves a table behind: the second run only passes on a new database.
    eng = sa.create_engine(pg_url)
    try:
        with eng.begin() as conn:
            version = conn.execute(sa.text("select version()")).scalar_one()
            database = conn.execute(sa.text("select current_database()")).scalar_one()
            assert "PostgreSQL" in version
            assert database.startswith("bf_test_")
            assert sa.inspect(conn).get_table_names() == []
            conn.execute(sa.text("create table leftover (id integer primary key)"))
    finally:
        eng.dispose()


@pytest.mark.parametrize("run", [1, 2])
def test_sqlite_url_is_a_fresh_file_under_tmp_path(
    sqlite_url: str, tmp_path: Path, run: int
) -> None:
    eng = sa.create_engine(sqlite_url)
    try:
        assert eng.url.database == str(tmp_path / "bankflow.db")
        with eng.begin() as conn:
            assert conn.execute(sa.text("select sqlite_version()")).scalar_one()
            assert sa.inspect(conn).get_table_names() == []
            conn.execute(sa.text("create table leftover (id integer primary key)"))
    finally:
        eng.dispose()


def test_db_url_covers_both_backends(db_url: str, request: pytest.FixtureRequest) -> None:
    expected = {"sqlite": "sqlite", "postgres": "postgresql"}[request.node.callspec.id]
    assert sa.make_url(db_url).get_backend_name() == expected
    eng = sa.create_engine(db_url)
    try:
        with eng.connect() as conn:
            assert conn.execute(sa.text("select 1")).scalar_one() == 1
    finally:
        eng.dispose()
