"""``engine.instances``: start, look up, list, cancel and retry process instances."""

from __future__ import annotations

import builtins
from typing import Any

from bankflow import _inputs
from bankflow._clock import Clock
from bankflow._limits import DEFAULT_LIMITS, Limits
from bankflow.errors import InvalidData, InvalidState, NotFound
from bankflow.models import FailureInfo, FieldError, Instance, InstanceStatus, Wait
from bankflow.persistence import Database
from bankflow.persistence._jobs import JobStore
from bankflow.persistence._runtime import RuntimeStore
from bankflow.runtime import _spiff
from bankflow.runtime._data import check_data
from bankflow.runtime._executor import Change, Executor, Read, event, task_model

__all__ = ["Instances"]


class Instances:
    def __init__(
        self, db: Database, clock: Clock, executor: Executor, *, limits: Limits = DEFAULT_LIMITS
    ) -> None:
        self._db = db
        self._clock = clock
        self._executor = executor
        self._limits = limits
        self._store = RuntimeStore()
        self._jobs = JobStore()

    def start(
        self,
        process_key: str,
        *,
        business_key: str | None = None,
        data: dict[str, Any] | None = None,
        version: int | None = None,
        user: str | None = None,
    ) -> Instance:
        """Start the latest (or the given) version and run until a person must act.

        A failing script leaves the instance ``failed`` (see ``failure``) rather than
        raising: the instance exists and can be retried. ``data`` and ``business_key``
        beyond the engine's limits are ``InvalidData``, before anything is stored.
        """
        if not _inputs.is_name(process_key):
            raise NotFound(
                f"no process definition {_inputs.shown(process_key)} is deployed",
                kind="process",
                key=_inputs.shown(process_key),
            )
        if version is not None and (
            isinstance(version, bool) or not isinstance(version, int) or not 1 <= version < 2**31
        ):
            raise _inputs.refused("version", f"must be a whole number from 1, not {version!r:.40}")
        business_key = _inputs.business_key(business_key, self._limits)
        user = _user(user)
        values = check_data(data, limits=self._limits)
        return self._executor.start(
            process_key, version=version, business_key=business_key, data=values, actor=user
        )

    def get(self, instance_id: str) -> Instance:
        _inputs.require_id(instance_id, "instance")
        with self._db.connect() as session:
            row = self._store.instance_header(session, instance_id)
            if row is None:
                raise NotFound(f"no instance {instance_id}", kind="instance", key=instance_id)
            tasks = self._store.tasks_of(session, instance_id)
        return _model(row, tasks)

    def waits(self, instance_id: str) -> tuple[Wait, ...]:
        """Every point the instance waits at: its human tasks, then its jobs in due order
        (timers with their due time, external tasks with their lock, service calls), then
        the messages and signals it waits for. ``Instance.tasks`` names only what a person
        must do; an instance stuck on a timer or a message shows nothing there."""
        _inputs.require_id(instance_id, "instance")
        with self._db.connect() as session:
            if self._store.instance_header(session, instance_id) is None:
                raise NotFound(f"no instance {instance_id}", kind="instance", key=instance_id)
            tasks = self._store.tasks_of(session, instance_id)
            jobs = self._jobs.jobs_of(session, instance_id)
            subscriptions = self._jobs.subscriptions_of(session, instance_id)
        found = [
            Wait(
                kind="user_task",
                element_id=t.element_id,
                task_id=t.id,
                name=t.name,
                due_at=t.due_at,
            )
            for t in (task_model(r) for r in tasks)
        ]
        for j in sorted(jobs, key=lambda j: (j["due_at"], j["id"])):
            sends = j["kind"] in ("message", "signal")  # its topic is the name it carries
            found.append(
                Wait(
                    kind=f"send_{j['kind']}" if sends else j["kind"],
                    element_id=j["element_id"],
                    task_id=j["task_id"],
                    name=j["topic"] if sends else None,
                    due_at=j["due_at"],
                    topic=None if sends else j["topic"],
                    status=j["status"],
                    lock_owner=j["lock_owner"],
                    lock_expires_at=j["lock_expires_at"],
                    job_id=j["id"],
                )
            )
        for s in sorted(subscriptions, key=lambda s: (s["created_at"], s["task_id"])):
            found.append(
                Wait(
                    kind=s["kind"],
                    element_id=s["element_id"],
                    task_id=s["task_id"],
                    name=s["message_name"],
                )
            )
        return tuple(found)

    def list(
        self,
        *,
        process_key: str | None = None,
        status: InstanceStatus | str | None = None,
        business_key: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> builtins.list[Instance]:
        """Newest first; ``limit`` (at most 10,000) and ``offset`` page through the rest.
        A process key or business key no instance can have matches nothing."""
        limit, offset = _inputs.page(limit, offset)
        state = None if status is None else _status(status)
        if (process_key is not None and not _inputs.is_name(process_key)) or (
            _inputs.key_matches_nothing(business_key, self._limits)
        ):
            return []
        with self._db.connect() as session:
            rows = self._store.list_instances(
                session,
                process_key=process_key,
                status=state,
                business_key=business_key,
                limit=limit,
                offset=offset,
            )
        return [_model(r, ()) for r in rows]

    def cancel(
        self, instance_id: str, *, user: str | None = None, reason: str | None = None
    ) -> Instance:
        _inputs.require_id(instance_id, "instance")
        user = _user(user)
        if reason is not None:
            if not isinstance(reason, str):
                raise _inputs.refused("reason", f"must be text, not {type(reason).__name__}")
            check_data({"reason": reason}, what="the reason", limits=self._limits)

        def action(read: Read) -> Change:
            now = self._clock.now()
            return Change(
                run=_spiff.cancel,
                events=[
                    event(read, "instance_cancelled", now, actor=user, data={"reason": reason})
                ],
                status=InstanceStatus.CANCELLED,
            )

        return self._executor.change(
            action,
            instance_id=instance_id,
            actor=user,
            statuses=(InstanceStatus.RUNNING, InstanceStatus.FAILED),
        )

    def retry(
        self, instance_id: str, *, data: dict[str, Any] | None = None, user: str | None = None
    ) -> Instance:
        """Run the failed step again, with ``data`` merged into it (the fix)."""
        _inputs.require_id(instance_id, "instance")
        user = _user(user)
        values = check_data(data, limits=self._limits)

        def action(read: Read) -> Change:
            failure = read.row["failure"] or {}
            task_id = failure.get("task_id")
            now = self._clock.now()
            return Change(
                run=lambda workflow: _spiff.retry(workflow, task_id, values),
                events=[
                    event(
                        read,
                        "instance_retried",
                        now,
                        actor=user,
                        element_id=failure.get("element_id"),
                        task_id=task_id,
                        data=_spiff.convert_data(values),
                    )
                ],
                reset_incidents=True,
            )

        try:
            return self._executor.change(
                action,
                instance_id=instance_id,
                actor=user,
                statuses=(InstanceStatus.FAILED,),
            )
        except InvalidState:
            raise InvalidState(
                f"instance {instance_id} has not failed: nothing to retry",
                instance_id=instance_id,
            ) from None


def _user(user: str | None) -> str | None:
    return None if user is None else _inputs.name(user, "user")


def _status(status: InstanceStatus | str) -> str:
    try:
        return InstanceStatus(status).value
    except ValueError:
        known = ", ".join(s.value for s in InstanceStatus)
        raise InvalidData(
            "invalid status",
            errors=(
                FieldError(
                    field="status", message=f"must be one of {known}, not {_inputs.shown(status)}"
                ),
            ),
        ) from None


def _model(row: Any, tasks: Any) -> Instance:
    failure = row["failure"]
    return Instance(
        id=row["id"],
        process_key=row["process_key"],
        definition_id=row["definition_id"],
        business_key=row["business_key"],
        status=InstanceStatus(row["status"]),
        revision=row["revision"],
        data=_spiff.restore_data(row["data"]),
        failure=None if failure is None else FailureInfo.model_validate(failure),
        started_by=row["started_by"],
        started_at=row["started_at"],
        updated_at=row["updated_at"],
        ended_at=row["ended_at"],
        tasks=tuple(task_model(t) for t in tasks),
    )
