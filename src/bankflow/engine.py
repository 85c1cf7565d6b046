"""The engine facade: one object a service embeds, holding the database and the clock."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from datetime import timedelta

from bankflow._clock import Clock, SystemClock
from bankflow._limits import Limits, limits_from_env
from bankflow.definitions import Definitions
from bankflow.errors import InvalidData
from bankflow.history import History
from bankflow.jobs import ExternalTasks, Incidents, Jobs, Worker
from bankflow.jobs._service import DEFAULT_LOCK
from bankflow.jobs._worker import DEFAULT_GRACE
from bankflow.models import FieldError, JobOutcome
from bankflow.persistence import Database
from bankflow.runtime import Instances, Messages, Signals
from bankflow.runtime._catalog import Catalog
from bankflow.runtime._executor import Executor
from bankflow.services import ServiceRegistry
from bankflow.tasks import Tasks

__all__ = ["DEFAULT_DATABASE_URL", "Engine", "database_url"]

DEFAULT_DATABASE_URL = "sqlite:///bankflow.db"


def database_url(url: str | None = None) -> str:
    """The URL given, else ``BANKFLOW_DATABASE_URL``, else the embedded SQLite file."""
    return url or os.environ.get("BANKFLOW_DATABASE_URL") or DEFAULT_DATABASE_URL


class Engine:
    """Open a bankflow database and expose its services by noun.

    ``migrate``: ``None`` upgrades an embedded SQLite database automatically and requires
    a server database to be current (``bankflow db upgrade`` is a deliberate step there);
    ``True`` always upgrades; ``False`` only checks. ``cache_size`` bounds how many
    workflow objects stay in memory between calls (0 turns the cache off). ``limits``
    bounds what inputs, steps and deployed files may cost (see ``bankflow.Limits``;
    default: ``BANKFLOW_LIMITS`` over the built-in defaults). ``allow_undeclared_fields``
    lets a task whose form declares fields be completed with other fields too (merged into
    the process data as they are); by default they are refused, naming them, because a key
    no form asked for would silently become a process variable.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        clock: Clock | None = None,
        migrate: bool | None = None,
        cache_size: int = 1024,
        limits: Limits | None = None,
        allow_undeclared_fields: bool = False,
    ) -> None:
        self.url = database_url(url)
        self.limits: Limits = limits or limits_from_env()
        self.clock: Clock = clock or SystemClock()
        self._db = Database(self.url)
        try:
            if migrate or (migrate is None and self._db.dialect == "sqlite"):
                self._db.upgrade()
            else:
                self._db.require_current()
        except BaseException:
            self._db.close()
            raise
        self.services = ServiceRegistry()
        self.definitions = Definitions(
            self._db, self.clock, services=self.services, limits=self.limits
        )
        executor = Executor(
            self._db,
            self.clock,
            Catalog(self._db),
            cache_size=cache_size,
            services=self.services,
            limits=self.limits,
        )
        self.instances = Instances(self._db, self.clock, executor, limits=self.limits)
        self.tasks = Tasks(
            self._db,
            self.clock,
            executor,
            limits=self.limits,
            allow_undeclared_fields=allow_undeclared_fields,
        )
        self.history = History(self._db)
        self.messages = Messages(self._db, executor, limits=self.limits)
        self.signals = Signals(self._db, executor, limits=self.limits)
        self.jobs = Jobs(
            self._db,
            self.clock,
            executor,
            self.messages,
            self.services,
            limits=self.limits,
            signals=self.signals,
        )
        self.external = ExternalTasks(self._db, self.clock, executor, self.jobs)
        self.incidents = Incidents(self._db, self.instances, self.jobs)

    def ids_starting_with(self, kind: str, prefix: str, *, limit: int = 11) -> list[str]:
        """Up to ``limit`` ids of ``kind`` (``instance``, ``task``, ``external task``,
        ``incident``, ``job``) that start with ``prefix`` (hex digits and dashes): how a
        caller lets people type a unique prefix of an id, as git does."""
        from bankflow.persistence._ids import ids_with_prefix

        if re.fullmatch(r"[0-9a-f-]+", prefix) is None:
            raise InvalidData(
                "an id prefix holds hex digits and dashes only",
                errors=(FieldError(field="prefix", message=f"{prefix!r} is no id prefix"),),
            )
        with self._db.connect() as conn:
            return ids_with_prefix(conn, kind, prefix, limit=limit)

    def worker(
        self,
        *,
        worker_id: str | None = None,
        lock_duration: timedelta = DEFAULT_LOCK,
        poll_interval: float = 1.0,
        batch: int = 20,
        on_outcome: Callable[[JobOutcome], None] | None = None,
        on_error: Callable[[str], None] | None = None,
        grace: float = DEFAULT_GRACE,
    ) -> Worker:
        """A worker over this engine's database and service handlers: ``run()`` until
        ``stop()``, or ``run(once=True, now=...)``. A step still running ``grace``
        seconds after ``stop()`` is interrupted (nothing of it written, its job given
        back)."""
        return Worker(
            self._db,
            self.clock,
            self.jobs,
            worker_id=worker_id,
            lock_duration=lock_duration,
            poll_interval=poll_interval,
            batch=batch,
            on_outcome=on_outcome,
            on_error=on_error,
            grace=grace,
        )

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
