"""``engine.messages``: deliver a message to the instance waiting for it, or start one.

Waiting tasks are found through the subscription index (message name, business key), never
by opening instances; the delivery itself is one guarded change of the chosen instance.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection

from bankflow import _inputs
from bankflow._limits import DEFAULT_LIMITS, Limits
from bankflow.errors import ConcurrencyError, CorrelationError
from bankflow.models import Instance, InstanceStatus
from bankflow.persistence import Database
from bankflow.persistence._jobs import JobStore
from bankflow.runtime import _spiff
from bankflow.runtime._data import check_data
from bankflow.runtime._executor import Change, Executor, Read, event

__all__ = ["Messages"]

Guard = Callable[[Connection], None]


class Messages:
    def __init__(
        self, db: Database, executor: Executor, *, limits: Limits = DEFAULT_LIMITS
    ) -> None:
        self._db = db
        self._executor = executor
        self._limits = limits
        self._jobs = JobStore()

    def correlate(
        self,
        name: str,
        *,
        business_key: str | None = None,
        correlation: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
        all: bool = False,
        user: str | None = None,
    ) -> list[Instance]:
        """Deliver message ``name`` to the one instance waiting for it (narrowed by
        business key and by ``correlation``: variables the instance must hold), with
        ``data`` merged into the catching task. With nobody waiting, a process whose start
        event catches the message is started (with ``business_key`` and ``data``).

        Zero matches, or several without ``all=True`` (broadcast), raise
        ``CorrelationError`` and change nothing. A name, business key, user, ``data`` or
        ``correlation`` beyond the engine's limits is ``InvalidData``.
        """
        _inputs.name(name, "name")
        business_key = _inputs.business_key(business_key, self._limits)
        if user is not None:
            _inputs.name(user, "user")
        if correlation is not None:
            correlation = check_data(correlation, what="correlation", limits=self._limits)
        return self.deliver(
            name,
            business_key=business_key,
            correlation=correlation,
            data=check_data(data, limits=self._limits),
            broadcast=all,
            actor=user,
        )

    def deliver(
        self,
        name: str,
        *,
        business_key: str | None,
        correlation: dict[str, Any] | None,
        data: dict[str, Any],
        broadcast: bool,
        actor: str | None,
        guard: Guard | None = None,
    ) -> list[Instance]:
        with self._db.connect() as conn:
            waiting = self._jobs.subscriptions(conn, name, business_key)
            instance_ids = list(
                dict.fromkeys(
                    s["instance_id"]
                    for s in waiting
                    if s["status"] == InstanceStatus.RUNNING.value
                    and _matches(_spiff.restore_data(s["data"]), correlation)
                )
            )
            starts = [] if instance_ids else self._starts(conn, name)
        where = f" with business key {business_key!r}" if business_key is not None else ""
        if correlation:
            where += f" and {correlation}"
        if len(instance_ids) > 1 and not broadcast:
            raise CorrelationError(
                f"message {name!r}{where} matches {len(instance_ids)} waiting instances "
                f"({', '.join(instance_ids[:5])}); narrow it with a business key or "
                "correlation, or broadcast it to all",
                message_name=name,
                instance_ids=tuple(instance_ids),
            )
        if instance_ids:
            delivered = []
            for index, instance_id in enumerate(instance_ids):
                delivered.append(
                    self._deliver_to(instance_id, name, data, actor, guard if index == 0 else None)
                )
            return delivered
        if len(starts) == 1:
            definition_id, process_key = starts[0]
            instance = self._executor.start(
                process_key,
                version=None,
                business_key=business_key,
                data=data,
                actor=actor,
                definition_id=definition_id,
                message=(name, data),
                guard=guard,
            )
            return [instance]
        if len(starts) > 1:
            keys = ", ".join(sorted(k for _, k in starts))
            raise CorrelationError(
                f"message {name!r} starts several processes ({keys}); a message start "
                "event name must be unique",
                message_name=name,
            )
        raise CorrelationError(
            f"no instance is waiting for message {name!r}{where} and no process starts with it",
            message_name=name,
        )

    def _starts(self, conn: Connection, name: str) -> list[tuple[str, str]]:
        # Once per process: two events after one instantiating gateway may catch it.
        return list(
            dict.fromkeys(
                (r["definition_id"], r["process_key"])
                for r in self._jobs.start_triggers(conn, "message")
                if r["trigger"].get("name") == name
            )
        )

    def _deliver_to(
        self,
        instance_id: str,
        name: str,
        data: dict[str, Any],
        actor: str | None,
        guard: Guard | None,
    ) -> Instance:
        def action(read: Read) -> Change:
            waiting = [
                s
                for s in read.subscriptions
                if s["kind"] == "message" and s["message_name"] == name
            ]
            if not waiting:
                raise ConcurrencyError(
                    f"instance {instance_id} stopped waiting for message {name!r} while it "
                    "was being delivered",
                    instance_id=instance_id,
                )
            at = self._executor.now()
            return Change(
                run=lambda workflow: _deliver(workflow, name, data),
                events=[
                    event(
                        read,
                        "message_received",
                        at,
                        actor=actor,
                        element_id=waiting[0]["element_id"],
                        task_id=waiting[0]["task_id"],
                        data={"message": name, "data": _spiff.convert_data(data)},
                    )
                ],
                guard=guard,
            )

        return self._executor.change(action, instance_id=instance_id, actor=actor)


def _deliver(workflow: Any, name: str, data: dict[str, Any]) -> None:
    _spiff.deliver_message(workflow, name, data)


def _matches(values: dict[str, Any], correlation: dict[str, Any] | None) -> bool:
    return all(values.get(key) == value for key, value in (correlation or {}).items())
