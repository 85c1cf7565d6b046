"""``engine.signals``: broadcast a signal to every instance waiting for it, and start every
process whose start event catches it.

A signal, unlike a message, has no addressee: it reaches *all* the catch events, boundary
events and event sub-process starts waiting for its name, in every instance, and starts a
new instance of every process (latest version) with a signal start event of that name.
Nobody waiting is not an error (the signal is simply lost, as BPMN says).

Who waits is read from the subscription index (``kind = 'signal'``), never by opening
instances; each instance reached is one guarded change of its own, so a broadcast to a
thousand instances never holds one long transaction. A signal an instance *throws* travels
as a ``signal`` job (see ``engine.jobs``): the worker first splits it into one job per
waiting instance and per process to start (one transaction), then runs each of those as
its own guarded change, so a retry never delivers twice to an instance it reached.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from bankflow import _inputs
from bankflow._limits import DEFAULT_LIMITS, Limits
from bankflow.errors import InvalidState, NotFound
from bankflow.models import Instance, InstanceStatus, SignalResult
from bankflow.persistence import Database
from bankflow.persistence._jobs import JobStore, job_row
from bankflow.runtime import _spiff
from bankflow.runtime._data import check_data
from bankflow.runtime._executor import Change, Executor, Read, event

__all__ = ["Signals"]

Guard = Callable[[Connection], None]


class NotWaiting(Exception):
    """The instance stopped waiting for the signal (or stopped running) before it came:
    nothing to deliver, which for a broadcast is no failure."""


class Signals:
    def __init__(
        self, db: Database, executor: Executor, *, limits: Limits = DEFAULT_LIMITS
    ) -> None:
        self._db = db
        self._executor = executor
        self._limits = limits
        self._jobs = JobStore()

    def broadcast(
        self, name: str, *, data: dict[str, Any] | None = None, user: str | None = None
    ) -> SignalResult:
        """Deliver signal ``name`` to every instance waiting for it, ``data`` merged into
        each catching task, then start every process whose (latest version's) start event
        catches it, with ``data`` as its first variables. Each instance is one guarded
        change with a ``signal_received`` history event naming ``user``; an instance that
        stopped waiting meanwhile is skipped. A name, user or ``data`` beyond the engine's
        limits is ``InvalidData``, and nothing is sent."""
        _inputs.name(name, "name")
        if user is not None:
            _inputs.name(user, "user")
        return self.deliver(name, data=check_data(data, limits=self._limits), actor=user)

    def deliver(
        self,
        name: str,
        *,
        data: dict[str, Any],
        actor: str | None,
        exclude: str | None = None,
    ) -> SignalResult:
        """``broadcast`` after its checks; ``exclude``: an instance that must not get it
        (the one that threw it already caught it itself)."""
        with self._db.connect() as conn:
            waiting, starts = self.targets(conn, name, exclude=exclude)
        reached = []
        for instance_id in waiting:
            try:
                reached.append(self.deliver_to(instance_id, name, data, actor))
            except NotWaiting:
                continue
        started = [
            self.start(definition_id, process_key, name, data, actor)
            for definition_id, process_key, _element_id in starts
        ]
        return SignalResult(name=name, reached=tuple(reached), started=tuple(started))

    def targets(
        self, conn: Connection, name: str, *, exclude: str | None = None
    ) -> tuple[dict[str, Any], list[tuple[str, str, str]]]:
        """Running instances waiting for ``name`` (by id, the first subscription row), in
        the order they began waiting, and the processes it starts (definition id, key,
        start event)."""
        waiting: dict[str, Any] = {}
        for row in self._jobs.subscriptions(conn, name, None, kind="signal"):
            if row["status"] == InstanceStatus.RUNNING.value and row["instance_id"] != exclude:
                waiting.setdefault(row["instance_id"], row)
        starts = [
            (r["definition_id"], r["process_key"], r["element_id"])
            for r in self._jobs.start_triggers(conn, "signal")
            if r["trigger"].get("name") == name
        ]
        return waiting, sorted(set(starts), key=lambda s: (s[1], s[2]))

    def fan_out(
        self, conn: Connection, name: str, data: Any, *, exclude: str | None, now: datetime
    ) -> tuple[int, int]:
        """One ``signal`` job per instance waiting for ``name`` and per process it starts,
        written in the caller's transaction (the one taking the thrown signal's job).
        ``data`` is stored as it came (converted). Returns (instances, starts)."""
        waiting, starts = self.targets(conn, name, exclude=exclude)
        rows = []
        for instance_id, row in waiting.items():
            rows.append(
                job_row(
                    kind="signal",
                    instance_id=instance_id,
                    process_key=row["process_key"],
                    business_key=row["business_key"],
                    element_id=row["element_id"],
                    topic=name,
                    due_at=now,
                    payload={"data": data, "to": instance_id},
                    created_at=now,
                )
            )
        for definition_id, process_key, element_id in starts:
            rows.append(
                job_row(
                    kind="signal",
                    definition_id=definition_id,
                    process_key=process_key,
                    element_id=element_id,
                    topic=name,
                    due_at=now,
                    payload={"data": data, "start": definition_id},
                    created_at=now,
                )
            )
        self._jobs.insert_jobs(conn, rows)
        return len(waiting), len(starts)

    def deliver_to(
        self,
        instance_id: str,
        name: str,
        data: dict[str, Any],
        actor: str | None,
        *,
        guard: Guard | None = None,
        consumed_job: str | None = None,
    ) -> Instance:
        """One guarded change: the signal reaches everything in the instance waiting for
        it. ``NotWaiting`` when nothing there waits for it any more, or the instance is
        not running (gone, completed, failed): a broadcast skips it."""

        def run(workflow: Any) -> None:
            _spiff.deliver_signal(workflow, name, data)

        def action(read: Read) -> Change:
            waiting = [
                s for s in read.subscriptions if s["kind"] == "signal" and s["message_name"] == name
            ]
            if not waiting:
                raise NotWaiting(instance_id)
            at = self._executor.now()
            return Change(
                run=run,
                events=[
                    event(
                        read,
                        "signal_received",
                        at,
                        actor=actor,
                        element_id=s["element_id"],
                        task_id=s["task_id"],
                        data={"signal": name, "data": _spiff.convert_data(data)},
                    )
                    for s in waiting
                ],
                guard=guard,
                consumed_job=consumed_job,
            )

        try:
            return self._executor.change(action, instance_id=instance_id, actor=actor)
        except (InvalidState, NotFound) as exc:
            raise NotWaiting(instance_id) from exc

    def start(
        self,
        definition_id: str,
        process_key: str,
        name: str,
        data: dict[str, Any],
        actor: str | None,
        *,
        guard: Guard | None = None,
    ) -> Instance:
        """A new instance of the definition, its signal start event caught."""
        return self._executor.start(
            process_key,
            version=None,
            business_key=None,
            data=data,
            actor=actor,
            definition_id=definition_id,
            signal=(name, data),
            guard=guard,
        )
