"""One operation on one instance: read, change in memory, write in one guarded transaction.

Read phase, one read-only snapshot: the instance row and its task, job and subscription
rows (the workflow object comes from the in-process cache when it is at the same revision,
else from the stored state). Change: the caller's validated action runs on the
SpiffWorkflow object with *no transaction open*, so a long step (bounded by
``Limits.max_steps``) never holds the database's write lock or blocks a worker's
heartbeat. Write phase, one transaction: ``UPDATE ... WHERE id=? AND revision=?`` (zero
rows: someone else moved the instance meanwhile; the change is read and run again a few
times, then ``ConcurrencyError``, nothing written), the task index brought in line with
the workflow's ready human tasks, and the history events.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError

from bankflow._clock import Clock
from bankflow._limits import DEFAULT_LIMITS, Limits
from bankflow._timing import retries
from bankflow.errors import (
    BankflowError,
    ConcurrencyError,
    DatabaseError,
    DuplicateBusinessKey,
    InvalidData,
    InvalidState,
    NotFound,
)
from bankflow.models import FailureInfo, Instance, InstanceStatus, Task
from bankflow.persistence import Database
from bankflow.persistence._jobs import INSTANCE_KINDS, JobStore, job_row
from bankflow.persistence._runtime import RuntimeStore
from bankflow.runtime import _spiff
from bankflow.runtime._catalog import Catalog, LoadedDefinition, due_at, names, priority, resolve
from bankflow.runtime._data import check_data
from bankflow.services import ServiceRegistry

__all__ = ["Change", "Executor", "Read", "task_gone", "task_model"]


@dataclass
class Read:
    """What the read phase saw; actions validate against it before anything changes."""

    row: RowMapping
    tasks: dict[str, RowMapping]
    definition: LoadedDefinition
    jobs: list[RowMapping] = field(default_factory=list)
    subscriptions: list[RowMapping] = field(default_factory=list)


@dataclass
class Change:
    """What an action does: events it causes itself, and the workflow mutation."""

    run: Callable[[Any], None]
    events: list[dict[str, Any]] = field(default_factory=list)
    done_task_ids: set[str] = field(default_factory=set)
    status: InstanceStatus | None = None
    # Runs inside the write transaction once the instance row is updated (e.g. takes the
    # job being fired, raising ConcurrencyError when another worker already did).
    guard: Callable[[Connection], None] | None = None
    consumed_job: str | None = None
    incident_job: str | None = None
    failure: _spiff.Failure | None = None
    reset_incidents: bool = False
    # SpiffWorkflow's "now" for this change (a job fires at its due time at the earliest).
    at: datetime | None = None


Action = Callable[[Read], Change]


class _Cache:
    """Workflow objects by instance id and revision; checked out while in use, so two
    threads never mutate one object."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[str, tuple[int, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def checkout(self, instance_id: str, revision: int) -> Any | None:
        with self._lock:
            entry = self._items.pop(instance_id, None)
        if entry is not None and entry[0] == revision:
            return entry[1]
        return None

    def checkin(self, instance_id: str, revision: int, workflow: Any) -> None:
        if self._size <= 0:
            return
        with self._lock:
            self._items[instance_id] = (revision, workflow)
            self._items.move_to_end(instance_id)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


