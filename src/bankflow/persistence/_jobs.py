"""Queries for jobs, message and signal subscriptions, and workers.

Claiming is the one place the two databases differ: PostgreSQL locks the due rows it takes
with ``FOR UPDATE SKIP LOCKED`` so many workers split the work without waiting on each
other; SQLite has one writer at a time (write transactions begin IMMEDIATE), so a plain
select-then-update inside the write transaction is already exclusive.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Table,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import RowMapping
from sqlalchemy.sql.elements import ColumnElement

from bankflow._timing import DEFAULT_RETRIES
from bankflow.persistence._schema import (
    ElementRow,
    InstanceRow,
    JobRow,
    ProcessDefinitionRow,
    SubscriptionRow,
    WorkerRow,
)

__all__ = ["INSTANCE_KINDS", "JobStore", "job_row"]

_job: Table = JobRow.__table__  # type: ignore[assignment]
_subscription: Table = SubscriptionRow.__table__  # type: ignore[assignment]
_worker: Table = WorkerRow.__table__  # type: ignore[assignment]
_instance: Table = InstanceRow.__table__  # type: ignore[assignment]

# Jobs that mirror what an instance waits for; kept in line with its state on every change.
INSTANCE_KINDS = ("timer", "service", "external")

_SELECT_JOBS_OF = select(_job).where(_job.c.instance_id == bindparam("b_id"))
_SELECT_SUBSCRIPTIONS_OF = select(_subscription).where(
    _subscription.c.instance_id == bindparam("b_id")
)
_INSERT_JOB = insert(_job)
_DELETE_JOB = delete(_job).where(_job.c.id == bindparam("b_id"))
_INSERT_SUBSCRIPTION = insert(_subscription)
_DELETE_SUBSCRIPTION = delete(_subscription).where(
    _subscription.c.task_id == bindparam("b_id"),
    _subscription.c.kind == bindparam("b_kind"),
    _subscription.c.message_name == bindparam("b_name"),
)


def job_row(
    *, kind: str, process_key: str, due_at: datetime, created_at: datetime, **values: Any
) -> dict[str, Any]:
    """A new job's column values, defaults filled in."""
    row: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "kind": kind,
        "status": "ready",
        "instance_id": None,
        "definition_id": None,
        "process_key": process_key,
        "business_key": None,
        "element_id": None,
        "task_id": None,
        "topic": None,
        "due_at": due_at,
        "lock_owner": None,
        "lock_expires_at": None,
        "attempts": 0,
        "retries": DEFAULT_RETRIES,
        "retry_cycle": None,
        "last_error": None,
        "payload": None,
        "created_at": created_at,
    }
    unknown = set(values) - set(row)
    if unknown:
        raise TypeError(f"unknown job columns: {sorted(unknown)}")
    row.update(values)
    return row


def _claimable(kinds: Sequence[str], handled: Sequence[str], now: datetime) -> ColumnElement[bool]:
    """Ready jobs of ``kinds``, or service and external jobs whose topic is in ``handled``,
    that nobody holds a lock on at ``now``."""
    which: ColumnElement[bool] = _job.c.kind.in_(kinds)
    if handled:
        which = or_(
            which, and_(_job.c.kind.in_(("service", "external")), _job.c.topic.in_(handled))
        )
    return and_(
        _job.c.status == "ready",
        which,
        or_(_job.c.lock_expires_at.is_(None), _job.c.lock_expires_at < now),
    )


