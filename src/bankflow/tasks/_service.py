"""``engine.tasks``: the inbox and what people do with a task.

Queries read only the task index (never an instance's state). Every action names the
acting user; the caller passes the user's groups, and a user may act only on a task whose
candidates include them (or that is assigned to them).
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy import Connection
from sqlalchemy.engine import RowMapping

from bankflow import _inputs
from bankflow._clock import Clock
from bankflow._limits import DEFAULT_LIMITS, Limits
from bankflow.errors import AccessDenied, ConcurrencyError, InvalidState
from bankflow.models import FormField, Instance, Task
from bankflow.persistence import Database
from bankflow.persistence._runtime import RuntimeStore, TaskFilter
from bankflow.runtime import _spiff
from bankflow.runtime._data import check_data
from bankflow.runtime._executor import Change, Executor, Read, event, task_gone, task_model
from bankflow.runtime._forms import FormRegistry

__all__ = ["Tasks"]

TaskOrder = Literal["created", "due", "priority"]


class Tasks:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        executor: Executor,
        *,
        limits: Limits = DEFAULT_LIMITS,
        allow_undeclared_fields: bool = False,
    ) -> None:
        self._db = db
        self._clock = clock
        self._executor = executor
        self._limits = limits
        self._store = RuntimeStore()
        self._forms = FormRegistry(allow_undeclared_fields=allow_undeclared_fields)

    # -- queries ---------------------------------------------------------------------------

    def query(
        self,
        *,
        groups: Sequence[str] = (),
        candidate_user: str | None = None,
        assignee: str | None = None,
        unassigned: bool = False,
        process_key: str | None = None,
        business_key: str | None = None,
        instance_id: str | None = None,
        due_before: datetime | None = None,
        due_after: datetime | None = None,
        order: TaskOrder = "created",
        limit: int = 50,
        offset: int = 0,
    ) -> builtins.list[Task]:
        """Waiting human tasks. With ``groups`` and ``candidate_user`` together, tasks for
        either (a person's whole inbox). ``limit`` is at most 10,000; a filter value no task
        can have (a business key over the limit, an id that is not one) matches nothing."""
        limit, offset = _inputs.page(limit, offset)
        if order not in _ORDERS:
            raise _inputs.refused(
                "order", f"must be one of {', '.join(_ORDERS)}, not {_inputs.shown(order)}"
            )
        for field, moment in (("due_before", due_before), ("due_after", due_after)):
            if moment is not None and not isinstance(moment, datetime):
                raise _inputs.refused(field, f"must be a datetime, not {type(moment).__name__}")
        wanted = _groups(groups)
        if candidate_user is not None and not _inputs.is_name(candidate_user):
            candidate_user = None  # names no task's candidate
            if not wanted:
                return []
        if groups and not wanted and candidate_user is None:
            return []  # only groups no task can name
        if (
            any(v is not None and not _inputs.is_name(v) for v in (assignee, process_key))
            or _inputs.key_matches_nothing(business_key, self._limits)
            or (instance_id is not None and not _inputs.is_id(instance_id))
        ):
            return []
        filters = TaskFilter(
            groups=wanted,
            candidate_user=candidate_user,
            assignee=assignee,
            unassigned=unassigned,
            process_key=process_key,
            business_key=business_key,
            instance_id=instance_id,
            due_before=due_before,
            due_after=due_after,
        )
        with self._db.connect() as session:
            rows = self._store.query_tasks(
                session, filters, order=order, limit=limit, offset=offset
            )
        return [task_model(r) for r in rows]

    def get(self, task_id: str) -> Task:
        _inputs.require_id(task_id, "task")
        with self._db.connect() as session:
            return task_model(self._row(session, task_id))

    def form(self, task_id: str) -> tuple[FormField, ...]:
        """The form fields the modeller drew for this task."""
        _inputs.require_id(task_id, "task")
        read, row = self._read(task_id)
        element = read.definition.elements.get(row["element_id"])
        return element.form_fields if element is not None else ()

    def data(self, task_id: str) -> dict[str, Any]:
        """The data the task sees (what the previous steps produced)."""
        _inputs.require_id(task_id, "task")
        read, _ = self._read(task_id)
        return self._task_data(read, task_id)

    def register_model(self, process_key: str, element_id: str, model: type[BaseModel]) -> None:
        """Validate data submitted for ``element_id`` with ``model`` instead of its form."""
        self._forms.register(process_key, element_id, model)

    # -- actions ---------------------------------------------------------------------------

    def claim(self, task_id: str, *, user: str, groups: Sequence[str] = ()) -> Task:
        return self._assign(task_id, user=user, groups=groups, to=user, kind="task_claimed")

    def unclaim(self, task_id: str, *, user: str, groups: Sequence[str] = ()) -> Task:
        return self._assign(task_id, user=user, groups=groups, to=None, kind="task_unclaimed")

    def delegate(
        self, task_id: str, *, user: str, to_user: str, groups: Sequence[str] = ()
    ) -> Task:
        """Hand the task to ``to_user``, who becomes its assignee and a candidate."""
        return self._assign(task_id, user=user, groups=groups, to=to_user, kind="task_delegated")

    def complete(
        self,
        task_id: str,
        *,
        user: str,
        groups: Sequence[str] = (),
        data: dict[str, Any] | None = None,
    ) -> Instance:
        """Complete the task with ``data`` (validated first) and run on to the next wait.

        Validated by the registered model, else by the task's form: types, enum values,
        ``camunda:validation`` constraints, read-only fields sent only with their current
        value, and no field the form does not declare (unless the engine allows them).
        ``InvalidTaskData`` names every offending field, and nothing changes."""
        _inputs.require_id(task_id, "task")
        _inputs.name(user, "user")
        values = check_data(data, limits=self._limits)

        def action(read: Read) -> Change:
            row = read.tasks[task_id]
            _check_access(row, user=user, groups=groups, action="complete")
            element = read.definition.elements.get(row["element_id"])
            validated = self._forms.validate(
                task_id=task_id,
                process_key=row["process_key"],
                element_id=row["element_id"],
                form_fields=element.form_fields if element is not None else (),
                data=values,
                current=lambda: self._task_data(read, task_id),
            )
            now = self._clock.now()
            return Change(
                run=lambda workflow: _spiff.complete(workflow, task_id, validated),
                events=[
                    event(
                        read,
                        "task_completed",
                        now,
                        actor=user,
                        element_id=row["element_id"],
                        task_id=task_id,
                        data=_spiff.convert_data(validated),
                    )
                ],
                done_task_ids={task_id},
            )

        return self._executor.change(action, task_id=task_id, actor=user)

    # -- helpers ---------------------------------------------------------------------------

    def _assign(
        self, task_id: str, *, user: str, groups: Sequence[str], to: str | None, kind: str
    ) -> Task:
        _inputs.require_id(task_id, "task")
        _inputs.name(user, "user")
        if kind == "task_delegated":
            _inputs.name(to or "", "to_user")
        now = self._clock.now()
        with self._db.connect(write=True) as session:
            row = self._row(session, task_id)
            current = row["assignee"]
            if kind == "task_claimed":
                _check_access(row, user=user, groups=groups, action="claim")
                if current == user:
                    return task_model(row)
                if current is not None:
                    raise InvalidState(
                        f"task {task_id} is already claimed by {current}",
                        instance_id=row["instance_id"],
                    )
            elif kind == "task_unclaimed":
                if current is None:
                    return task_model(row)
                if current != user:
                    raise AccessDenied(
                        f"task {task_id} is claimed by {current}, not {user}",
                        task_id=task_id,
                        user=user,
                    )
            else:
                _check_access(row, user=user, groups=groups, action="delegate")
            changed = self._store.set_assignee(
                session,
                task_id,
                expected=current,
                assignee=to,
                add_user=to if kind == "task_delegated" else None,
            )
            if not changed:
                raise ConcurrencyError(
                    f"task {task_id} was claimed or changed by someone else first",
                    instance_id=row["instance_id"],
                    task_id=task_id,
                )
            data = {"assignee": to} if to is not None else None
            self._store.insert_events(
                session,
                [
                    {
                        "instance_id": row["instance_id"],
                        "process_key": row["process_key"],
                        "business_key": row["business_key"],
                        "type": kind,
                        "element_id": row["element_id"],
                        "task_id": task_id,
                        "actor": user,
                        "at": now,
                        "data": data,
                    }
                ],
            )
            return task_model(self._row(session, task_id))

    def _row(self, conn: Connection, task_id: str) -> RowMapping:
        row = self._store.task(conn, task_id)
        if row is None:
            raise task_gone(self._store, conn, task_id)
        return row

    def _task_data(self, read: Read, task_id: str) -> dict[str, Any]:
        """The task's data in the state ``read`` saw (loaded afresh: the cached workflow
        object belongs to the executor)."""
        workflow = _spiff.load_state(
            read.row["state"],
            read.definition.runnable,
            self._executor.script_engine,
            state_format=read.row["state_format"],
        )
        return dict(_spiff.task_data(workflow, task_id))

    def _read(self, task_id: str) -> tuple[Read, RowMapping]:
        read = self._executor.read_task(task_id)
        return read, read.tasks[task_id]


_ORDERS: tuple[str, ...] = ("created", "due", "priority")
_MAX_GROUPS = 1_000


def _groups(groups: Sequence[str]) -> tuple[str, ...]:
    """The groups a query walks: at most 1,000, as text (a string is not a list of
    groups); a group no task can name is left out."""
    if isinstance(groups, str) or not isinstance(groups, Sequence | set | frozenset):
        raise _inputs.refused(
            "groups", f"must be a list of group names, not {type(groups).__name__}"
        )
    if len(groups) > _MAX_GROUPS:
        raise _inputs.refused("groups", f"has {len(groups):,} groups; the limit is {_MAX_GROUPS:,}")
    return tuple(g for g in groups if _inputs.is_name(g))


def _check_access(row: RowMapping, *, user: str, groups: Sequence[str], action: str) -> None:
    assignee = row["assignee"]
    if assignee is not None and assignee != user and action != "claim":
        raise AccessDenied(
            f"{user} may not {action} task {row['id']} ({row['element_id']}): it is "
            f"assigned to {assignee}",
            task_id=row["id"],
            user=user,
        )
    allowed = (
        assignee == user
        or user in row["candidate_users"]
        or bool(set(groups) & set(row["candidate_groups"]))
    )
    if not allowed:
        who = ", ".join(row["candidate_groups"] + row["candidate_users"]) or "nobody"
        raise AccessDenied(
            f"{user} may not {action} task {row['id']} ({row['element_id']}): it is for {who}",
            task_id=row["id"],
            user=user,
        )
