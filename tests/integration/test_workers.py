"""``bankflow worker`` as OS processes sharing one database.

Every due job runs exactly once however many workers split the work (5,000 timers and
5,000 service calls over four workers on PostgreSQL, a smaller run on a SQLite file); a
worker killed in the middle of a service call keeps its job locked only until the lock
runs out, then another worker completes it once; a worker paused past its lock comes back
to find its result refused; a worker whose connections drop mid-batch gives the batch back
and carries on; SIGTERM lets the job in hand finish and gives the rest of the batch back.

The service handler records every call it makes in a ``side_effect`` table of the same
database, so a call made twice shows up as two rows whatever the engine's history says.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from bankflow import Engine
from bankflow.models import Job

BANKFLOW = Path(sys.executable).parent / "bankflow"
FAR_FUTURE = "2100-01-01T00:00:00+00:00"
HANDLERS_MODULE = "bf_test_worker_handlers"

PROCESSES = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="t">
  <bpmn:process id="wait_timer" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:intermediateCatchEvent id="wait_an_hour">
      <bpmn:timerEventDefinition><bpmn:timeDuration>PT1H</bpmn:timeDuration>
      </bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:endEvent id="end"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="wait_an_hour"/>
    <bpmn:sequenceFlow id="f2" sourceRef="wait_an_hour" targetRef="end"/>
  </bpmn:process>
  <bpmn:process id="call_count" isExecutable="true">
    <bpmn:startEvent id="start_call"/>
    <bpmn:serviceTask id="count" camunda:asyncBefore="true"
        camunda:delegateExpression="${count}"/>
    <bpmn:endEvent id="end_call"/>
    <bpmn:sequenceFlow id="g1" sourceRef="start_call" targetRef="count"/>
    <bpmn:sequenceFlow id="g2" sourceRef="count" targetRef="end_call"/>
  </bpmn:process>
</bpmn:definitions>
"""

# Loaded by the workers through ``--handlers``. BF_TEST_HANDLER picks how a call behaves:
# "fast" records it at once; "block" says it started and then hangs (until the process is
# killed); "gate" says it started and waits for a ``go`` file before recording.
# BF_TEST_BARRIER=N makes register() wait until N workers are ready, so they start together.
HANDLERS = textwrap.dedent(
    '''
    """Service handler for test_workers: records each call in side_effect."""
    import os
    import time
    from pathlib import Path

    import sqlalchemy as sa

    FOLDER = Path(os.environ["BF_TEST_FOLDER"])
    _engine = None


    def _record(key):
        global _engine
        if _engine is None:
            url = os.environ["BF_SIDE_EFFECT_URL"]
            sqlite = sa.make_url(url).get_backend_name() == "sqlite"
            _engine = sa.create_engine(url, connect_args={"timeout": 60} if sqlite else {})
        with _engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO side_effect (job_key) VALUES (:k)"), {"k": key})


    def count(data):
        key = data["key"]
        mode = os.environ.get("BF_TEST_HANDLER", "fast")
        if mode != "fast":
            (FOLDER / f"started-{key}").write_text(str(os.getpid()))
        if mode == "block":
            while True:
                time.sleep(0.1)
        if mode == "gate":
            deadline = time.monotonic() + 60
            while not (FOLDER / "go").exists() and time.monotonic() < deadline:
                time.sleep(0.02)
        _record(key)
        return {"counted": True}


    def register(services):
        services.register("count", count)
        wanted = int(os.environ.get("BF_TEST_BARRIER", "0"))
        if wanted:
            (FOLDER / f"ready-{os.getpid()}").touch()
            deadline = time.monotonic() + 60
            while len(list(FOLDER.glob("ready-*"))) < wanted and time.monotonic() < deadline:
                time.sleep(0.01)
    '''
)

# Starts instances ``[first, last)`` of both processes (through the API, ~2 ms each on
# PostgreSQL); a few of these run side by side.
MAKER = textwrap.dedent(
    """
    import sys
    from bankflow import Engine

    url, first, last = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with Engine(url, migrate=False, cache_size=0) as engine:
        for i in range(first, last):
            engine.instances.start("wait_timer", business_key=f"timer-{i:05d}")
            key = f"call-{i:05d}"
            engine.instances.start("call_count", business_key=key, data={"key": key})
    """
)


