"""The worker loop behind ``bankflow worker``: claim due jobs, run them, repeat.

Many workers (threads, processes, machines) may share one database; nothing coordinates
them but the job rows: a claim locks a batch for ``lock_duration``, a heartbeat thread
keeps the locks of a live worker fresh, and the locks of a worker that died simply run out
so another worker takes its jobs over. ``stop()`` (SIGTERM in the CLI) lets the job in
hand finish, gives back the rest of the batch and exits; a step still running ``grace``
seconds after ``stop()`` is interrupted between two elements, nothing of it written and
its job given back, so a worker always stops within its grace period. (A host's service
handler cannot be interrupted: it is the host's code.)
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from bankflow._clock import Clock
from bankflow.errors import BankflowError, Interrupted, InvalidData
from bankflow.jobs._service import DEFAULT_LOCK, Jobs, default_worker_id
from bankflow.models import FieldError, JobOutcome, JobRun
from bankflow.persistence import Database
from bankflow.persistence._jobs import JobStore
from bankflow.runtime import _spiff

# Seconds a step may go on after stop() before it is interrupted (SIGTERM's usual 10 s
# before SIGKILL leaves the rest for giving jobs back and unregistering).
DEFAULT_GRACE = 5.0

__all__ = ["DEFAULT_GRACE", "Worker"]


class Worker:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        jobs: Jobs,
        *,
        worker_id: str | None = None,
        lock_duration: timedelta = DEFAULT_LOCK,
        poll_interval: float = 1.0,
        batch: int = 20,
        on_outcome: Callable[[JobOutcome], None] | None = None,
        on_error: Callable[[str], None] | None = None,
        grace: float = DEFAULT_GRACE,
    ) -> None:
        if not math.isfinite(grace) or grace < 0:
            raise InvalidData(
                "the grace period must be a finite number of seconds, 0 or more",
                errors=(FieldError(field="grace", message=f"got {grace!r}"),),
            )
        self.id = worker_id or default_worker_id()
        self._grace = grace
        self._stopped_at: float | None = None
        self._db = db
        self._clock = clock
        self._jobs = jobs
        self._store = JobStore()
        self._lock_duration = lock_duration
        self._poll_interval = poll_interval
        self._batch = batch
        self._on_outcome = on_outcome
        self._on_error = on_error
        self._stop = threading.Event()

    def stop(self) -> None:
        """Finish the job in hand (interrupting its step after the grace period), then
        return from ``run``."""
        if self._stopped_at is None:
            self._stopped_at = time.monotonic()
        self._stop.set()

    def _past_grace(self) -> bool:
        stopped = self._stopped_at
        return stopped is not None and time.monotonic() - stopped > self._grace

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self, *, once: bool = False, now: datetime | None = None) -> JobRun:
        """Run due jobs until stopped; ``once``: everything due now, then return."""
        outcomes: list[JobOutcome] = []
        self._register()
        beat = threading.Thread(target=self._heartbeat, name=f"heartbeat {self.id}", daemon=True)
        beat.start()
        try:
            while not self._stop.is_set():
                try:
                    with _spiff.interruptible(self._past_grace):
                        result = self._run_due(now=now, once=once)
                except Interrupted as exc:
                    self._report(f"worker {self.id}: {exc}")
                    break
                except BankflowError as exc:  # the database went away: say so, try again
                    if once:
                        raise
                    self._report(f"worker {self.id}: {exc}")
                    self._stop.wait(self._poll_interval)
                    # The failed pass may have left claimed jobs that nobody runs, and the
                    # heartbeat would keep them locked for as long as this worker lives:
                    # give them back (nothing is in hand between passes) before claiming.
                    while not self._give_back() and not self._stop.wait(self._poll_interval):
                        pass
                    continue
                outcomes.extend(result.outcomes)
                if once:
                    break
                if not result.outcomes:
                    self._stop.wait(self._idle_wait())
        finally:
            self._stop.set()
            beat.join(timeout=5)
            self._give_back()
            self._unregister()
        return JobRun(outcomes=tuple(outcomes))

    def _run_due(self, *, now: datetime | None, once: bool) -> JobRun:
        return self._jobs.run_due(
            now=now,
            worker_id=self.id,
            lock_duration=self._lock_duration,
            batch=self._batch,
            limit=100_000 if once else self._batch,
            on_outcome=self._on_outcome,
            stop=self._stop.is_set,
        )

    def _idle_wait(self) -> float:
        """Sleep until the next job this worker could take is due, at most one poll
        interval. Jobs other workers are running do not count; one that is due already
        fell due after the claim, or another worker's claim of it is still committing:
        look again very soon, not a whole poll interval later."""
        now = self._clock.now()
        try:
            due = self._jobs.next_due(now=now)
        except BankflowError:
            return self._poll_interval
        if due is None:
            return self._poll_interval
        return max(0.01, min(self._poll_interval, (due - now).total_seconds()))

    def _heartbeat(self) -> None:
        interval = max(self._lock_duration.total_seconds() / 3, 0.2)
        while not self._stop.wait(interval):
            try:
                self._jobs.heartbeat(self.id, lock_duration=self._lock_duration)
                with self._db.connect(write=True) as conn:
                    self._store.beat(conn, self.id, self._clock.now())
            except BankflowError as exc:
                self._report(f"worker {self.id}: heartbeat failed: {exc}")

    def _give_back(self) -> bool:
        """Unlock every job this worker still holds; False while the database is away."""
        try:
            with self._db.connect(write=True) as conn:
                self._store.release_owned(conn, self.id)
        except BankflowError:
            return False
        return True

    def _register(self) -> None:
        now = self._clock.now()
        with self._db.connect(write=True) as conn:
            self._store.register_worker(
                conn,
                {
                    "id": self.id,
                    "hostname": socket.gethostname(),
                    "pid": os.getpid(),
                    "started_at": now,
                    "heartbeat_at": now,
                    "stopped_at": None,
                },
            )

    def _unregister(self) -> None:
        try:
            with self._db.connect(write=True) as conn:
                self._store.stop_worker(conn, self.id, self._clock.now())
        except BankflowError as exc:
            self._report(f"worker {self.id}: could not record the stop: {exc}")

    def _report(self, message: str) -> None:
        if self._on_error is not None:
            self._on_error(message)