class Executor:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        catalog: Catalog,
        *,
        cache_size: int,
        services: ServiceRegistry,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self._db = db
        self._clock = clock
        self._catalog = catalog
        self._store = RuntimeStore()
        self._jobs = JobStore()
        self._cache = _Cache(cache_size)
        self.limits = limits
        self.script_engine = _spiff.ScriptEngine(services, now=clock.now, limits=limits)

    # -- start ---------------------------------------------------------------------------

    def start(
        self,
        process_key: str,
        *,
        version: int | None,
        business_key: str | None,
        data: dict[str, Any],
        actor: str | None,
        definition_id: str | None = None,
        message: tuple[str, dict[str, Any]] | None = None,
        signal: tuple[str, dict[str, Any]] | None = None,
        start_timer: bool = False,
        guard: Callable[[Connection], None] | None = None,
    ) -> Instance:
        """Start an instance; ``message`` is delivered to its message start event,
        ``signal`` to its signal start event, and ``start_timer`` fires its timer start
        event (how jobs, correlation and signals start one)."""
        if definition_id is None:
            with self._db.connect() as conn:
                definition_id = self._store.definition_id(conn, process_key, version)
        if definition_id is None:
            which = f"version {version} of " if version is not None else ""
            raise NotFound(
                f"no {which}process definition {process_key!r} is deployed",
                kind="process",
                key=process_key,
            )
        definition = self._catalog.get(definition_id)
        now = self._clock.now()
        header = {
            "id": str(uuid.uuid4()),
            "definition_id": definition_id,
            "process_key": definition.key,
            "business_key": business_key,
            "started_by": actor,
            "started_at": now,
            "revision": 0,
        }
        # SpiffWorkflow runs before the write transaction opens (see the module docstring).
        workflow, failure = self._start_workflow(
            definition, data, start_timer=start_timer, message=message, signal=signal
        )
        started = _event(
            header, "instance_started", now, actor=actor, data=_spiff.convert_data(data)
        )
        also = []
        if message is not None:
            # The element that caught it (a receive task that instantiates, ...) in history.
            also.append(
                _event(
                    header,
                    "message_received",
                    now,
                    actor=actor,
                    element_id=_spiff.message_start_element(workflow, message[0]),
                    data={"message": message[0], "data": _spiff.convert_data(message[1])},
                )
            )
        if signal is not None:
            also.append(
                _event(
                    header,
                    "signal_received",
                    now,
                    actor=actor,
                    data={"signal": signal[0], "data": _spiff.convert_data(signal[1])},
                )
            )
        try:
            instance = self._insert(
                header,
                definition,
                workflow,
                failure,
                started,
                now,
                actor=actor,
                guard=guard,
                also=also,
            )
        except _Unstorable as bad:
            workflow = _spiff.start(definition.runnable, data, self.script_engine, run=False)
            instance = self._insert(
                header, definition, workflow, bad.failure(), started, now, actor=actor, guard=guard
            )
        self._cache.checkin(instance.id, instance.revision, workflow)
        return instance

    def _insert(
        self,
        header: dict[str, Any],
        definition: LoadedDefinition,
        workflow: Any,
        failure: _spiff.Failure | None,
        started: dict[str, Any],
        now: datetime,
        *,
        actor: str | None,
        guard: Callable[[Connection], None] | None,
        also: Sequence[dict[str, Any]] = (),
    ) -> Instance:
        business_key = header["business_key"]
        try:
            with self._db.connect(write=True) as conn:
                if guard is not None:
                    guard(conn)
                return self._persist(
                    conn,
                    header,
                    definition,
                    workflow,
                    failure,
                    [started, *also],
                    {},
                    now,
                    actor=actor,
                    new=True,
                )
        except DatabaseError as exc:
            if business_key is not None and isinstance(exc.__cause__, IntegrityError):
                raise _duplicate(header["process_key"], business_key) from None
            raise

    def _start_workflow(
        self,
        definition: LoadedDefinition,
        data: dict[str, Any],
        *,
        start_timer: bool,
        message: tuple[str, dict[str, Any]] | None,
        signal: tuple[str, dict[str, Any]] | None = None,
    ) -> tuple[Any, _spiff.Failure | None]:
        with _spiff.clock(self._clock.now), _spiff.budget(self.limits.max_steps):
            try:
                workflow = _spiff.start(definition.runnable, data, self.script_engine)
            except _spiff.StepError as exc:
                return exc.workflow, exc.failure
            try:
                # By hand, a process that only has a timer start begins at once.
                _spiff.fire_start_timers(workflow, unless_started=not start_timer)
                if message is not None:
                    _spiff.deliver_message(workflow, *message, start=True)
                if signal is not None:
                    _spiff.deliver_signal(workflow, *signal, start=True)
            except _spiff.StepError as exc:
                return workflow, exc.failure
        return workflow, None

    def now(self) -> datetime:
        return self._clock.now()

    # -- reads ----------------------------------------------------------------------------

    def _load(self, row: RowMapping, definition: LoadedDefinition) -> Any:
        """The workflow an instance row stores (never SpiffWorkflow's own migrations)."""
        return _spiff.load_state(
            row["state"],
            definition.runnable,
            self.script_engine,
            state_format=row["state_format"],
        )

    def task_data(self, instance_id: str, task_id: str) -> dict[str, Any] | None:
        """A copy of one task's data (what a service handler gets), or None when the
        instance no longer has that task."""
        with self._db.connect() as conn:
            row = self._store.instance(conn, instance_id)
        if row is None:
            return None
        definition = self._catalog.get(row["definition_id"])
        workflow = self._cache.checkout(instance_id, row["revision"])
        if workflow is None:
            workflow = self._load(row, definition)
        try:
            return _spiff.task_data_of(workflow, task_id)
        finally:
            self._cache.checkin(instance_id, row["revision"], workflow)

    def read_task(self, task_id: str) -> Read:
        """The instance a waiting task belongs to."""
        with self._db.connect() as conn:
            return self._read_task(conn, task_id)

    def _read_instance(self, conn: Connection, instance_id: str) -> Read:
        row = self._store.instance(conn, instance_id)
        if row is None:
            raise NotFound(f"no instance {instance_id}", kind="instance", key=instance_id)
        return self._read(conn, row)

    def _read_task(self, conn: Connection, task_id: str) -> Read:
        row = self._store.instance_of_task(conn, task_id)
        if row is None:
            raise task_gone(self._store, conn, task_id)
        return self._read(conn, row)

    def _read(self, conn: Connection, row: RowMapping) -> Read:
        tasks = {t["id"]: t for t in self._store.tasks_of(conn, row["id"])}
        return Read(
            row=row,
            tasks=tasks,
            definition=self._catalog.get(row["definition_id"]),
            jobs=self._jobs.jobs_of(conn, row["id"]),
            subscriptions=self._jobs.subscriptions_of(conn, row["id"]),
        )

    # -- change ---------------------------------------------------------------------------

    def change(
        self,
        action: Action,
        *,
        instance_id: str | None = None,
        task_id: str | None = None,
        actor: str | None,
        statuses: Sequence[InstanceStatus] = (InstanceStatus.RUNNING,),
    ) -> Instance:
        """Read, validate and change the instance (found by id or by one of its waiting
        tasks), then write it in one guarded transaction. When someone else moved the
        instance meanwhile, the change is read, validated and run again on the new state
        (a few times) unless it already called a host's service handler."""
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                return self._change_once(
                    action, instance_id=instance_id, task_id=task_id, actor=actor, statuses=statuses
                )
            except _Moved as moved:
                if attempt == _ATTEMPTS or moved.handlers_called:
                    raise ConcurrencyError(
                        str(moved), instance_id=moved.instance_id, task_id=task_id
                    ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _change_once(
        self,
        action: Action,
        *,
        instance_id: str | None,
        task_id: str | None,
        actor: str | None,
        statuses: Sequence[InstanceStatus],
    ) -> Instance:
        with self._db.connect(snapshot=True) as conn:
            if task_id is not None:
                read = self._read_task(conn, task_id)
            else:
                read = self._read_instance(conn, instance_id or "")
        row = read.row
        status = InstanceStatus(row["status"])
        if status not in statuses:
            raise InvalidState(f"instance {row['id']} is {status.value}", instance_id=row["id"])
        change = action(read)  # validates; raises before anything changed
        workflow = self._cache.checkout(row["id"], row["revision"])
        if workflow is None:
            workflow = self._load(row, read.definition)
        now = self._clock.now()
        at = change.at if change.at is not None and change.at > now else now
        failure = change.failure
        # No transaction is open while SpiffWorkflow runs: the revision guard below is
        # what keeps two changes of one instance apart.
        with _spiff.budget(self.limits.max_steps) as spent:
            try:
                with _spiff.clock(lambda: at):
                    change.run(workflow)
            except _spiff.StepError as exc:
                failure = exc.failure
        header = {k: row[k] for k in ("id", "definition_id", "process_key", "business_key")}
        header.update(
            started_by=row["started_by"], started_at=row["started_at"], revision=row["revision"]
        )
        try:
            with self._db.connect(write=True) as conn:
                instance = self._persist(
                    conn,
                    header,
                    read.definition,
                    workflow,
                    failure,
                    change.events,
                    read.tasks,
                    now,
                    actor=actor,
                    done=change.done_task_ids,
                    status=change.status,
                    jobs=[
                        {**j, "status": "incident"} if j["id"] == change.incident_job else j
                        for j in read.jobs
                        if j["id"] != change.consumed_job
                    ],
                    subscriptions=read.subscriptions,
                    reset_incidents=change.reset_incidents,
                    guard=change.guard,
                )
        except _Moved as moved:
            moved.handlers_called = spent.handlers_called
            raise
        except _Unstorable as bad:
            # The step built a value no database can hold: keep the instance as it was
            # before the step, failed and saying why, so it can be retried, never stuck.
            workflow = self._load(row, read.definition)
            with self._db.connect(write=True) as conn:
                instance = self._persist(
                    conn,
                    header,
                    read.definition,
                    workflow,
                    bad.failure(),
                    [],
                    read.tasks,
                    now,
                    actor=actor,
                    jobs=read.jobs,
                    subscriptions=read.subscriptions,
                )
        # Only a committed change goes back to the cache; on any error the workflow object
        # (already changed in memory) is dropped and the next call reloads the stored state.
        self._cache.checkin(instance.id, instance.revision, workflow)
        return instance

    # -- write ----------------------------------------------------------------------------

    def _persist(
        self,
        conn: Connection,
        header: dict[str, Any],
        definition: LoadedDefinition,
        workflow: Any,
        failure: _spiff.Failure | None,
        events: list[dict[str, Any]],
        existing: dict[str, RowMapping],
        now: datetime,
        *,
        actor: str | None,
        new: bool = False,
        done: set[str] | None = None,
        status: InstanceStatus | None = None,
        jobs: Sequence[Any] = (),
        subscriptions: Sequence[Any] = (),
        reset_incidents: bool = False,
        guard: Callable[[Connection], None] | None = None,
    ) -> Instance:
        # Messages for other instances are taken out of the workflow before its state is
        # saved, so a later load does not throw them again.
        thrown = _spiff.thrown_messages(workflow)
        signals = _spiff.thrown_signals(workflow)
        steps = _spiff.path(workflow)
        for undone in _spiff.compensations(workflow):
            events.append(
                _event(
                    header,
                    "activity_compensated",
                    now,
                    element_id=undone.element_id,
                    task_id=undone.handler_task_id,
                    data={
                        "handler": undone.handler,
                        "activity_task_id": undone.activity_task_id,
                        "thrown_by": undone.thrown_by,
                    },
                )
            )
        try:
            payloads = [
                check_data(t.payload, what=f"message {t.name!r}", limits=self.limits)
                for t in thrown
            ]
            signal_payloads = [
                check_data(t.payload, what=f"signal {t.name!r}", limits=self.limits)
                for t in signals
            ]
            state = _spiff.dump_state(workflow)
            data = _spiff.convert_data(_spiff.current_data(workflow))
        except InvalidData as exc:
            raise _Unstorable(str(exc)) from exc
        except (ValueError, TypeError, OverflowError, RecursionError) as exc:
            raise _Unstorable(f"{type(exc).__name__}: {exc}") from exc
        if status is None:
            if failure is not None:
                status = InstanceStatus.FAILED
            elif _spiff.is_completed(workflow):
                status = InstanceStatus.COMPLETED
            else:
                status = InstanceStatus.RUNNING
        ready = [] if status == InstanceStatus.CANCELLED else _spiff.human_tasks(workflow)
        ready_ids = {h.id for h in ready}
        inserted = [
            self._task_values(header, definition, workflow, h, now)
            for h in ready
            if h.id not in existing
        ]
        removed = [task_id for task_id in existing if task_id not in ready_ids]
        cancelled = {
            task_id: _event(
                header,
                "task_cancelled",
                now,
                task_id=task_id,
                actor=actor,
                element_id=existing[task_id]["element_id"],
            )
            for task_id in removed
            if task_id not in (done or set())
        }
        created = {
            values["id"]: _event(
                header,
                "task_created",
                now,
                element_id=values["element_id"],
                task_id=values["id"],
                data={"candidate_groups": values["candidate_groups"]},
            )
            for values in inserted
        }
        path = self._path_events(header, steps, now, cancelled, created)
        # In the order the step did things: the path puts each task it took away or reached
        # where that happened; a waiting task gone without a trace there went first (the
        # step took it away on its way), a task reached without one comes last.
        events.extend(cancelled.values())
        events.extend(path)
        events.extend(created.values())
        failure_info = None
        if failure is not None:
            failure_info = FailureInfo(
                message=failure.message,
                element_id=failure.element_id,
                task_id=failure.task_id,
                error_type=failure.error_type,
                line=failure.line,
                at=now,
            )
            events.append(
                _event(
                    header,
                    "instance_failed",
                    now,
                    element_id=failure.element_id,
                    task_id=failure.task_id,
                    data=failure_info.model_dump(mode="json"),
                )
            )
        elif status == InstanceStatus.COMPLETED:
            events.append(_event(header, "instance_completed", now))
        values = {
            "status": status.value,
            "state": state,
            "state_format": _spiff.STATE_FORMAT,
            "data": data,
            "failure": None if failure_info is None else failure_info.model_dump(mode="json"),
            "updated_at": now,
            "ended_at": now if status in _ENDED else None,
        }
        revision = header["revision"]
        if new:
            self._store.insert_instance(conn, {**header, **values})
        elif not self._store.update_instance(conn, header["id"], revision, values):
            raise _Moved(
                f"instance {header['id']} was changed by someone else; nothing was "
                "changed by this call",
                instance_id=header["id"],
            )
        if guard is not None:
            # After the instance row is locked by the update: every transaction locks the
            # instance first and its jobs second, so a worker and a user never deadlock.
            guard(conn)
        self._store.delete_tasks(conn, removed)
        self._store.insert_tasks(conn, inserted)
        self._store.insert_events(conn, events)
        self._sync_waits(
            conn,
            header,
            workflow,
            status,
            jobs,
            subscriptions,
            now,
            reset=reset_incidents,
            thrown=list(zip(thrown, payloads, strict=True)),
            signals=list(zip(signals, signal_payloads, strict=True)),
        )
        new_revision = revision if new else revision + 1
        kept = [task_model(t) for task_id, t in existing.items() if task_id in ready_ids]
        tasks = sorted(kept + [task_model(t) for t in inserted], key=lambda t: (t.created_at, t.id))
        return Instance(
            id=header["id"],
            process_key=header["process_key"],
            definition_id=header["definition_id"],
            business_key=header["business_key"],
            status=status,
            revision=new_revision,
            data=_spiff.restore_data(data),
            failure=failure_info,
            started_by=header["started_by"],
            started_at=header["started_at"],
            updated_at=now,
            ended_at=values["ended_at"],
            tasks=tuple(tasks),
        )

    def _path_events(
        self,
        header: dict[str, Any],
        steps: Sequence[_spiff.Step],
        now: datetime,
        cancelled: dict[str, dict[str, Any]],
        created: dict[str, dict[str, Any]],
    ) -> list[dict[str, Any]]:
        """History events for what the step did on its way (``_spiff.Step``), in order;
        the task events the path places are taken out of ``cancelled`` and ``created``."""
        events: list[dict[str, Any]] = []
        for step in steps:
            if step.kind == "task_ready":
                found = created.pop(step.task_id, None)
            elif step.kind == "task_cancelled":
                found = cancelled.pop(step.task_id, None)
                if found is not None:
                    # An interrupting event cancels its activity, then its path starts (BPMN);
                    # SpiffWorkflow makes the path's first tasks ready before it cancels.
                    at = len(events)
                    while at and events[at - 1]["type"] == "task_created":
                        at -= 1
                    events.insert(at, found)
                continue
            else:
                data = self._change_set(step.data) if step.kind == "data_changed" else step.data
                found = _event(
                    header,
                    step.kind,
                    now,
                    element_id=step.element_id,
                    task_id=step.task_id,
                    data=data,
                )
            if found is not None:
                events.append(found)
        return events

    def _change_set(self, written: dict[str, Any] | None) -> dict[str, Any]:
        """A task's change set as history stores it: within the engine's data limits (each
        value was checked when the task set it; together they may not fit), else the names
        it set without their values."""
        written = written or {"set": {}, "removed": []}
        try:
            values = check_data(written["set"], what="a change set", limits=self.limits)
        except InvalidData:
            return {
                "set": {},
                "removed": list(written["removed"]),
                "omitted": sorted(written["set"]),
            }
        return {"set": _spiff.convert_data(values), "removed": list(written["removed"])}

    def _sync_waits(
        self,
        conn: Connection,
        header: dict[str, Any],
        workflow: Any,
        status: InstanceStatus,
        jobs: Sequence[Any],
        subscriptions: Sequence[Any],
        now: datetime,
        *,
        reset: bool,
        thrown: Sequence[tuple[_spiff.Thrown, dict[str, Any]]],
        signals: Sequence[tuple[_spiff.Thrown, dict[str, Any]]] = (),
    ) -> None:
        """Bring the job and subscription rows in line with what the workflow waits for,
        and queue the messages and signals it threw for other instances."""
        waits = [] if status in _ENDED else _spiff.waits(workflow)
        job_status = "ready" if status == InstanceStatus.RUNNING else "held"
        wanted = {(w.kind, w.task_id): w for w in waits if w.kind not in _SUBSCRIBED}
        have = {(j["kind"], j["task_id"]): j for j in jobs if j["kind"] in INSTANCE_KINDS}
        self._jobs.delete_jobs(conn, [j["id"] for key, j in have.items() if key not in wanted])
        new_jobs = []
        for key, wait in wanted.items():
            row = have.get(key)
            if row is None:
                new_jobs.append(
                    _job_values(header, wait, job_status, due=wait.due_at or now, now=now)
                )
                continue
            values: dict[str, Any] = {}
            if wait.due_at is not None and wait.due_at != row["due_at"]:
                values["due_at"] = wait.due_at
            if row["status"] == "incident" and reset:
                values.update(status=job_status, attempts=0, retries=retries(wait.retry_cycle))
                values.update(due_at=now, last_error=None, lock_owner=None, lock_expires_at=None)
            elif row["status"] in ("ready", "held") and row["status"] != job_status:
                values["status"] = job_status
            if values:
                self._jobs.update_job(conn, row["id"], values)
        for message, payload in thrown:
            new_jobs.append(
                job_row(
                    kind="message",
                    instance_id=header["id"],
                    definition_id=header["definition_id"],
                    process_key=header["process_key"],
                    business_key=header["business_key"],
                    element_id=message.element_id,
                    topic=message.name,
                    due_at=now,
                    payload={"data": _spiff.convert_data(payload)},
                    created_at=now,
                )
            )
        for signal, payload in signals:
            # Its own instance already caught it (SpiffWorkflow); the job takes it to the
            # others and to the processes it starts.
            new_jobs.append(
                job_row(
                    kind="signal",
                    instance_id=header["id"],
                    definition_id=header["definition_id"],
                    process_key=header["process_key"],
                    business_key=header["business_key"],
                    element_id=signal.element_id,
                    topic=signal.name,
                    due_at=now,
                    payload={"data": _spiff.convert_data(payload), "from": header["id"]},
                    created_at=now,
                )
            )
        self._jobs.insert_jobs(conn, new_jobs)
        wanted_subs = {(w.task_id, w.kind, w.name or ""): w for w in waits if w.kind in _SUBSCRIBED}
        have_subs = {(s["task_id"], s["kind"], s["message_name"]) for s in subscriptions}
        self._jobs.delete_subscriptions(conn, have_subs - set(wanted_subs))
        self._jobs.insert_subscriptions(
            conn,
            [
                {
                    "task_id": task_id,
                    "instance_id": header["id"],
                    "process_key": header["process_key"],
                    "business_key": header["business_key"],
                    "kind": kind,
                    "message_name": name,
                    "element_id": wait.element_id,
                    "created_at": now,
                }
                for (task_id, kind, name), wait in wanted_subs.items()
                if (task_id, kind, name) not in have_subs
            ],
        )

    def _task_values(
        self,
        header: dict[str, Any],
        definition: LoadedDefinition,
        workflow: Any,
        ready: _spiff.HumanTask,
        now: datetime,
    ) -> dict[str, Any]:
        element = definition.elements.get(ready.element_id)
        data = _spiff.task_data(workflow, ready.id)
        lane = ready.lane or (element.lane if element else None)
        groups: list[str] = []
        users: list[str] = []
        assignee = None
        due = None
        rank = priority(None, data)
        form_key = None
        if element is not None:
            groups = [g for expr in element.candidate_groups for g in names(expr, data)]
            users = [u for expr in element.candidate_users for u in names(expr, data)]
            raw_assignee = resolve(element.assignee, data)
            assignee = str(raw_assignee) if raw_assignee not in (None, "") else None
            due = due_at(element.due_date, data, now)
            rank = priority(element.priority, data)
            form_key = element.form_key
        if not groups and not users and lane:
            groups = [lane]
        return {
            "id": ready.id,
            "instance_id": header["id"],
            "definition_id": header["definition_id"],
            "process_key": header["process_key"],
            "business_key": header["business_key"],
            "element_id": ready.element_id,
            "name": ready.name,
            "lane": lane,
            "candidate_groups": groups,
            "candidate_users": users,
            "assignee": assignee,
            "priority": rank,
            "due_at": due,
            "form_key": form_key,
            "created_at": now,
        }


_ENDED = {InstanceStatus.COMPLETED, InstanceStatus.CANCELLED}

# Waits found through ``bf_subscription`` rather than a job.
_SUBSCRIBED = ("message", "signal")

# A change that finds the instance moved on is read and run again this many times in all.
_ATTEMPTS = 3


class _Unstorable(Exception):
    """The workflow holds a value its state cannot be saved with."""

    def failure(self) -> _spiff.Failure:
        return _spiff.Failure(
            message=f"the step produced data that cannot be stored ({self}); the instance "
            "was kept as it was before the step: fix the cause, then retry it",
            element_id=None,
            task_id=None,
            error_type="UnstorableData",
        )


class _Moved(ConcurrencyError):
    """The revision guard found the instance changed since it was read."""

    handlers_called = 0


def _job_values(
    header: dict[str, Any], wait: _spiff.Wait, status: str, *, due: datetime, now: datetime
) -> dict[str, Any]:
    return job_row(
        kind=wait.kind,
        status=status,
        instance_id=header["id"],
        definition_id=header["definition_id"],
        process_key=header["process_key"],
        business_key=header["business_key"],
        element_id=wait.element_id,
        task_id=wait.task_id,
        topic=wait.name,
        due_at=due,
        retries=retries(wait.retry_cycle),
        retry_cycle=wait.retry_cycle,
        created_at=now,
    )


def _duplicate(process_key: str, business_key: str) -> DuplicateBusinessKey:
    return DuplicateBusinessKey(
        f"process {process_key!r} already has an instance with business key {business_key!r}",
        process_key=process_key,
        business_key=business_key,
    )


def _event(
    header: dict[str, Any],
    kind: str,
    at: datetime,
    *,
    actor: str | None = None,
    element_id: str | None = None,
    task_id: str | None = None,
    data: Any = None,
) -> dict[str, Any]:
    return {
        "instance_id": header["id"],
        "process_key": header["process_key"],
        "business_key": header["business_key"],
        "type": kind,
        "element_id": element_id,
        "task_id": task_id,
        "actor": actor,
        "at": at,
        "data": data,
    }


def event(read: Read, kind: str, at: datetime, **kwargs: Any) -> dict[str, Any]:
    """An event row for the instance ``read`` saw."""
    return _event(dict(read.row), kind, at, **kwargs)


def task_gone(store: RuntimeStore, conn: Connection, task_id: str) -> BankflowError:
    """No waiting task with this id: say who completed or cancelled it, if anyone did."""
    ended = store.task_outcome(conn, task_id)
    if ended is None:
        return NotFound(
            f"no waiting task {task_id} (it may have been completed or cancelled)",
            kind="task",
            key=task_id,
        )
    verb = "completed" if ended["type"] == "task_completed" else "cancelled"
    by = f" by {ended['actor']}" if ended["actor"] else ""
    return ConcurrencyError(
        f"task {task_id} was already {verb}{by} at {ended['at'].isoformat()}",
        instance_id=ended["instance_id"],
        task_id=task_id,
    )


def task_model(row: RowMapping | dict[str, Any]) -> Task:
    return Task(
        id=row["id"],
        instance_id=row["instance_id"],
        process_key=row["process_key"],
        business_key=row["business_key"],
        element_id=row["element_id"],
        name=row["name"],
        lane=row["lane"],
        candidate_groups=tuple(row["candidate_groups"]),
        candidate_users=tuple(row["candidate_users"]),
        assignee=row["assignee"],
        priority=row["priority"],
        due_at=row["due_at"],
        form_key=row["form_key"],
        created_at=row["created_at"],
    )