# -- helpers -----------------------------------------------------------------------------


class Setup:
    """A deployed database with the side-effect table, and the way to run workers on it."""

    def __init__(self, url: str, folder: Path) -> None:
        self.url = url
        self.folder = folder
        self.sql = sa.create_engine(url, poolclass=NullPool)
        self.started: list[subprocess.Popen[str]] = []
        self.engine = Engine(url, cache_size=0)
        self.base_env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(folder), os.environ.get("PYTHONPATH", "")) if p
            ),
            "BF_TEST_FOLDER": str(folder),
            "BF_SIDE_EFFECT_URL": url,
            "BF_TEST_HANDLER": "fast",
        }

    def worker(self, name: str, *args: str, **env: str) -> Worker:
        out = self.folder / f"{name}.out"
        err = self.folder / f"{name}.err"
        with out.open("w") as stdout, err.open("w") as stderr:
            process = subprocess.Popen(
                [
                    str(BANKFLOW),
                    "--db",
                    self.url,
                    "worker",
                    "--id",
                    name,
                    "--handlers",
                    HANDLERS_MODULE,
                    "--json",
                    *args,
                ],
                stdout=stdout,
                stderr=stderr,
                text=True,
                env={**self.base_env, **env},
            )
        self.started.append(process)
        return Worker(name, process, out, err)

    def kill_leftovers(self) -> None:
        """Workers a failed test left running (stopped, or blocked in a handler)."""
        for process in self.started:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)

    def scalar(self, query: str, **params: Any) -> Any:
        with self.sql.connect() as conn:
            return conn.execute(sa.text(query), params).scalar()

    def rows(self, query: str, **params: Any) -> list[Any]:
        with self.sql.connect() as conn:
            return list(conn.execute(sa.text(query), params))

    def lock(self, instance_id: str) -> tuple[str | None, datetime]:
        job = self.job(instance_id)
        assert job is not None
        assert job.lock_expires_at is not None
        return job.lock_owner, job.lock_expires_at

    def side_effects(self) -> list[str]:
        return sorted(r[0] for r in self.rows("SELECT job_key FROM side_effect"))

    def job(self, instance_id: str) -> Job | None:
        found = self.engine.jobs.list(instance_id=instance_id)
        assert len(found) <= 1
        return found[0] if found else None


class Worker:
    def __init__(self, name: str, process: subprocess.Popen[str], out: Path, err: Path) -> None:
        self.name = name
        self.process = process
        self._out = out
        self._err = err

    def wait(self, timeout: float = 120) -> int:
        return self.process.wait(timeout=timeout)

    def outcomes(self) -> list[dict[str, Any]]:
        text = self._out.read_text()
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def stderr(self) -> str:
        return self._err.read_text()

    def finished_ok(self, timeout: float = 120) -> list[dict[str, Any]]:
        """Wait for a clean exit; the outcome lines it printed."""
        code = self.wait(timeout)
        assert code == 0, f"{self.name} exited {code}: {self.stderr()}"
        assert "Traceback" not in self.stderr(), self.stderr()
        return self.outcomes()