class JobStore:
    """Stateless: every method works inside the caller's transaction."""

    # -- per instance, written with its state ---------------------------------------------

    def jobs_of(self, conn: Connection, instance_id: str) -> list[RowMapping]:
        return list(conn.execute(_SELECT_JOBS_OF, {"b_id": instance_id}).mappings())

    def subscriptions_of(self, conn: Connection, instance_id: str) -> list[RowMapping]:
        return list(conn.execute(_SELECT_SUBSCRIPTIONS_OF, {"b_id": instance_id}).mappings())

    def insert_jobs(self, conn: Connection, jobs: Sequence[dict[str, Any]]) -> None:
        if jobs:
            conn.execute(_INSERT_JOB, list(jobs))

    def delete_jobs(self, conn: Connection, job_ids: Iterable[str]) -> None:
        ids = [{"b_id": job_id} for job_id in job_ids]
        if ids:
            conn.execute(_DELETE_JOB, ids)

    def update_job(self, conn: Connection, job_id: str, values: dict[str, Any]) -> None:
        conn.execute(update(_job).where(_job.c.id == job_id).values(**values))

    def insert_subscriptions(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            conn.execute(_INSERT_SUBSCRIPTION, list(rows))

    def delete_subscriptions(self, conn: Connection, keys: Iterable[tuple[str, str, str]]) -> None:
        """Delete by (task id, kind, message or signal name)."""
        ids = [{"b_id": task_id, "b_kind": kind, "b_name": name} for task_id, kind, name in keys]
        if ids:
            conn.execute(_DELETE_SUBSCRIPTION, ids)

    # -- claiming ---------------------------------------------------------------------------

    def claim(
        self,
        conn: Connection,
        *,
        kinds: Sequence[str],
        now: datetime,
        owner: str,
        until: datetime,
        limit: int,
        handled: Sequence[str] = (),
        topics: Sequence[str] | None = None,
    ) -> list[RowMapping]:
        """Lock up to ``limit`` due jobs for ``owner`` until ``until``, earliest first:
        jobs of ``kinds``, plus service and external jobs whose topic is in ``handled``
        (a worker only takes calls it has a handler for)."""
        query = (
            select(_job.c.id)
            .where(_claimable(kinds, handled, now), _job.c.due_at <= now)
            .order_by(_job.c.due_at, _job.c.id)
            .limit(limit)
        )
        if topics is not None:
            query = query.where(_job.c.topic.in_(topics))
        if conn.dialect.name == "postgresql":
            # One statement, one round trip: lock the due rows nobody else has locked and
            # stamp them in the same UPDATE. MATERIALIZED: the locking select runs exactly
            # once, whatever plan the UPDATE gets (a subquery may be rescanned).
            due = query.with_for_update(skip_locked=True).cte("due").prefix_with("MATERIALIZED")
            claimed = conn.execute(
                update(_job)
                .where(_job.c.id.in_(select(due.c.id)))
                .values(lock_owner=owner, lock_expires_at=until)
                .returning(*_job.c)
            )
            return sorted(claimed.mappings(), key=lambda row: (row["due_at"], row["id"]))
        ids = list(conn.scalars(query))
        if not ids:
            return []
        conn.execute(
            update(_job).where(_job.c.id.in_(ids)).values(lock_owner=owner, lock_expires_at=until)
        )
        found = conn.execute(
            select(_job).where(_job.c.id.in_(ids)).order_by(_job.c.due_at, _job.c.id)
        )
        return list(found.mappings())

    def job(self, conn: Connection, job_id: str) -> RowMapping | None:
        return conn.execute(select(_job).where(_job.c.id == job_id)).mappings().one_or_none()

    def consume(self, conn: Connection, job_id: str, owner: str) -> bool:
        """Delete a job that is done, only while ``owner`` still holds it."""
        result = conn.execute(delete(_job).where(_job.c.id == job_id, _job.c.lock_owner == owner))
        return bool(result.rowcount == 1)

    def release(self, conn: Connection, job_id: str, owner: str, values: dict[str, Any]) -> bool:
        """Unlock a job (with new due time, attempts, error...) if ``owner`` still holds it."""
        result = conn.execute(
            update(_job)
            .where(_job.c.id == job_id, _job.c.lock_owner == owner)
            .values(lock_owner=None, lock_expires_at=None, **values)
        )
        return bool(result.rowcount == 1)

    def extend(self, conn: Connection, owner: str, until: datetime) -> int:
        """Heartbeat: push out the locks of every job ``owner`` holds."""
        result = conn.execute(
            update(_job).where(_job.c.lock_owner == owner).values(lock_expires_at=until)
        )
        return int(result.rowcount)

    def release_owned(self, conn: Connection, owner: str) -> int:
        """Unlock every job ``owner`` holds (a worker with nothing in hand)."""
        result = conn.execute(
            update(_job)
            .where(_job.c.lock_owner == owner)
            .values(lock_owner=None, lock_expires_at=None)
        )
        return int(result.rowcount)

    def next_due(
        self, conn: Connection, *, kinds: Sequence[str], handled: Sequence[str], now: datetime
    ) -> datetime | None:
        """When the next job ``claim`` could take (same ``kinds`` and ``handled``) is due,
        due or not: jobs another worker holds at ``now`` do not count."""
        value: datetime | None = conn.scalar(
            select(func.min(_job.c.due_at)).where(_claimable(kinds, handled, now))
        )
        return value

    def list_jobs(
        self,
        conn: Connection,
        *,
        kinds: Sequence[str] | None = None,
        status: str | None = None,
        instance_id: str | None = None,
        topic: str | None = None,
        due_before: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[RowMapping]:
        query = select(_job)
        if kinds is not None:
            query = query.where(_job.c.kind.in_(kinds))
        if status is not None:
            query = query.where(_job.c.status == status)
        if instance_id is not None:
            query = query.where(_job.c.instance_id == instance_id)
        if topic is not None:
            query = query.where(_job.c.topic == topic)
        if due_before is not None:
            query = query.where(_job.c.due_at <= due_before)
        query = query.order_by(_job.c.due_at, _job.c.id).limit(limit).offset(offset)
        return list(conn.execute(query).mappings())

    def start_timer_jobs(self, conn: Connection, process_key: str) -> list[RowMapping]:
        query = select(_job).where(_job.c.kind == "start_timer", _job.c.process_key == process_key)
        return list(conn.execute(query).mappings())

    # -- messages ---------------------------------------------------------------------------

    def subscriptions(
        self, conn: Connection, name: str, business_key: str | None, *, kind: str = "message"
    ) -> list[RowMapping]:
        """Tasks waiting for message (or, ``kind="signal"``, signal) ``name``, with their
        instance's status and data."""
        query = (
            select(
                _subscription,
                _instance.c.status,
                _instance.c.data,
            )
            .join(_instance, _instance.c.id == _subscription.c.instance_id)
            .where(_subscription.c.kind == kind, _subscription.c.message_name == name)
            .order_by(_subscription.c.created_at, _subscription.c.task_id)
        )
        if business_key is not None:
            query = query.where(_subscription.c.business_key == business_key)
        return list(conn.execute(query).mappings())

    def start_triggers(self, conn: Connection, kind: str) -> list[RowMapping]:
        """What starts a process on a ``kind`` trigger, in the latest version of every
        process."""
        latest = (
            select(
                ProcessDefinitionRow.key.label("key"),
                func.max(ProcessDefinitionRow.version).label("version"),
            )
            .group_by(ProcessDefinitionRow.key)
            .subquery()
        )
        query = (
            select(
                ProcessDefinitionRow.id.label("definition_id"),
                ProcessDefinitionRow.key.label("process_key"),
                ElementRow.element_id,
                ElementRow.trigger,
            )
            .join(ElementRow, ElementRow.definition_id == ProcessDefinitionRow.id)
            .join(
                latest,
                (latest.c.key == ProcessDefinitionRow.key)
                & (latest.c.version == ProcessDefinitionRow.version),
            )
            # Only what starts a process has a trigger: start events, and instantiating
            # receive tasks and the message events after an instantiating gateway.
            .where(ElementRow.trigger.is_not(None))
        )
        return [
            r for r in conn.execute(query).mappings() if (r["trigger"] or {}).get("kind") == kind
        ]

    # -- workers ----------------------------------------------------------------------------

    def register_worker(self, conn: Connection, values: dict[str, Any]) -> None:
        conn.execute(delete(_worker).where(_worker.c.id == values["id"]))
        conn.execute(insert(_worker), values)

    def beat(self, conn: Connection, worker_id: str, now: datetime) -> None:
        conn.execute(update(_worker).where(_worker.c.id == worker_id).values(heartbeat_at=now))

    def stop_worker(self, conn: Connection, worker_id: str, now: datetime) -> None:
        conn.execute(
            update(_worker)
            .where(_worker.c.id == worker_id)
            .values(stopped_at=now, heartbeat_at=now)
        )
