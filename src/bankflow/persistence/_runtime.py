"""Queries for instances, the human-task index and history.

Core statements, not the ORM unit of work: the runtime writes a handful of rows per API
call, and every statement on that path is spelled out here so its cost stays visible.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, and_, bindparam, delete, insert, or_, select, update
from sqlalchemy.engine import RowMapping

from bankflow.persistence._schema import (
    EventRow,
    InstanceRow,
    ProcessDefinitionRow,
    TaskCandidateRow,
    TaskRow,
)

__all__ = ["RuntimeStore", "TaskFilter"]

_instance: Table = InstanceRow.__table__  # type: ignore[assignment]
_task: Table = TaskRow.__table__  # type: ignore[assignment]
_candidate: Table = TaskCandidateRow.__table__  # type: ignore[assignment]
_event: Table = EventRow.__table__  # type: ignore[assignment]


# The hot path's statements, built once: constructing a statement costs more than running
# it on SQLite.
_INSERT_INSTANCE = insert(_instance)
_UPDATE_INSTANCE = (
    update(_instance)
    .where(_instance.c.id == bindparam("b_id"), _instance.c.revision == bindparam("b_revision"))
    .values(
        revision=bindparam("b_revision") + 1,
        status=bindparam("status"),
        state=bindparam("state"),
        state_format=bindparam("state_format"),
        data=bindparam("data"),
        failure=bindparam("failure"),
        updated_at=bindparam("updated_at"),
        ended_at=bindparam("ended_at"),
    )
)
_SELECT_INSTANCE = select(_instance).where(_instance.c.id == bindparam("b_id"))
_SELECT_INSTANCE_OF_TASK = (
    select(_instance)
    .join(_task, _task.c.instance_id == _instance.c.id)
    .where(_task.c.id == bindparam("b_task"))
)
_SELECT_TASKS_OF = (
    select(_task)
    .where(_task.c.instance_id == bindparam("b_id"))
    .order_by(_task.c.created_at, _task.c.id)
)
_INSERT_TASK = insert(_task)
_INSERT_CANDIDATE = insert(_candidate)
# Candidates go with their task (ON DELETE CASCADE).
_DELETE_TASK = delete(_task).where(_task.c.id == bindparam("b_id"))
_INSERT_EVENT = insert(_event)
_LATEST_DEFINITION = (
    select(ProcessDefinitionRow.id)
    .where(ProcessDefinitionRow.key == bindparam("b_key"))
    .order_by(ProcessDefinitionRow.version.desc())
    .limit(1)
)
_DEFINITION_VERSION = select(ProcessDefinitionRow.id).where(
    ProcessDefinitionRow.key == bindparam("b_key"),
    ProcessDefinitionRow.version == bindparam("b_version"),
)


@dataclass(frozen=True)
class TaskFilter:
    groups: Sequence[str] = ()
    candidate_user: str | None = None
    assignee: str | None = None
    unassigned: bool = False
    process_key: str | None = None
    business_key: str | None = None
    instance_id: str | None = None
    due_before: datetime | None = None
    due_after: datetime | None = None


_TASK_ORDER = {
    "created": (_task.c.created_at, _task.c.id),
    "due": (_task.c.due_at, _task.c.created_at, _task.c.id),
    "priority": (_task.c.priority.desc(), _task.c.created_at, _task.c.id),
}


class RuntimeStore:
    """Stateless: every method works inside the caller's transaction."""

    # -- instances ----------------------------------------------------------------------

    def insert_instance(self, conn: Connection, values: dict[str, Any]) -> None:
        conn.execute(_INSERT_INSTANCE, values)

    def update_instance(
        self, conn: Connection, instance_id: str, revision: int, values: dict[str, Any]
    ) -> bool:
        """Guarded by the revision the caller read: False when someone else moved first."""
        params = {"b_id": instance_id, "b_revision": revision, **values}
        return bool(conn.execute(_UPDATE_INSTANCE, params).rowcount == 1)

    def instance(self, conn: Connection, instance_id: str) -> RowMapping | None:
        return conn.execute(_SELECT_INSTANCE, {"b_id": instance_id}).mappings().one_or_none()

    def instance_of_task(self, conn: Connection, task_id: str) -> RowMapping | None:
        found = conn.execute(_SELECT_INSTANCE_OF_TASK, {"b_task": task_id})
        return found.mappings().one_or_none()

    def definition_id(self, conn: Connection, key: str, version: int | None) -> str | None:
        """The latest (or the given) version's definition id."""
        if version is None:
            return conn.scalar(_LATEST_DEFINITION, {"b_key": key})
        return conn.scalar(_DEFINITION_VERSION, {"b_key": key, "b_version": version})

    def instance_header(self, conn: Connection, instance_id: str) -> RowMapping | None:
        """Everything but the state blob."""
        columns = [c for c in _instance.c if c.name != "state"]
        return (
            conn.execute(select(*columns).where(_instance.c.id == instance_id))
            .mappings()
            .one_or_none()
        )

    def list_instances(
        self,
        conn: Connection,
        *,
        process_key: str | None,
        status: str | None,
        business_key: str | None,
        limit: int,
        offset: int,
    ) -> list[RowMapping]:
        columns = [c for c in _instance.c if c.name != "state"]
        query = select(*columns)
        if process_key is not None:
            query = query.where(_instance.c.process_key == process_key)
        if status is not None:
            query = query.where(_instance.c.status == status)
        if business_key is not None:
            query = query.where(_instance.c.business_key == business_key)
        query = query.order_by(_instance.c.started_at.desc(), _instance.c.id)
        return list(conn.execute(query.limit(limit).offset(offset)).mappings())

    def insert_tasks(self, conn: Connection, tasks: Sequence[dict[str, Any]]) -> None:
        if not tasks:
            return
        conn.execute(_INSERT_TASK, list(tasks))
        candidates = [
            {"task_id": t["id"], "kind": kind, "value": value, "created_at": t["created_at"]}
            for t in tasks
            for kind, values in (("group", t["candidate_groups"]), ("user", t["candidate_users"]))
            for value in dict.fromkeys(values)
        ]
        if candidates:
            conn.execute(_INSERT_CANDIDATE, candidates)

    def delete_tasks(self, conn: Connection, task_ids: Iterable[str]) -> None:
        ids = [{"b_id": task_id} for task_id in task_ids]
        if ids:
            conn.execute(_DELETE_TASK, ids)

    def task(self, conn: Connection, task_id: str) -> RowMapping | None:
        return conn.execute(select(_task).where(_task.c.id == task_id)).mappings().one_or_none()

    def tasks_of(self, conn: Connection, instance_id: str) -> list[RowMapping]:
        return list(conn.execute(_SELECT_TASKS_OF, {"b_id": instance_id}).mappings())

    def set_assignee(
        self,
        conn: Connection,
        task_id: str,
        *,
        expected: str | None,
        assignee: str | None,
        add_user: str | None = None,
    ) -> bool:
        """Change the assignee only if it is still ``expected`` (first claim wins)."""
        condition = _task.c.assignee.is_(None) if expected is None else _task.c.assignee == expected
        values: dict[str, Any] = {"assignee": assignee}
        if add_user is not None:
            row = self.task(conn, task_id)
            if row is not None and add_user not in row["candidate_users"]:
                values["candidate_users"] = [*row["candidate_users"], add_user]
                conn.execute(
                    insert(_candidate),
                    {
                        "task_id": task_id,
                        "kind": "user",
                        "value": add_user,
                        "created_at": row["created_at"],
                    },
                )
        result = conn.execute(
            update(_task).where(_task.c.id == task_id, condition).values(**values)
        )
        return bool(result.rowcount == 1)

    def query_tasks(
        self, conn: Connection, filters: TaskFilter, *, order: str, limit: int, offset: int
    ) -> list[RowMapping]:
        query = select(_task)
        if filters.groups or filters.candidate_user:
            # Walk the candidate index (kind, value, created_at) and stop at the page.
            conditions = []
            if filters.groups:
                conditions.append(
                    and_(_candidate.c.kind == "group", _candidate.c.value.in_(filters.groups))
                )
            if filters.candidate_user:
                conditions.append(
                    and_(_candidate.c.kind == "user", _candidate.c.value == filters.candidate_user)
                )
            matching = select(_candidate.c.task_id).where(or_(*conditions))
            if order == "created" and len(filters.groups) + bool(filters.candidate_user) == 1:
                query = (
                    select(_task)
                    .join(_candidate, _candidate.c.task_id == _task.c.id)
                    .where(conditions[0])
                )
                order_by: tuple[Any, ...] = (_candidate.c.created_at, _candidate.c.task_id)
            else:
                query = query.where(_task.c.id.in_(matching))
                order_by = _TASK_ORDER[order]
        else:
            order_by = _TASK_ORDER[order]
        if filters.assignee is not None:
            query = query.where(_task.c.assignee == filters.assignee)
        if filters.unassigned:
            query = query.where(_task.c.assignee.is_(None))
        if filters.process_key is not None:
            query = query.where(_task.c.process_key == filters.process_key)
        if filters.business_key is not None:
            query = query.where(_task.c.business_key == filters.business_key)
        if filters.instance_id is not None:
            query = query.where(_task.c.instance_id == filters.instance_id)
        if filters.due_before is not None:
            query = query.where(_task.c.due_at < filters.due_before)
        if filters.due_after is not None:
            query = query.where(_task.c.due_at > filters.due_after)
        query = query.order_by(*order_by).limit(limit).offset(offset)
        return list(conn.execute(query).mappings())

    # -- history ------------------------------------------------------------------------

    def insert_events(self, conn: Connection, events: Sequence[dict[str, Any]]) -> None:
        if events:
            conn.execute(_INSERT_EVENT, list(events))

    def task_outcome(self, conn: Connection, task_id: str) -> RowMapping | None:
        """How a task that is no longer waiting ended (completed or cancelled), if it did."""
        return (
            conn.execute(
                select(_event.c.type, _event.c.actor, _event.c.at, _event.c.instance_id)
                .where(
                    _event.c.task_id == task_id,
                    _event.c.type.in_(("task_completed", "task_cancelled")),
                )
                .limit(1)
            )
            .mappings()
            .one_or_none()
        )

    def events(
        self,
        conn: Connection,
        *,
        instance_id: str | None = None,
        actor: str | None = None,
        limit: int = 1000,
        offset: int = 0,
    ) -> list[RowMapping]:
        query = select(_event)
        if instance_id is not None:
            query = query.where(_event.c.instance_id == instance_id)
        if actor is not None:
            query = query.where(_event.c.actor == actor)
        query = query.order_by(_event.c.id).limit(limit).offset(offset)
        return list(conn.execute(query).mappings())