@contextmanager
def _setup(url: str, tmp_path: Path) -> Iterator[Setup]:
    if not BANKFLOW.exists():
        pytest.skip("the bankflow console script is not installed next to this Python")
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / f"{HANDLERS_MODULE}.py").write_text(HANDLERS, encoding="utf-8")
    (folder / "processes.bpmn").write_text(PROCESSES, encoding="utf-8")
    with Engine(url, migrate=True) as engine:
        engine.definitions.deploy(folder / "processes.bpmn")
    setup = Setup(url, folder)
    with setup.sql.begin() as conn:
        conn.execute(sa.text("CREATE TABLE side_effect (job_key TEXT NOT NULL)"))
    try:
        yield setup
    finally:
        setup.kill_leftovers()
        setup.engine.close()
        setup.sql.dispose()


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _start_instances(setup: Setup, count: int, makers: int) -> None:
    """``count`` instances of each process, by ``makers`` processes side by side."""
    script = setup.folder / "make_instances.py"
    script.write_text(MAKER, encoding="utf-8")
    bounds = [count * k // makers for k in range(makers + 1)]
    running = [
        subprocess.Popen(
            [sys.executable, str(script), setup.url, str(first), str(last)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for first, last in pairwise(bounds)
    ]
    for process in running:
        _, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, stderr


def _exactly_once(url: str, tmp_path: Path, *, count: int, workers: int, makers: int) -> None:
    """``count`` instances wait on a timer and ``count`` on a service job; ``workers``
    processes started together run everything: each job once, by one worker."""
    with _setup(url, tmp_path) as setup:
        started = time.monotonic()
        _start_instances(setup, count, makers)
        waiting = setup.rows("SELECT kind, count(*) FROM bf_job GROUP BY kind ORDER BY kind")
        assert [tuple(r) for r in waiting] == [("service", count), ("timer", count)]
        created = time.monotonic()

        running = [
            setup.worker(f"w{n}", "--once", "--now", FAR_FUTURE, BF_TEST_BARRIER=str(workers))
            for n in range(workers)
        ]
        outcomes = {w.name: w.finished_ok(timeout=600) for w in running}
        ran = time.monotonic()

        # What the workers said: every job once, by exactly one of them, each did some.
        every = [o for lines in outcomes.values() for o in lines]
        assert Counter((o["kind"], o["result"]) for o in every) == {
            ("timer", "fired"): count,
            ("service", "completed"): count,
        }
        assert len({o["job_id"] for o in every}) == 2 * count
        assert all(lines for lines in outcomes.values()), {
            name: len(lines) for name, lines in outcomes.items()
        }

        # What the database says.
        assert setup.scalar("SELECT count(*) FROM bf_job") == 0
        keys = setup.side_effects()
        assert len(keys) == count
        assert set(keys) == {f"call-{i:05d}" for i in range(count)}
        for process_key, event in (
            ("wait_timer", "timer_fired"),
            ("call_count", "service_completed"),
        ):
            per_instance = setup.rows(
                "SELECT i.id, i.status, count(e.id) FROM bf_instance i "
                "LEFT JOIN bf_event e ON e.instance_id = i.id AND e.type = :event "
                "WHERE i.process_key = :key GROUP BY i.id, i.status",
                event=event,
                key=process_key,
            )
            assert len(per_instance) == count
            assert Counter((status, n) for _, status, n in per_instance) == {
                ("completed", 1): count
            }, process_key
            assert setup.scalar("SELECT count(*) FROM bf_event WHERE type = :e", e=event) == count
        stopped = setup.rows("SELECT id FROM bf_worker WHERE stopped_at IS NOT NULL")
        assert sorted(r[0] for r in stopped) == sorted(outcomes)
        checked = time.monotonic()
        print(
            f"\n{count}+{count} jobs, {workers} workers: instances {created - started:.1f}s, "
            f"workers {ran - created:.1f}s, checks {checked - ran:.1f}s; jobs per worker "
            + ", ".join(f"{name}={len(lines)}" for name, lines in outcomes.items())
        )


# -- tests -------------------------------------------------------------------------------


@pytest.mark.slow
def test_four_workers_run_each_of_10000_jobs_exactly_once(pg_url: str, tmp_path: Path) -> None:
    _exactly_once(pg_url, tmp_path, count=5000, workers=4, makers=2)


def test_two_workers_run_each_job_exactly_once_on_sqlite(sqlite_url: str, tmp_path: Path) -> None:
    _exactly_once(sqlite_url, tmp_path, count=200, workers=2, makers=1)


def test_a_killed_workers_job_is_taken_over_once_its_lock_expires(
    db_url: str, tmp_path: Path
) -> None:
    with _setup(db_url, tmp_path) as setup:
        instance = setup.engine.instances.start(
            "call_count", business_key="crash", data={"key": "crash"}
        )

        doomed = setup.worker(
            "worker-a", "--lock-seconds", "2", "--poll", "0.2", BF_TEST_HANDLER="block"
        )
        marker = setup.folder / "started-crash"
        _wait_for(  # the handler creates the file, then writes its pid into it
            lambda: (
                (marker.exists() and marker.read_text() != "") or doomed.process.poll() is not None
            ),
            "A's handler",
        )
        assert doomed.process.poll() is None, doomed.stderr()
        assert marker.read_text() == str(doomed.process.pid)
        owner, first_expiry = setup.lock(instance.id)
        assert owner == "worker-a"

        # A live worker's heartbeat keeps its lock: once the first lock would have run
        # out, another worker on real time still leaves the job alone.
        _wait_for(
            lambda: datetime.now(UTC) > first_expiry + timedelta(seconds=0.5),
            "the first lock to run out",
        )
        bystander = setup.worker("worker-c", "--once")
        assert bystander.finished_ok(timeout=60) == []
        owner, expiry = setup.lock(instance.id)
        assert owner == "worker-a"
        assert expiry > first_expiry

        doomed.process.kill()  # SIGKILL: no cleanup, the lock stays behind
        assert doomed.wait(timeout=30) == -signal.SIGKILL
        assert doomed.outcomes() == []
        owner, expiry = setup.lock(instance.id)
        assert owner == "worker-a"
        assert setup.side_effects() == []

        # Any worker whose clock is past the lock's expiry takes the job over.
        after = (expiry + timedelta(seconds=1)).isoformat()
        rescuer = setup.worker("worker-b", "--once", "--now", after)
        [outcome] = rescuer.finished_ok(timeout=60)
        assert (outcome["kind"], outcome["result"]) == ("service", "completed")
        assert outcome["instance_id"] == instance.id

        assert setup.job(instance.id) is None
        assert setup.side_effects() == ["crash"]
        assert setup.engine.instances.get(instance.id).status == "completed"
        calls = [
            (e.element_id, e.actor)
            for e in setup.engine.history.for_instance(instance.id)
            if e.type == "service_completed"
        ]
        assert calls == [("count", "worker-b")]
        # A never said it stopped: it died holding the job.
        workers = dict(setup.rows("SELECT id, stopped_at FROM bf_worker"))
        assert workers["worker-a"] is None
        assert workers["worker-b"] is not None


def test_sigterm_finishes_the_job_in_hand_and_gives_back_the_rest(
    db_url: str, tmp_path: Path
) -> None:
    with _setup(db_url, tmp_path) as setup:
        keys = [f"stop-{i}" for i in range(5)]
        ids = {
            key: setup.engine.instances.start("call_count", business_key=key, data={"key": key}).id
            for key in keys
        }

        worker = setup.worker("worker-s", "--batch", "10", "--poll", "0.2", BF_TEST_HANDLER="gate")
        _wait_for(
            lambda: any(setup.folder.glob("started-*")) or worker.process.poll() is not None,
            "the first handler to start",
        )
        assert worker.process.poll() is None, worker.stderr()
        [marker] = setup.folder.glob("started-*")
        in_hand = marker.name.removeprefix("started-")
        owners = setup.rows("SELECT lock_owner FROM bf_job")
        assert [r[0] for r in owners] == ["worker-s"] * 5  # the whole batch is claimed

        worker.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert worker.process.poll() is None, "the worker left its job in hand unfinished"
        (setup.folder / "go").touch()
        [outcome] = worker.finished_ok(timeout=60)
        assert (outcome["result"], outcome["instance_id"]) == ("completed", ids[in_hand])

        assert [m.name for m in setup.folder.glob("started-*")] == [marker.name]
        assert setup.side_effects() == [in_hand]
        rest = sorted(set(keys) - {in_hand})
        released = setup.rows(
            "SELECT business_key, lock_owner, lock_expires_at FROM bf_job ORDER BY business_key"
        )
        assert [tuple(r) for r in released] == [(key, None, None) for key in rest]
        statuses = {key: setup.engine.instances.get(ids[key]).status for key in keys}
        assert statuses == {key: "completed" if key == in_hand else "running" for key in keys}
        assert setup.scalar("SELECT stopped_at FROM bf_worker WHERE id = 'worker-s'") is not None

        # Given back, the rest is another worker's to take at once.
        other = setup.worker("worker-t", "--once")
        taken = other.finished_ok(timeout=60)
        assert sorted(o["instance_id"] for o in taken) == sorted(ids[key] for key in rest)
        assert {o["result"] for o in taken} == {"completed"}
        assert setup.side_effects() == sorted(keys)
        assert setup.scalar("SELECT count(*) FROM bf_job") == 0


def test_a_paused_worker_that_lost_its_lock_changes_nothing(db_url: str, tmp_path: Path) -> None:
    with _setup(db_url, tmp_path) as setup:
        instance = setup.engine.instances.start(
            "call_count", business_key="pause", data={"key": "pause"}
        )
        slow = setup.worker("worker-a", "--once", "--lock-seconds", "30", BF_TEST_HANDLER="gate")
        marker = setup.folder / "started-pause"
        _wait_for(lambda: marker.exists() or slow.process.poll() is not None, "A's handler")
        assert slow.process.poll() is None, slow.stderr()

        # Stopped (a long GC pause, a frozen VM): no heartbeat, so its lock runs out; B
        # acts as if that time had come (a long lock keeps A's heartbeat, every 10 s, from
        # being caught mid-transaction by the stop).
        slow.process.send_signal(signal.SIGSTOP)
        try:
            owner, expiry = setup.lock(instance.id)
            assert owner == "worker-a"
            after = (expiry + timedelta(seconds=1)).isoformat()
            [outcome] = setup.worker("worker-b", "--once", "--now", after).finished_ok(timeout=60)
            assert outcome["result"] == "completed"
        finally:
            (setup.folder / "go").touch()
            slow.process.send_signal(signal.SIGCONT)

        # A wakes up, its call returns (the handler did run twice: calls are at least
        # once), but its result is refused: the instance moved on once, by B.
        [late] = slow.finished_ok(timeout=60)
        assert (late["instance_id"], late["result"]) == (instance.id, "conflict")
        assert "no longer held by this worker" in late["message"]
        assert setup.side_effects() == ["pause", "pause"]
        assert setup.job(instance.id) is None
        assert setup.engine.instances.get(instance.id).status == "completed"
        calls = [
            e.actor
            for e in setup.engine.history.for_instance(instance.id)
            if e.type == "service_completed"
        ]
        assert calls == ["worker-b"]


def test_a_worker_whose_connections_drop_mid_batch_carries_on(pg_url: str, tmp_path: Path) -> None:
    with _setup(pg_url, tmp_path) as setup:
        keys = [f"drop-{i}" for i in range(5)]
        ids = [
            setup.engine.instances.start("call_count", business_key=key, data={"key": key}).id
            for key in keys
        ]
        worker = setup.worker(
            "worker-d",
            "--batch",
            "10",
            "--poll",
            "0.2",
            "--lock-seconds",
            "30",
            BF_TEST_HANDLER="gate",
        )
        _wait_for(
            lambda: any(setup.folder.glob("started-*")) or worker.process.poll() is not None,
            "the first handler to start",
        )
        assert worker.process.poll() is None, worker.stderr()
        [marker] = setup.folder.glob("started-*")
        # Every connection the worker has is cut while the first call is in progress: its
        # result cannot be written, and the pass ends early with four jobs still claimed.
        with setup.sql.connect() as conn:
            cut = conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).all()
        assert cut
        (setup.folder / "go").touch()
        try:
            _wait_for(
                lambda: setup.scalar("SELECT count(*) FROM bf_job") == 0,
                "every job to be done",
                timeout=20,
            )
        finally:
            worker.process.send_signal(signal.SIGTERM)
            outcomes = worker.finished_ok(timeout=60)
        # The pass failed writing the first result (not the heartbeat, 10 s away)...
        assert "worker worker-d: database error" in worker.stderr()
        # ... and the worker gave the batch back and ran it: every job once, the first
        # call twice (its result was lost with the connection: calls are at least once).
        assert sorted(o["instance_id"] for o in outcomes) == sorted(ids)
        assert {o["result"] for o in outcomes} == {"completed"}
        first = marker.name.removeprefix("started-")
        assert setup.side_effects() == sorted([*keys, first])
        statuses = setup.rows("SELECT status, count(*) FROM bf_instance GROUP BY status")
        assert [tuple(r) for r in statuses] == [("completed", 5)]
