"""``engine.external``: Camunda's external-task pattern for systems outside Python.

A service task with ``camunda:type="external"`` and no local handler waits as a job of
kind ``external``; a remote worker fetches and locks a batch by topic, does the work and
reports back (complete, fail with retries, BPMN error, extend the lock). Every report is
accepted only from the worker holding the lock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from bankflow import _inputs
from bankflow._clock import Clock
from bankflow.errors import BpmnError, ConcurrencyError, InvalidData, NotFound
from bankflow.jobs._service import Jobs
from bankflow.models import ExternalTask, FieldError, Instance
from bankflow.persistence import Database
from bankflow.persistence._jobs import JobStore
from bankflow.runtime._data import check_data
from bankflow.runtime._executor import Executor

__all__ = ["MAX_DURATION", "MAX_RETRIES", "MAX_TASKS", "ExternalTasks"]

MAX_DURATION = timedelta(days=366)
"""The longest lock or retry delay: far beyond any real use, short of where adding it to a
date would overflow."""
MAX_TASKS = 10_000
MAX_RETRIES = 1_000


def _refused(field: str, message: str) -> InvalidData:
    return InvalidData(f"invalid {field}", errors=(FieldError(field=field, message=message),))


def _duration(value: object, field: str, *, allow_zero: bool = False) -> timedelta:
    """``value`` (a timedelta or a number of seconds) as a timedelta, or ``InvalidData``:
    NaN, infinity, a negative (for a lock also zero) duration and anything longer than
    ``MAX_DURATION`` are refused, the same on every database."""
    lowest = "0" if allow_zero else "more than 0"
    wanted = (
        f"must be a number of seconds, {lowest} and at most {MAX_DURATION.total_seconds():,.0f}"
    )
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        if isinstance(value, Decimal) and not value.is_finite():
            raise _refused(field, f"{wanted}, not {value}")
        try:
            seconds = float(value)
        except OverflowError:  # an int too large for a float
            raise _refused(field, f"{wanted}; the number given is far larger") from None
    else:
        raise _refused(field, f"{wanted} or a timedelta, not {type(value).__name__}")
    too_small = seconds < 0 or (seconds == 0 and not allow_zero)
    if not math.isfinite(seconds) or too_small or seconds > MAX_DURATION.total_seconds():
        raise _refused(field, f"{wanted}, not {seconds!r}")
    return value if isinstance(value, timedelta) else timedelta(seconds=seconds)


def _count(value: object, field: str, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise _refused(field, f"must be a whole number from 0 to {maximum:,}")
    return value


class ExternalTasks:
    def __init__(self, db: Database, clock: Clock, executor: Executor, jobs: Jobs) -> None:
        self._db = db
        self._clock = clock
        self._executor = executor
        self._jobs = jobs
        self._store = JobStore()

    def fetch_and_lock(
        self,
        topics: Sequence[str],
        *,
        worker_id: str,
        max_tasks: int = 10,
        lock_duration: timedelta | float = 300,
    ) -> list[ExternalTask]:
        """Lock up to ``max_tasks`` due external tasks of ``topics`` for ``worker_id``;
        ``lock_duration`` in seconds or a timedelta (more than 0, at most
        ``MAX_DURATION``); ``InvalidData`` otherwise."""
        lock = _duration(lock_duration, "lock_duration")
        limit = _count(max_tasks, "max_tasks", MAX_TASKS)
        _inputs.name(worker_id, "worker_id")
        if isinstance(topics, str) or not isinstance(topics, Sequence):
            raise _refused("topics", "must be a list of topic names")
        for topic in topics:
            _inputs.name(topic, "topics")
        now = self._clock.now()
        until = now + lock
        with self._db.connect(write=True) as conn:
            rows = self._store.claim(
                conn,
                kinds=("external",),
                topics=list(topics),
                now=now,
                owner=worker_id,
                until=until,
                limit=limit,
            )
        tasks = []
        for row in rows:
            variables = self._executor.task_data(row["instance_id"], row["task_id"]) or {}
            tasks.append(_model(row, variables))
        return tasks

    def complete(
        self, task_id: str, *, worker_id: str, variables: dict[str, Any] | None = None
    ) -> Instance:
        job = self._held(task_id, worker_id)
        return self._jobs.apply_result(
            job, owner=worker_id, values=check_data(variables, limits=self._jobs.limits)
        )

    def bpmn_error(
        self,
        task_id: str,
        *,
        worker_id: str,
        error_code: str,
        error_message: str | None = None,
        variables: dict[str, Any] | None = None,
    ) -> Instance:
        _inputs.name(error_code, "error_code")
        job = self._held(task_id, worker_id)
        return self._jobs.apply_bpmn_error(
            job,
            owner=worker_id,
            error=BpmnError(error_code, error_message),
            data=check_data(variables, limits=self._jobs.limits),
        )

    def fail(
        self,
        task_id: str,
        *,
        worker_id: str,
        error_message: str,
        retries: int,
        retry_timeout: timedelta | float = 0,
    ) -> str:
        """Report a failed attempt; ``retries`` left (0 raises an incident: the instance
        fails and shows in ``engine.incidents``; fewer counts as 0, more than
        ``MAX_RETRIES`` is refused). Returns ``retry`` or ``incident``."""
        delay = _duration(retry_timeout, "retry_timeout", allow_zero=True)
        if isinstance(retries, int) and not isinstance(retries, bool) and retries < 0:
            retries = 0
        retries = _count(retries, "retries", MAX_RETRIES)
        job = self._held(task_id, worker_id)
        return self._jobs.record_failure(
            job,
            owner=worker_id,
            message=error_message,
            error_type="ExternalTaskFailure",
            retries_left=retries,
            retry_at=self._clock.now() + delay,
        )

    def extend_lock(
        self, task_id: str, *, worker_id: str, new_duration: timedelta | float
    ) -> datetime:
        """Keep the lock ``new_duration`` from now (more than 0, at most ``MAX_DURATION``;
        ``InvalidData`` otherwise); returns when it now runs out."""
        until = self._clock.now() + _duration(new_duration, "new_duration")
        with self._db.connect(write=True) as conn:
            self._held_in(conn, task_id, worker_id)
            self._store.update_job(conn, task_id, {"lock_expires_at": until})
        return until

    def _held(self, task_id: str, worker_id: str) -> Mapping[Any, Any]:
        with self._db.connect() as conn:
            return self._held_in(conn, task_id, worker_id)

    def _held_in(self, conn: Any, task_id: str, worker_id: str) -> Mapping[Any, Any]:
        # Checked before any query: a lone surrogate or a megabyte id never reaches the
        # database (PostgreSQL refused it with a raw encoding error).
        _inputs.require_id(task_id, "external task")
        _inputs.name(worker_id, "worker_id")
        row = self._store.job(conn, task_id)
        if row is None or row["kind"] != "external":
            raise NotFound(f"no external task {task_id}", kind="external task", key=task_id)
        now = self._clock.now()
        expired = row["lock_expires_at"] is None or row["lock_expires_at"] < now
        if row["lock_owner"] != worker_id or expired:
            holder = row["lock_owner"] or "nobody"
            raise ConcurrencyError(
                f"external task {task_id} is not locked by {worker_id!r} (held by {holder}"
                f"{', lock expired' if expired and row['lock_owner'] else ''})",
                instance_id=row["instance_id"] or "",
            )
        return row


def _model(row: Mapping[Any, Any], variables: dict[str, Any]) -> ExternalTask:
    return ExternalTask(
        id=row["id"],
        topic=row["topic"] or "",
        worker_id=row["lock_owner"] or "",
        instance_id=row["instance_id"] or "",
        process_key=row["process_key"],
        business_key=row["business_key"],
        element_id=row["element_id"] or "",
        variables=variables,
        lock_expires_at=row["lock_expires_at"],
        retries=row["retries"],
        attempts=row["attempts"],
        error_message=row["last_error"],
    )
