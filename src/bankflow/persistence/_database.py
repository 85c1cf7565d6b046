"""Opening the database, the schema's migrations, and the one-transaction-per-operation
rule every service follows."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, create_engine, event, text
from sqlalchemy.engine import Engine as SAEngine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from bankflow.errors import ConfigurationError, DatabaseError

__all__ = ["Database"]

# One advisory-lock key so concurrent upgrades of one PostgreSQL database take turns.
_MIGRATION_LOCK = 7_142_901
# Alembic keeps the running migration context in module globals: two threads upgrading at
# once (two Engines opened in parallel) broke each other with a KeyError. One at a time.
_UPGRADING = threading.Lock()


def _alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    location = resources.files("bankflow.persistence") / "migrations"
    config.set_main_option("script_location", str(location))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own is deferred and
    # lazy), so write transactions can take the write lock up front.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _describe(exc: SQLAlchemyError) -> str:
    """One line for a person: the driver's first line, without SQLAlchemy's SQL dump."""
    cause = getattr(exc, "orig", None) or exc
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[0] if text else ''}"


def _sqlite_begin(connection: Connection) -> None:
    write = connection.get_execution_options().get("bankflow_write", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


class Database:
    """A SQLAlchemy engine plus the session factory the services share."""

    def __init__(self, url: str) -> None:
        try:
            parsed = make_url(url)
            # bankflow ends every transaction itself (COMMIT or ROLLBACK): skip the pool's
            # extra rollback on every check-in, a measurable cost per call on SQLite.
            options: dict[str, Any] = {}
            if parsed.get_backend_name() == "sqlite":
                options["pool_reset_on_return"] = None
            self.engine: SAEngine = create_engine(parsed, **options)
        except (ArgumentError, NoSuchModuleError, ImportError) as exc:
            raise ConfigurationError(f"cannot use database URL {url!r}: {exc}") from exc
        self.url = url
        self.dialect = self.engine.dialect.name
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._write_engine = self.engine.execution_options(bankflow_write=True)
        # Reads that must agree with each other (an instance row and its task rows) see one
        # snapshot: PostgreSQL's default READ COMMITTED gives each statement its own, and a
        # task completed between two of them surfaced as a bare KeyError. SQLite's WAL
        # transaction is a snapshot already.
        self._snapshot_engine = (
            self.engine.execution_options(isolation_level="REPEATABLE READ")
            if self.dialect == "postgresql"
            else self.engine
        )
        self._write_sessions = sessionmaker(self._write_engine, expire_on_commit=False)

    @contextmanager
    def transaction(self, *, write: bool = False) -> Iterator[Session]:
        """One unit of work: everything inside commits together or not at all.

        ``write`` transactions on SQLite begin IMMEDIATE, taking the write lock before the
        first read, so two writers queue instead of failing on a stale snapshot.
        """
        session = (self._write_sessions if write else self._sessions)()
        try:
            with session.begin():
                yield session
        except SQLAlchemyError as exc:
            raise DatabaseError(f"database error: {_describe(exc)}") from exc
        finally:
            session.close()

    @contextmanager
    def connect(self, *, write: bool = False, snapshot: bool = False) -> Iterator[Connection]:
        """A Core connection in one transaction: the runtime's hot path skips the ORM.

        ``snapshot``: every statement of the transaction reads the same snapshot.
        """
        engine = self._write_engine if write else self._snapshot_engine if snapshot else self.engine
        try:
            with engine.begin() as connection:
                yield connection
        except SQLAlchemyError as exc:
            raise DatabaseError(f"database error: {_describe(exc)}") from exc

    def head_revision(self) -> str | None:
        return ScriptDirectory.from_config(_alembic_config()).get_current_head()

    def current_revision(self) -> str | None:
        try:
            with self.engine.connect() as connection:
                return MigrationContext.configure(connection).get_current_revision()
        except OperationalError as exc:
            raise DatabaseError(
                f"cannot open database {self._safe_url()}: {_describe(exc)}"
            ) from exc

    def upgrade(self) -> str | None:
        """Apply every pending migration; safe to run from several processes at once."""
        try:
            with _UPGRADING, self.engine.begin() as connection:
                if self.dialect == "postgresql":
                    connection.execute(
                        text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK}
                    )
                command.upgrade(_alembic_config(connection), "head")
        except OperationalError as exc:
            raise DatabaseError(
                f"cannot open database {self._safe_url()}: {_describe(exc)}"
            ) from exc
        return self.head_revision()

    def require_current(self) -> None:
        current, head = self.current_revision(), self.head_revision()
        if current != head:
            raise DatabaseError(
                f"database schema is at revision {current or 'none'}, this bankflow needs "
                f"{head}: run `bankflow --db URL db upgrade`"
            )

    def _safe_url(self) -> str:
        return make_url(self.url).render_as_string(hide_password=True)

    def close(self) -> None:
        self.engine.dispose()
