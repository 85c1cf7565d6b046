"""``engine.jobs``: run what is due (timers, service calls, messages, timer starts).

A job is claimed (locked for a while by one owner) in a short transaction of its own, then
executed: a timer fires and a message is delivered inside one guarded change of the
instance, which also deletes the job only if the owner still holds it; a service handler
runs *outside* any transaction (it may call the core banking system for seconds), and its
result is applied the same guarded way. A worker that dies leaves its locks to expire and
another takes the job over; the revision guard and the job-ownership check make sure a step
is applied once.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import socket
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import RowMapping

from bankflow import _inputs
from bankflow._clock import Clock
from bankflow._limits import DEFAULT_LIMITS, Limits
from bankflow._timing import backoff, next_start, retries
from bankflow.errors import (
    BankflowError,
    BpmnError,
    ConcurrencyError,
    CorrelationError,
    DuplicateBusinessKey,
    InvalidState,
    NotFound,
)
from bankflow.models import Instance, Job, JobOutcome, JobRun
from bankflow.persistence import Database
from bankflow.persistence._jobs import JobStore
from bankflow.persistence._runtime import RuntimeStore
from bankflow.runtime import _spiff
from bankflow.runtime._data import check_data
from bankflow.runtime._executor import Change, Executor, Read, event
from bankflow.runtime._messages import Messages
from bankflow.runtime._signals import NotWaiting, Signals
from bankflow.services import ServiceRegistry

__all__ = ["DEFAULT_LOCK", "Jobs", "default_worker_id", "job_model"]

DEFAULT_LOCK = timedelta(minutes=5)
_WORKER_KINDS = ("timer", "message", "start_timer", "signal")
_MICROSECOND = timedelta(microseconds=1)
_MAX_CONFLICTS = 3


def _identity(job: Mapping[Any, Any]) -> tuple[Any, ...]:
    return (job["kind"], job["task_id"] or job["id"], job["due_at"])


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Jobs:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        executor: Executor,
        messages: Messages,
        services: ServiceRegistry,
        *,
        limits: Limits = DEFAULT_LIMITS,
        signals: Signals | None = None,
    ) -> None:
        self._db = db
        self._clock = clock
        self._executor = executor
        self._messages = messages
        self._signals = signals or Signals(db, executor, limits=limits)
        self._services = services
        self.limits = limits
        self._store = JobStore()
        self._runtime = RuntimeStore()

    # -- reading ----------------------------------------------------------------------------

    def list(
        self,
        *,
        kind: str | None = None,
        status: str | None = None,
        instance_id: str | None = None,
        due_before: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> builtins.list[Job]:
        """Jobs in due order (``status``: ready, held while the instance has failed, or
        incident); ``limit`` at most 10,000. A filter value no job can have matches
        nothing."""
        limit, offset = _inputs.page(limit, offset)
        if due_before is not None and not isinstance(due_before, datetime):
            raise _inputs.refused(
                "due_before", f"must be a datetime, not {type(due_before).__name__}"
            )
        if any(v is not None and not _inputs.is_name(v) for v in (kind, status)) or (
            instance_id is not None and not _inputs.is_id(instance_id)
        ):
            return []
        with self._db.connect() as conn:
            rows = self._store.list_jobs(
                conn,
                kinds=None if kind is None else (kind,),
                status=status,
                instance_id=instance_id,
                due_before=due_before,
                limit=limit,
                offset=offset,
            )
        return [job_model(r) for r in rows]

    def get(self, job_id: str) -> Job:
        _inputs.require_id(job_id, "job")
        with self._db.connect() as conn:
            row = self._store.job(conn, job_id)
        if row is None:
            raise NotFound(f"no job {job_id}", kind="job", key=job_id)
        return job_model(row)

    # -- running ----------------------------------------------------------------------------

    def run_due(
        self,
        *,
        now: datetime | None = None,
        worker_id: str | None = None,
        lock_duration: timedelta = DEFAULT_LOCK,
        limit: int = 10_000,
        batch: int = 20,
        on_outcome: Callable[[JobOutcome], None] | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> JobRun:
        """Run every job due at ``now`` (default: the engine clock), including jobs that
        running others makes due, up to ``limit``; returns what each one did. ``batch``
        (jobs claimed at a time) is 1 to 10,000."""
        _inputs.whole(limit, "limit", _inputs.MAX_OFFSET)
        _inputs.whole(batch, "batch", _inputs.MAX_PAGE_SIZE, lowest=1)
        owner = worker_id or default_worker_id()
        outcomes: builtins.list[JobOutcome] = []
        # A job that lost a race runs again in this pass, a few times at most; the same
        # wait coming back with the same due time is not run twice in one pass.
        conflicts: dict[str, int] = {}
        done: set[tuple[Any, ...]] = set()
        while len(outcomes) < limit and not (stop and stop()):
            claimed = self.claim(
                owner=owner, now=now, lock_duration=lock_duration, limit=min(batch, limit)
            )
            runnable = [
                j
                for j in claimed
                if conflicts.get(j["id"], 0) < _MAX_CONFLICTS and _identity(j) not in done
            ]
            self._release_all([j for j in claimed if j not in runnable], owner)
            if not runnable:
                break
            for index, job in enumerate(runnable):
                if stop and stop():
                    self._release_all(runnable[index:], owner)
                    break
                outcome = self.execute(job, owner=owner, now=now)
                if outcome.result == "conflict":
                    conflicts[job["id"]] = conflicts.get(job["id"], 0) + 1
                else:
                    done.add(_identity(job))
                outcomes.append(outcome)
                if on_outcome is not None:
                    on_outcome(outcome)
        return JobRun(outcomes=tuple(outcomes))

    def claim(
        self,
        *,
        owner: str,
        now: datetime | None = None,
        lock_duration: timedelta = DEFAULT_LOCK,
        limit: int = 20,
    ) -> builtins.list[RowMapping]:
        at = now or self._clock.now()
        handlers = self._services.names()
        with self._db.connect(write=True) as conn:
            return self._store.claim(
                conn,
                kinds=_WORKER_KINDS,
                handled=sorted(handlers),
                now=at,
                owner=owner,
                until=at + lock_duration,
                limit=limit,
            )

    def next_due(self, *, now: datetime | None = None) -> datetime | None:
        """When the next job ``claim`` could take in this process is due (it may be due
        already); None when there is none. Jobs other workers hold do not count."""
        with self._db.connect() as conn:
            return self._store.next_due(
                conn,
                kinds=_WORKER_KINDS,
                handled=sorted(self._services.names()),
                now=now or self._clock.now(),
            )

    def heartbeat(self, owner: str, *, lock_duration: timedelta = DEFAULT_LOCK) -> int:
        """Keep ``owner``'s locks alive while it works; returns how many it holds."""
        with self._db.connect(write=True) as conn:
            return self._store.extend(conn, owner, self._clock.now() + lock_duration)

    def execute(self, job: RowMapping, *, owner: str, now: datetime | None = None) -> JobOutcome:
        """Run one claimed job."""
        at = now or self._clock.now()
        kind = job["kind"]
        try:
            if kind == "timer":
                return self._fire_timer(job, owner, at)
            if kind == "start_timer":
                return self._start_on_timer(job, owner, at)
            if kind == "message":
                return self._send_message(job, owner, at)
            if kind == "signal":
                return self._send_signal(job, owner, at)
            return self._call_service(job, owner, at)
        except ConcurrencyError as exc:
            self._release(job, owner, {})
            return _outcome(job, "conflict", str(exc))
        except InvalidState as exc:
            if not self._release(job, owner, {"status": "held"}):  # another worker took it
                return _outcome(job, "conflict", str(_lost(job)))
            return _outcome(job, "held", str(exc))
        except BankflowError:
            self._release_quietly(job, owner)
            raise
        except Exception as exc:  # a bug must not kill the worker: the job fails, visibly
            message = f"{kind} job failed unexpectedly: {type(exc).__name__}: {exc}"
            return self._failed(job, owner, at, message, type(exc).__name__)

    # -- kinds --------------------------------------------------------------------------------

    def _fire_timer(self, job: RowMapping, owner: str, now: datetime) -> JobOutcome:
        def action(read: Read) -> Change:
            return Change(
                run=lambda workflow: _spiff.fire_timers(workflow, job["task_id"]),
                events=[
                    event(
                        read,
                        "timer_fired",
                        now,
                        element_id=job["element_id"],
                        task_id=job["task_id"],
                        data={"due_at": job["due_at"].isoformat()},
                    )
                ],
                guard=self._consume(job, owner),
                consumed_job=job["id"],
                at=job["due_at"] + _MICROSECOND,
            )

        instance = self._executor.change(action, instance_id=job["instance_id"], actor=None)
        return _outcome(job, "fired", _status_note(instance))

    def _start_on_timer(self, job: RowMapping, owner: str, now: datetime) -> JobOutcome:
        following = next_start(job["due_at"], job["payload"] or {})

        def guard(conn: Connection) -> None:
            if following is None:
                self._consume(job, owner)(conn)
            elif not self._store.release(
                conn, job["id"], owner, {"due_at": following[0], "payload": following[1]}
            ):
                raise _lost(job)

        instance = self._executor.start(
            job["process_key"],
            version=None,
            business_key=None,
            data={},
            actor=None,
            definition_id=job["definition_id"],
            start_timer=True,
            guard=guard,
        )
        return _outcome(job, "started", f"instance {instance.id}")

    def _send_message(self, job: RowMapping, owner: str, now: datetime) -> JobOutcome:
        payload = job["payload"] or {}
        data = _spiff.restore_data(payload.get("data") or {})
        try:
            delivered = self._messages.deliver(
                job["topic"] or "",
                business_key=job["business_key"],
                correlation=None,
                data=data,
                broadcast=False,
                actor=None,
                guard=self._consume(job, owner),
            )
        except (CorrelationError, DuplicateBusinessKey) as exc:
            # Nobody to deliver to, or the process it would start already has an instance
            # with that business key: retried, then an incident (never a poison job).
            return self._failed(job, owner, now, str(exc), type(exc).__name__)
        if len(delivered) == 1 and delivered[0].revision == 0:  # a message start event
            return _outcome(job, "started", f"instance {delivered[0].id}")
        return _outcome(job, "delivered", ", ".join(i.id for i in delivered))

    def _send_signal(self, job: RowMapping, owner: str, now: datetime) -> JobOutcome:
        """A signal an instance threw: first split into one job per instance waiting for
        it and per process it starts (in the transaction taking this job), then each of
        those delivered or started as one guarded change that takes its own job, so a
        retry never gives one instance the signal twice."""
        name = job["topic"] or ""
        payload = job["payload"] or {}
        data = _spiff.restore_data(payload.get("data") or {})
        if payload.get("to"):
            try:
                instance = self._signals.deliver_to(
                    payload["to"],
                    name,
                    data,
                    None,
                    guard=self._consume(job, owner),
                    consumed_job=job["id"],
                )
            except NotWaiting:
                with self._db.connect(write=True) as conn:
                    self._consume(job, owner)(conn)
                return _outcome(job, "skipped", "the instance no longer waits for the signal")
            return _outcome(job, "delivered", instance.id)
        if payload.get("start"):
            instance = self._signals.start(
                payload["start"],
                job["process_key"],
                name,
                data,
                None,
                guard=self._consume(job, owner),
            )
            return _outcome(job, "started", f"instance {instance.id}")
        with self._db.connect(write=True) as conn:
            self._consume(job, owner)(conn)
            reached, starts = self._signals.fan_out(
                conn, name, payload.get("data") or {}, exclude=job["instance_id"], now=now
            )
        return _outcome(
            job, "broadcast", f"{reached} waiting instance(s), {starts} process start(s)"
        )

    def _call_service(self, job: RowMapping, owner: str, now: datetime) -> JobOutcome:
        name = job["topic"] or ""
        handler = self._services.get(name)
        if handler is None:
            self._release(job, owner, {})
            return _outcome(job, "skipped", f"no handler for {name!r} in this process")
        data = self._executor.task_data(job["instance_id"], job["task_id"])
        if data is None:
            self._release(job, owner, {})
            return _outcome(job, "conflict", "the instance no longer waits for this call")
        try:
            result = handler(data)
            values = _result(name, result, self.limits)
        except BpmnError as exc:
            self.apply_bpmn_error(job, owner=owner, error=exc, data={})
            return _outcome(job, "bpmn_error", exc.code)
        except Exception as exc:  # the handler's failure is the job's, never the worker's
            message = f"service {name!r} failed: {type(exc).__name__}: {exc}"
            return self._failed(job, owner, now, message, type(exc).__name__)
        self.apply_result(job, owner=owner, values=values)
        return _outcome(job, "completed")

    # -- shared with external tasks ---------------------------------------------------------

    def apply_result(
        self, job: Mapping[Any, Any], *, owner: str, values: dict[str, Any]
    ) -> Instance:
        """A service call made outside the engine came back with ``values``."""
        return self._apply(
            job,
            owner,
            lambda workflow: _spiff.complete_service(workflow, job["task_id"], values),
            "service_completed",
            {"service": job["topic"], "attempt": job["attempts"] + 1},
        )

    def apply_bpmn_error(
        self, job: Mapping[Any, Any], *, owner: str, error: BpmnError, data: dict[str, Any]
    ) -> Instance:
        """A service call reported a business error: the catching boundary event runs."""
        return self._apply(
            job,
            owner,
            lambda workflow: _spiff.service_bpmn_error(workflow, job["task_id"], error, data),
            "service_bpmn_error",
            {"service": job["topic"], "code": error.code, "message": str(error)},
        )

    def _apply(
        self,
        job: Mapping[Any, Any],
        owner: str,
        run: Callable[[Any], None],
        kind: str,
        data: dict[str, Any],
    ) -> Instance:
        """Apply a service job's outcome in one guarded change that also takes the job."""

        def action(read: Read) -> Change:
            recorded = event(
                read,
                kind,
                self._clock.now(),
                actor=owner,
                element_id=job["element_id"],
                task_id=job["task_id"],
                data=data,
            )
            return Change(
                run=run,
                events=[recorded],
                guard=self._consume(job, owner),
                consumed_job=job["id"],
            )

        return self._executor.change(action, instance_id=job["instance_id"], actor=owner)

    def record_failure(
        self,
        job: Mapping[Any, Any],
        *,
        owner: str,
        message: str,
        error_type: str,
        retries_left: int,
        retry_at: datetime,
    ) -> str:
        """A failed attempt: try again at ``retry_at``, or, with no retries left, raise an
        incident (the instance fails, naming the step and the error). Returns ``retry`` or
        ``incident``. ``message`` (from a handler or a remote worker) is stored cut to
        10,000 characters, with NUL and lone surrogates replaced."""
        message = _inputs.storable_text(message)
        attempts = job["attempts"] + 1
        now = self._clock.now()
        if retries_left > 0:
            with self._db.connect(write=True) as conn:
                if not self._store.release(
                    conn,
                    job["id"],
                    owner,
                    {
                        "attempts": attempts,
                        "retries": retries_left,
                        "last_error": message,
                        "due_at": retry_at,
                    },
                ):
                    raise _lost(job)
                self._runtime.insert_events(
                    conn, [_job_event(job, "job_failed", now, owner, message, attempts)]
                )
            return "retry"
        values = {"attempts": attempts, "retries": 0, "last_error": message, "status": "incident"}
        if job["instance_id"] is None or job["kind"] in ("message", "signal"):
            # The thrower has moved on and the receiver never got it: the job is the
            # incident, no instance is failed.
            with self._db.connect(write=True) as conn:
                if not self._store.release(conn, job["id"], owner, values):
                    raise _lost(job)
                if job["instance_id"] is not None:
                    self._runtime.insert_events(
                        conn, [_job_event(job, "incident", now, owner, message, attempts)]
                    )
            return "incident"

        def guard(conn: Connection) -> None:
            if not self._store.release(conn, job["id"], owner, values):
                raise _lost(job)

        def action(read: Read) -> Change:
            return Change(
                run=lambda _workflow: None,
                failure=_spiff.Failure(
                    message=f"{message} (attempt {attempts}, no retries left)",
                    element_id=job["element_id"],
                    task_id=job["task_id"],
                    error_type=error_type,
                ),
                guard=guard,
                incident_job=job["id"],
            )

        self._executor.change(action, instance_id=job["instance_id"], actor=owner)
        return "incident"

    def _failed(
        self,
        job: RowMapping,
        owner: str,
        now: datetime,
        message: str,
        error_type: str,
    ) -> JobOutcome:
        attempts = job["attempts"] + 1
        result = self.record_failure(
            job,
            owner=owner,
            message=message,
            error_type=error_type,
            retries_left=max(job["retries"] - 1, 0),
            retry_at=now + backoff(job["retry_cycle"], attempts),
        )
        return _outcome(job, result, message)

    # -- locks -------------------------------------------------------------------------------

    def _consume(self, job: Mapping[Any, Any], owner: str) -> Callable[[Connection], None]:
        def guard(conn: Connection) -> None:
            if not self._store.consume(conn, job["id"], owner):
                raise _lost(job)

        return guard

    def _release(self, job: Mapping[Any, Any], owner: str, values: dict[str, Any]) -> bool:
        with self._db.connect(write=True) as conn:
            return self._store.release(conn, job["id"], owner, values)

    def _release_quietly(self, job: Mapping[Any, Any], owner: str) -> None:
        # If the database is gone the release fails too; the lock then runs out by itself.
        with contextlib.suppress(BankflowError):
            self._release(job, owner, {})

    def _release_all(self, jobs: Sequence[Mapping[Any, Any]], owner: str) -> None:
        if not jobs:
            return
        with self._db.connect(write=True) as conn:
            for job in jobs:
                self._store.release(conn, job["id"], owner, {})

    def reset(self, job_id: str) -> Job:
        """Give an incident job (a message nobody caught) a fresh set of attempts."""
        _inputs.require_id(job_id, "job")
        now = self._clock.now()
        with self._db.connect(write=True) as conn:
            row = self._store.job(conn, job_id)
            if row is None:
                raise NotFound(f"no job {job_id}", kind="job", key=job_id)
            if row["status"] != "incident":
                raise InvalidState(
                    f"job {job_id} is {row['status']}, not an incident",
                    instance_id=row["instance_id"] or "",
                )
            self._store.update_job(
                conn,
                job_id,
                {
                    "status": "ready",
                    "attempts": 0,
                    "retries": retries(row["retry_cycle"]),
                    "due_at": now,
                    "lock_owner": None,
                    "lock_expires_at": None,
                },
            )
            row = self._store.job(conn, job_id)
        assert row is not None
        return job_model(row)


