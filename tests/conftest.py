"""Shared fixtures: database URLs for both backends, an Engine on them, corpus and repo paths.

PostgreSQL tests run against the server named by ``BANKFLOW_TEST_POSTGRES_URL`` (``scripts/test``
starts a throwaway one and sets it); each test gets a database of its own, dropped afterwards.
Without that variable PostgreSQL tests are skipped locally, and fail under CI.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

if TYPE_CHECKING:
    from bankflow import Engine

POSTGRES_URL_ENV = "BANKFLOW_TEST_POSTGRES_URL"
REPO_ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ("sqlite", "postgres")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "postgres: the test runs against PostgreSQL")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Lets `pytest -m "not postgres"` run the SQLite half alone.
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_postgres = callspec is not None and callspec.params.get("db_url") == "postgres"
        if on_postgres or "pg_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)


def _running_in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def _pg_admin() -> Iterator[sa.Engine]:
    """Autocommit engine on the test server's maintenance database."""
    server_url = os.environ.get(POSTGRES_URL_ENV)
    if not server_url:
        reason = f"{POSTGRES_URL_ENV} is not set (./scripts/test starts PostgreSQL and sets it)"
        if _running_in_ci():
            pytest.fail(f"{reason}; under CI PostgreSQL tests must run", pytrace=False)
        pytest.skip(reason)
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    yield admin
    admin.dispose()


def _fresh_pg_database(admin: sa.Engine) -> Iterator[str]:
    """Create an empty database, yield its URL, drop it (closing leftover connections)."""
    name = f"bf_test_{uuid.uuid4().hex}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _backend_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'bankflow.db'}"
    elif backend == "postgres":
        yield from _fresh_pg_database(request.getfixturevalue("_pg_admin"))
    else:
        raise ValueError(f"unknown backend {backend!r}")


@pytest.fixture(params=BACKENDS, ids=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database, once on SQLite and once on PostgreSQL."""
    yield from _backend_url(request.param, request, tmp_path)


@pytest.fixture
def sqlite_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty SQLite database file under the test's tmp_path."""
    yield from _backend_url("sqlite", request, tmp_path)


@pytest.fixture
def pg_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty PostgreSQL database, created for this test and dropped after it."""
    yield from _backend_url("postgres", request, tmp_path)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A bankflow Engine (migrations applied) on each backend, closed after the test."""
    from bankflow import Engine

    eng = Engine(db_url, migrate=True)
    try:
        yield eng
    finally:
        eng.close()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """The shared BPMN corpus, beside the repository (``../shared/bpmn-corpus``)."""
    path = REPO_ROOT.parent / "shared" / "bpmn-corpus"
    if not path.is_dir():
        pytest.skip(f"BPMN corpus not found at {path}")
    return path
