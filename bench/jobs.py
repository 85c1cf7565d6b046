"""Job throughput with one and two worker processes, and timer lag under load, on PostgreSQL.

    .venv/bin/python bench/jobs.py [--db URL] [--quick] [--json] [--profile]

J1 runs the same workload (instances waiting on a due timer or a service call) with one
worker process and with two, in alternating order, and reports jobs/s and their ratio,
measured in this one run on this machine. J2 lets timers fall due over a window of real
time while two workers poll and an API client works beside them, and reports how late
they fire. ``--db`` (else ``BANKFLOW_BENCH_POSTGRES_URL``) names a server: each run
creates a database of its own there and drops it at exit. ``--quick`` shrinks every size
(a smoke check, under a minute); ``--profile`` always adds the breakdown of one worker's
time (it is added anyway when J1 misses its target). See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa
from _report import Row, machine, percentile, print_table
from sqlalchemy.pool import NullPool

from bankflow import Engine

URL_ENV = "BANKFLOW_BENCH_POSTGRES_URL"
DEFAULT_SERVER = "postgresql+psycopg://postgres@127.0.0.1:55432/postgres"
BPMN = Path(__file__).with_name("jobs_bench.bpmn")
WORKER = Path(__file__).with_name("_job_worker.py")
FAR_FUTURE = "2100-01-01T00:00:00+00:00"  # J1: every job is due
TARGET = 1.5  # J1: two workers / one worker

# Where the progress lines go: stdout, or stderr under --json (stdout is the document).
OUT: IO[str] = sys.stdout


def say(*parts: Any) -> None:
    print(*parts, file=OUT, flush=True)


@dataclass(frozen=True)
class Sizes:
    instances: int  # J1: per run, half waiting on a timer, half on a service call
    rounds: int  # J1: each round runs 1 worker and 2 workers, order alternating
    timers: int  # J2
    window: float  # J2: seconds over which the timers fall due
    side_rate: float  # J2: side-load instances/s (start + complete the user task)
    batch: int = 20  # jobs a worker claims at a time (the library default)
    poll: float = 0.1  # J2: the workers' poll interval


FULL = Sizes(instances=2_000, rounds=3, timers=2_000, window=20.0, side_rate=20.0)
QUICK = Sizes(instances=400, rounds=1, timers=300, window=8.0, side_rate=20.0)


# -- the database ------------------------------------------------------------------------


@contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """Create an empty database on the server, yield its URL, drop it (as tests do)."""
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    name = f"bf_bench_{uuid.uuid4().hex}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        try:
            yield admin.url.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


class Bench:
    """The bench database: an engine for the API side, plain SQL for checks."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = Engine(url, migrate=True)
        self.sql = sa.create_engine(url, poolclass=NullPool)
        self.engine.definitions.deploy(BPMN)
        self.created = 0

    def close(self) -> None:
        self.engine.close()
        self.sql.dispose()

    def scalar(self, query: str, **params: Any) -> Any:
        with self.sql.connect() as conn:
            return conn.execute(sa.text(query), params).scalar()

    def rows(self, query: str, **params: Any) -> list[Any]:
        with self.sql.connect() as conn:
            return list(conn.execute(sa.text(query), params))

    def server(self) -> list[str]:
        version = self.scalar("SHOW server_version")
        settings = ", ".join(
            f"{name}={self.scalar(f'SHOW {name}')}"
            for name in ("fsync", "synchronous_commit", "shared_buffers")
        )
        return [f"PostgreSQL {version} ({settings})"]

    def waiting(self) -> dict[str, int]:
        found = self.rows("SELECT kind, count(*) FROM bf_job GROUP BY kind")
        return {kind: n for kind, n in found}

    def start_waiting(self, count: int) -> float:
        """``count`` instances, half waiting on a timer and half on a service call; the
        instances/s of creating them."""
        began = time.perf_counter()
        for n in range(count):
            self.created += 1
            key = f"J1-{self.created:07d}"
            if n % 2 == 0:
                self.engine.instances.start("bench_timer", business_key=key)
            else:
                self.engine.instances.start("bench_service", business_key=key, data={"n": n})
        rate = count / (time.perf_counter() - began)
        expected = {"timer": (count + 1) // 2, "service": count // 2}
        waiting = self.waiting()
        assert waiting == {k: v for k, v in expected.items() if v}, waiting
        return rate


# -- CPU ---------------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class CpuSample:
    at: float
    busy: float  # seconds of CPU used machine-wide (all processes), from /proc/stat
    postgres: float  # seconds of CPU used by local processes named postgres


def background(seconds: float = 1.0) -> float | None:
    """Share of the machine's CPUs busy over ``seconds`` before the benchmark starts:
    anything else running skews every figure below."""
    before = cpu_sample()
    time.sleep(seconds)
    after = cpu_sample()
    if before is None or after is None:
        return None
    return (after.busy - before.busy) / (after.at - before.at) / (os.cpu_count() or 1)


def cpu_sample() -> CpuSample | None:
    """None where /proc is not there (CPU figures are then left out)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    ticks = [int(v) for v in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    postgres = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        name, rest = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :]
        if name == "postgres":
            values = rest.split()
            postgres += int(values[11]) + int(values[12])  # utime, stime
    return CpuSample(time.time(), (sum(ticks) - idle) / _TICK, postgres / _TICK)


# -- worker processes --------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    """What one worker process said it did."""

    started: float
    ended: float
    cpu: float
    cpu_kernel: float
    outcomes: dict[str, int]
    sections: dict[str, float]
    calls: dict[str, int]

    @property
    def jobs(self) -> int:
        return sum(self.outcomes.values())


class Fleet:
    """Worker processes that load, say ``ready``, and start working together on ``go``."""

    def __init__(self, url: str, count: int, *extra: str) -> None:
        # Each worker's stderr, shown if it fails; closed in close().
        self._errors = [tempfile.TemporaryFile("w+") for _ in range(count)]  # noqa: SIM115
        self._processes = [
            subprocess.Popen(
                [sys.executable, str(WORKER), url, *extra],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=error,
                text=True,
            )
            for error in self._errors
        ]

    def _line(self, process: subprocess.Popen[str], error: IO[str]) -> str:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            process.wait()
            error.seek(0)
            raise RuntimeError(f"worker exited {process.returncode}:\n{error.read()}")
        return line.strip()

    def _send(self, text: str) -> None:
        for process in self._processes:
            assert process.stdin is not None
            process.stdin.write(text + "\n")
            process.stdin.flush()

    def ready(self) -> None:
        for process, error in zip(self._processes, self._errors, strict=True):
            line = self._line(process, error)
            assert line == "ready", line

    def go(self) -> None:
        self._send("go")

    def stop(self) -> None:
        self._send("stop")

    def reports(self) -> list[Report]:
        found = []
        for process, error in zip(self._processes, self._errors, strict=True):
            data = json.loads(self._line(process, error))
            found.append(
                Report(
                    started=data["started"],
                    ended=data["ended"],
                    cpu=data["cpu"],
                    cpu_kernel=data["cpu_kernel"],
                    outcomes=data["outcomes"],
                    sections=data["sections"],
                    calls=data["calls"],
                )
            )
        return found

    def close(self) -> None:
        for process in self._processes:
            if process.stdin is not None:
                process.stdin.close()
        for process, error in zip(self._processes, self._errors, strict=True):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            error.seek(0)
            text = error.read().strip()
            if text:
                say(f"  (worker {process.pid} said: {text[-2000:]})")
            error.close()


# -- J1: throughput ----------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    workers: int
    jobs: int
    seconds: float  # from the first worker's go to the last one's end
    per_worker: tuple[int, ...]
    worker_cpu: float  # CPU seconds of the worker processes
    worker_kernel_cpu: float  # the part of it spent in the kernel
    postgres_cpu: float | None  # CPU seconds of the PostgreSQL server
    machine_busy: float | None  # CPU seconds used machine-wide over the same span
    sections: dict[str, float] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.jobs / self.seconds


def run_workers(bench: Bench, workers: int, sizes: Sizes, *, profile: bool = False) -> Run:
    """Every waiting job, run by ``workers`` processes with ``--once`` at a far date."""
    expected = sum(bench.waiting().values())
    extra = ["--mode", "once", "--now", FAR_FUTURE, "--batch", str(sizes.batch)]
    fleet = Fleet(bench.url, workers, *extra, *(["--profile"] if profile else []))
    try:
        fleet.ready()
        before = cpu_sample()
        fleet.go()
        reports = fleet.reports()
        after = cpu_sample()
    finally:
        fleet.close()
    done = Counter[str]()
    for report in reports:
        done.update(report.outcomes)
    assert set(done) <= {"timer fired", "service completed"}, done
    assert done.total() == expected, (done, expected)
    assert bench.waiting() == {}, bench.waiting()
    sections: Counter[str] = Counter()
    calls: Counter[str] = Counter()
    for report in reports:
        sections.update(report.sections)
        calls.update(report.calls)
    return Run(
        workers=workers,
        jobs=done.total(),
        seconds=max(r.ended for r in reports) - min(r.started for r in reports),
        per_worker=tuple(r.jobs for r in reports),
        worker_cpu=sum(r.cpu for r in reports),
        worker_kernel_cpu=sum(r.cpu_kernel for r in reports),
        postgres_cpu=None if before is None or after is None else after.postgres - before.postgres,
        machine_busy=None if before is None or after is None else after.busy - before.busy,
        sections=dict(sections),
        calls=dict(calls),
    )


@dataclass
class Throughput:
    runs: list[Run]
    create_rate: float  # instances/s the bench process created the workload at

    def rates(self, workers: int) -> list[float]:
        return [r.rate for r in self.runs if r.workers == workers]

    def ratio(self) -> float:
        """Median over rounds of the ratio measured within each round."""
        pairs = zip(self.rates(2), self.rates(1), strict=True)
        return statistics.median(two / one for two, one in pairs)


def throughput(bench: Bench, sizes: Sizes) -> Throughput:
    say(
        f"\nJ1 throughput: {sizes.rounds} round(s); in each, {sizes.instances} instances "
        f"({sizes.instances // 2} service calls, {(sizes.instances + 1) // 2} timers) are run "
        f"by 1 worker process and, afresh, by 2 (order alternating), batch {sizes.batch}"
    )
    runs = []
    creating = []
    for number in range(sizes.rounds):
        for workers in (1, 2) if number % 2 == 0 else (2, 1):
            creating.append(bench.start_waiting(sizes.instances))
            run = run_workers(bench, workers, sizes)
            runs.append(run)
            say("  " + _run_line(run))
    found = Throughput(runs, create_rate=statistics.median(creating))
    say(f"  (the bench process created the instances at {found.create_rate:.0f}/s)")
    return found


def _run_line(run: Run) -> str:
    line = (
        f"{run.workers} worker{'s' if run.workers > 1 else ' '}: {run.jobs} jobs in "
        f"{run.seconds:6.2f} s = {run.rate:5.0f} jobs/s (per worker {list(run.per_worker)})"
    )
    if run.postgres_cpu is not None and run.machine_busy:
        cores = os.cpu_count() or 1
        line += (
            f"; CPU per job: workers {run.worker_cpu / run.jobs * 1000:.2f} ms "
            f"({run.worker_kernel_cpu / run.worker_cpu:.0%} kernel), "
            f"PostgreSQL {run.postgres_cpu / run.jobs * 1000:.2f} ms; machine "
            f"{run.machine_busy / run.seconds / cores:.0%} busy of {cores} CPUs"
        )
    return line


# -- where one worker's time goes ------------------------------------------------------

SECTIONS = (
    ("claim", "claim (its statements and COMMIT included)"),
    ("SQL statements", "SQL statements: round trip + PostgreSQL + driver"),
    ("COMMIT", "COMMIT"),
    ("load state", "load state (zlib, JSON, SpiffWorkflow restore)"),
    ("SpiffWorkflow step", "SpiffWorkflow step (fire the timer / complete the call)"),
    ("save state", "save state (SpiffWorkflow serialize, JSON, zlib; data)"),
    ("handler", "the service handler"),
)


def breakdown(bench: Bench, sizes: Sizes) -> Run:
    bench.start_waiting(sizes.instances)
    run = run_workers(bench, 1, sizes, profile=True)
    say(
        f"\nWhere one worker's time goes ({run.jobs} jobs, {run.rate:.0f} jobs/s with the "
        "timing on; exclusive wall time of each section in the worker's thread):"
    )
    total = run.seconds
    for key, label in SECTIONS:
        spent = run.sections.get(key, 0.0)
        say(f"  {label:<58} {spent / run.jobs * 1000:6.3f} ms/job {spent / total:6.1%}")
    rest = total - sum(run.sections.values())
    say(
        f"  {'the rest: bankflow + SQLAlchemy Python, models':<58} "
        f"{rest / run.jobs * 1000:6.3f} ms/job {rest / total:6.1%}"
    )
    statements = run.calls.get("SQL statements", 0)
    commits = run.calls.get("COMMIT", 0)
    say(
        f"  per job: {statements / run.jobs:.2f} SQL statements and {commits / run.jobs:.2f} "
        f"COMMITs outside the claim; {run.calls.get('claim', 0)} claims "
        f"({run.jobs / max(run.calls.get('claim', 1), 1):.1f} jobs each)"
    )
    if run.postgres_cpu is not None:
        say(
            f"  CPU per job: worker {run.worker_cpu / run.jobs * 1000:.2f} ms, "
            f"PostgreSQL {run.postgres_cpu / run.jobs * 1000:.2f} ms "
            f"(wall {total / run.jobs * 1000:.2f} ms)"
        )
    return run


# -- J2: timer lag -----------------------------------------------------------------------


class SideLoad(threading.Thread):
    """An API client beside the workers: start an instance, complete its user task, at a
    steady ``rate`` per second (as far as it can keep up)."""

    def __init__(self, url: str, rate: float) -> None:
        super().__init__(name="side load", daemon=True)
        self._engine = Engine(url, migrate=False)
        self._rate = rate
        self._halt = threading.Event()
        self.done = 0
        self.latencies: list[float] = []  # seconds per API call
        self.seconds = 0.0

    def run(self) -> None:
        began = time.perf_counter()
        next_at = began
        try:
            while not self._halt.is_set():
                wait = next_at - time.perf_counter()
                if wait > 0 and self._halt.wait(wait):
                    break
                call = time.perf_counter()
                instance = self._engine.instances.start("bench_side", user="clerk")
                middle = time.perf_counter()
                [task] = instance.tasks
                self._engine.tasks.complete(task.id, user="clerk", groups=["ops"])
                finished = time.perf_counter()
                self.latencies += [middle - call, finished - middle]
                self.done += 1
                next_at += 1 / self._rate
        finally:
            self.seconds = time.perf_counter() - began
            self._engine.close()

    def stop(self) -> None:
        self._halt.set()
        self.join()


@dataclass(frozen=True)
class Lag:
    timers: int
    window: float
    lags: list[float]  # seconds, fired (timer_fired.at) minus due
    side_done: int
    side_seconds: float
    side_latencies: list[float]
    reports: list[Report]
    margin: float  # seconds between the workers' start and the first timer due

    def q(self, share: float) -> float:
        return percentile(self.lags, share)


def timer_lag(bench: Bench, sizes: Sizes, create_rate: float) -> Lag:
    say(
        f"\nJ2 timer lag: {sizes.timers} timers due uniformly over {sizes.window:g} s of real "
        f"time; 2 worker processes polling every {sizes.poll:g} s (batch {sizes.batch}); "
        f"an API client starts and completes {sizes.side_rate:g} instances/s beside them"
    )
    extra = ["--mode", "loop", "--poll", str(sizes.poll), "--batch", str(sizes.batch)]
    # Every timer must be created, and the workers loaded, before the first one is due:
    # allow half as long again as creating them took in J1, and 3 s for the workers.
    lead = 3.0 + 1.5 * sizes.timers / create_rate
    first = datetime.now(UTC) + timedelta(seconds=lead)
    dues = [
        first + timedelta(seconds=sizes.window * (n + 0.5) / sizes.timers)
        for n in range(sizes.timers)
    ]
    random.Random(7).shuffle(dues)
    for number, due in enumerate(dues):
        bench.engine.instances.start(
            "bench_timer_at", business_key=f"J2-{number:07d}", data={"due": due.isoformat()}
        )
    fleet = Fleet(bench.url, 2, *extra)
    try:
        fleet.ready()
        fleet.go()
        margin = (first - datetime.now(UTC)).total_seconds()
        side = SideLoad(bench.url, sizes.side_rate)
        side.start()
        deadline = time.time() + lead + sizes.window + 120
        while bench.scalar("SELECT count(*) FROM bf_job WHERE process_key = 'bench_timer_at'"):
            assert time.time() < deadline, "the timers did not all fire in two minutes"
            time.sleep(0.25)
        side.stop()
        fleet.stop()
        reports = fleet.reports()
    finally:
        fleet.close()
    found = bench.rows(
        "SELECT at, data->>'due_at' FROM bf_event "
        "WHERE type = 'timer_fired' AND process_key = 'bench_timer_at'"
    )
    assert len(found) == sizes.timers, len(found)
    lags = [(at - datetime.fromisoformat(due)).total_seconds() for at, due in found]
    lag = Lag(
        timers=sizes.timers,
        window=sizes.window,
        lags=lags,
        side_done=side.done,
        side_seconds=side.seconds,
        side_latencies=side.latencies,
        reports=reports,
        margin=margin,
    )
    _print_lag(lag)
    return lag


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def _print_lag(lag: Lag) -> None:
    per_worker = [r.jobs for r in lag.reports]
    say(
        f"  fired {len(lag.lags)} (per worker {per_worker}); lag p50 {_ms(lag.q(0.5))}, "
        f"p90 {_ms(lag.q(0.9))}, p99 {_ms(lag.q(0.99))}, max {_ms(max(lag.lags))}, "
        f"min {_ms(min(lag.lags))}"
    )
    say(
        f"  side load: {lag.side_done} instances in {lag.side_seconds:.1f} s "
        f"({lag.side_done / lag.side_seconds:.1f}/s), API call p50 "
        f"{percentile(lag.side_latencies, 0.5) * 1000:.1f} ms, p99 "
        f"{percentile(lag.side_latencies, 0.99) * 1000:.1f} ms"
    )
    say(f"  the workers started {lag.margin:.1f} s before the first timer was due")
    if lag.margin < 0:
        say("  WARNING: timers fell due before the workers ran: the first lags are inflated")


# -- the table ---------------------------------------------------------------------------


def rows(found: Throughput, lag: Lag | None) -> list[Row]:
    ratio = found.ratio()
    one, two = statistics.median(found.rates(1)), statistics.median(found.rates(2))
    table = [
        Row(
            figure="J1 jobs/s, 2 workers / 1 worker",
            bankflow=f"{two:.0f} jobs/s",
            baseline=f"{one:.0f} jobs/s",
            ratio=f"{ratio:.2f}x",
            target=f">= {TARGET:g}x",
            met=ratio >= TARGET,
        )
    ]
    if lag is not None:
        for label, value in (
            ("J2 timer lag p50", lag.q(0.5)),
            ("J2 timer lag p99", lag.q(0.99)),
            ("   timer lag max", max(lag.lags)),
        ):
            table.append(Row(label, _ms(value), "", "", "", None))
    return table


def document(
    sizes: Sizes,
    header: list[str],
    found: Throughput,
    profiled: Run | None,
    lag: Lag | None,
    table: list[Row],
) -> dict[str, Any]:
    def run_dict(run: Run) -> dict[str, Any]:
        return {**asdict(run), "rate": run.rate}

    result: dict[str, Any] = {
        "header": header,
        "sizes": asdict(sizes),
        "throughput": {
            "runs": [run_dict(r) for r in found.runs],
            "jobs_per_s_1_worker": statistics.median(found.rates(1)),
            "jobs_per_s_2_workers": statistics.median(found.rates(2)),
            "ratio": found.ratio(),
            "target": TARGET,
            "met": found.ratio() >= TARGET,
        },
        "breakdown": None if profiled is None else run_dict(profiled),
        "timer_lag": None,
        "table": [asdict(r) for r in table],
    }
    if lag is not None:
        result["timer_lag"] = {
            "timers": lag.timers,
            "window_s": lag.window,
            "p50_s": lag.q(0.5),
            "p90_s": lag.q(0.9),
            "p99_s": lag.q(0.99),
            "max_s": max(lag.lags),
            "min_s": min(lag.lags),
            "per_worker": [r.jobs for r in lag.reports],
            "side_load_instances": lag.side_done,
            "side_load_per_s": lag.side_done / lag.side_seconds,
            "side_load_call_p50_s": percentile(lag.side_latencies, 0.5),
            "side_load_call_p99_s": percentile(lag.side_latencies, 0.99),
        }
    return result


# -- main --------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    global OUT
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--db",
        default=os.environ.get(URL_ENV) or DEFAULT_SERVER,
        help=f"PostgreSQL server URL (default: ${URL_ENV}, else {DEFAULT_SERVER}); "
        "a database is created there for the run and dropped after",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke check")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument(
        "--profile", action="store_true", help="always break down one worker's time"
    )
    parser.add_argument("--no-lag", action="store_true", help="J1 only")
    parser.add_argument("--instances", type=int, help="J1: instances per run")
    parser.add_argument("--rounds", type=int, help="J1: rounds")
    parser.add_argument("--batch", type=int, help="jobs claimed at a time (default 20)")
    parser.add_argument("--timers", type=int, help="J2: timers")
    parser.add_argument("--window", type=float, help="J2: seconds the timers fall due over")
    parser.add_argument("--side-rate", type=float, help="J2: side-load instances/s")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    overrides = {
        name: getattr(args, name)
        for name in ("instances", "rounds", "batch", "timers", "window", "side_rate")
        if getattr(args, name) is not None
    }
    sizes = replace(sizes, **overrides)
    if sizes.rounds < 1 or sizes.instances < 2 or sizes.timers < 1:
        parser.error("--rounds must be at least 1, --instances 2, --timers 1")
    if args.json:
        OUT = sys.stderr
    if sa.make_url(args.db).get_backend_name() != "postgresql":
        parser.error("--db must name a PostgreSQL server (this benchmark is about SKIP LOCKED)")

    say("bankflow jobs benchmark" + (" (--quick)" if args.quick else ""))
    with fresh_database(args.db) as url:
        bench = Bench(url)
        try:
            idle = background()
            header = [*machine(), *bench.server()]
            if idle is not None:
                header.append(f"machine busy before the run: {idle:.0%} of its CPUs")
            for line in [*header, f"sizes: {sizes}"]:
                say(f"  {line}")
            if idle is not None and idle > 0.1:
                say("  WARNING: something else is using the CPUs; the figures will be skewed")
            found = throughput(bench, sizes)
            profiled = None
            if args.profile or found.ratio() < TARGET:
                profiled = breakdown(bench, sizes)
            lag = None if args.no_lag else timer_lag(bench, sizes, found.create_rate)
        finally:
            bench.close()
    table = rows(found, lag)
    if args.json:
        print(json.dumps(document(sizes, header, found, profiled, lag, table), indent=2))
    else:
        say()
        print_table(table)


if __name__ == "__main__":
    main()