def _result(name: str, result: Any, limits: Limits) -> dict[str, Any]:
    if result is None:
        return {}
    if not isinstance(result, Mapping):
        raise TypeError(f"service {name!r} returned {type(result).__name__}, not a dict of values")
    return check_data(result, what=f"the result of service {name!r}", limits=limits)


def _lost(job: Mapping[Any, Any]) -> ConcurrencyError:
    return ConcurrencyError(
        f"job {job['id']} is no longer held by this worker (its lock expired and another "
        "worker took it, or the instance moved on); nothing was changed",
        instance_id=job["instance_id"] or "",
    )


def _status_note(instance: Instance) -> str | None:
    if instance.failure is not None:
        return f"instance failed: {instance.failure.message}"
    return None


def _outcome(job: Mapping[Any, Any], result: str, message: str | None = None) -> JobOutcome:
    return JobOutcome(
        job_id=job["id"],
        kind=job["kind"],
        result=result,
        instance_id=job["instance_id"],
        process_key=job["process_key"],
        element_id=job["element_id"],
        topic=job["topic"],
        message=message,
    )


def _job_event(
    job: Mapping[Any, Any], kind: str, at: datetime, actor: str, message: str, attempts: int
) -> dict[str, Any]:
    return {
        "instance_id": job["instance_id"],
        "process_key": job["process_key"],
        "business_key": job["business_key"],
        "type": kind,
        "element_id": job["element_id"],
        "task_id": job["task_id"],
        "actor": actor,
        "at": at,
        "data": {"job_id": job["id"], "error": message, "attempt": attempts},
    }


def job_model(row: Mapping[Any, Any]) -> Job:
    return Job(
        id=row["id"],
        kind=row["kind"],
        status=row["status"],
        instance_id=row["instance_id"],
        process_key=row["process_key"],
        business_key=row["business_key"],
        element_id=row["element_id"],
        task_id=row["task_id"],
        topic=row["topic"],
        due_at=row["due_at"],
        lock_owner=row["lock_owner"],
        lock_expires_at=row["lock_expires_at"],
        attempts=row["attempts"],
        retries=row["retries"],
        last_error=row["last_error"],
        created_at=row["created_at"],
    )
