"""``engine.external``: Camunda's external-task pattern for systems outside Python.

A service task with ``camunda:type="external"`` and no local handler waits as a job of
kind ``external``; a remote worker fetches and locks a batch by topic, does the work and
reports back (complete, fail with retries, BPMN error, extend the lock). Every report is
accepted only from the worker holding the lock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from bankflow._clock import Clock
from bankflow.errors import BpmnError, ConcurrencyError, NotFound
from bankflow.jobs._service import Jobs
from bankflow.models import ExternalTask, Instance
from bankflow.persistence import Database
from bankflow.persistence._jobs import JobStore
from bankflow.runtime._data import check_data
from bankflow.runtime._executor import Executor

__all__ = ["ExternalTasks"]


def _duration(value: timedelta | float) -> timedelta:
    return value if isinstance(value, timedelta) else timedelta(seconds=float(value))


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
        ``lock_duration`` in seconds or a timedelta."""
        now = self._clock.now()
        until = now + _duration(lock_duration)
        with self._db.connect(write=True) as conn:
            rows = self._store.claim(
                conn,
                kinds=("external",),
                topics=list(topics),
                now=now,
                owner=worker_id,
                until=until,
                limit=max_tasks,
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
        return self._jobs.apply_result(job, owner=worker_id, values=check_data(variables))

    def bpmn_error(
        self,
        task_id: str,
        *,
        worker_id: str,
        error_code: str,
        error_message: str | None = None,
        variables: dict[str, Any] | None = None,
    ) -> Instance:
        job = self._held(task_id, worker_id)
        return self._jobs.apply_bpmn_error(
            job,
            owner=worker_id,
            error=BpmnError(error_code, error_message),
            data=check_data(variables),
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
        fails and shows in ``engine.incidents``). Returns ``retry`` or ``incident``."""
        job = self._held(task_id, worker_id)
        return self._jobs.record_failure(
            job,
            owner=worker_id,
            message=error_message,
            error_type="ExternalTaskFailure",
            retries_left=max(retries, 0),
            retry_at=self._clock.now() + _duration(retry_timeout),
        )

    def extend_lock(
        self, task_id: str, *, worker_id: str, new_duration: timedelta | float
    ) -> datetime:
        until = self._clock.now() + _duration(new_duration)
        with self._db.connect(write=True) as conn:
            self._held_in(conn, task_id, worker_id)
            self._store.update_job(conn, task_id, {"lock_expires_at": until})
        return until

    def _held(self, task_id: str, worker_id: str) -> Mapping[Any, Any]:
        with self._db.connect() as conn:
            return self._held_in(conn, task_id, worker_id)

    def _held_in(self, conn: Any, task_id: str, worker_id: str) -> Mapping[Any, Any]:
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
