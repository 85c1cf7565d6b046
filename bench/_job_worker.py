"""One worker process of bench/jobs.py: an Engine, the trivial handler, a ``Worker``.

    python bench/_job_worker.py URL --mode once|loop [--now ISO] [--batch N] [--poll S]
                                [--profile]

Everything a worker process pays once (imports, the engine and its first connection,
building the deployed definitions) happens before it prints ``ready``. It then waits for
``go`` on stdin, so the parent starts every worker at one moment and times the work
alone. ``once``: ``run(once=True, now=...)``, everything due, then report; ``loop``: run
as ``bankflow worker`` does (real clock, polling) until ``stop`` arrives on stdin. The
report is one JSON line on stdout; the process then waits for stdin to close, so its
database sessions (and their CPU time) still exist when the parent samples PostgreSQL.

``--profile`` times, in the worker's own thread, the claim, loading and saving the
state, SpiffWorkflow's step, the handler, each SQL statement and each COMMIT (by
wrapping those functions; the rest is bankflow's and SQLAlchemy's own Python).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from bankflow import Engine
from bankflow.runtime import _spiff

SERVICE = "bench_noop"
PROCESSES = ("bench_timer", "bench_service", "bench_timer_at", "bench_side")


def noop(_data: dict[str, Any]) -> dict[str, Any]:
    return {"ok": True}


class Sections:
    """Exclusive time per section, in the main thread only (the heartbeat is not work)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: Counter[str] = Counter()
        self._stack: list[list[Any]] = []  # [name, time spent in nested sections]
        self._main = threading.main_thread()

    def wrap(self, name: str, fn: Callable[..., Any], *, within_claim: bool = True) -> Any:
        """``within_claim=False``: time spent inside ``claim`` stays the claim's."""

        def timed(*args: Any, **kwargs: Any) -> Any:
            if threading.current_thread() is not self._main or (
                not within_claim and any(frame[0] == "claim" for frame in self._stack)
            ):
                return fn(*args, **kwargs)
            began = time.perf_counter()
            self._stack.append([name, 0.0])
            try:
                return fn(*args, **kwargs)
            finally:
                spent = time.perf_counter() - began
                _, nested = self._stack.pop()
                self.seconds[name] += spent - nested
                self.calls[name] += 1
                if self._stack:
                    self._stack[-1][1] += spent

        return timed


def _instrument(engine: Engine, sections: Sections) -> None:
    # A benchmark reaches inside: the functions timed are the engine's own.
    engine.jobs.claim = sections.wrap("claim", engine.jobs.claim)
    for name, section in (
        ("load_state", "load state"),
        ("dump_state", "save state"),
        ("convert_data", "save state"),
        ("fire_timers", "SpiffWorkflow step"),
        ("complete_service", "SpiffWorkflow step"),
    ):
        setattr(_spiff, name, sections.wrap(section, getattr(_spiff, name)))
    dialect = engine.jobs._db.engine.dialect
    for name in ("do_execute", "do_executemany", "do_execute_no_params"):
        timed = sections.wrap("SQL statements", getattr(dialect, name), within_claim=False)
        setattr(dialect, name, timed)
    dialect.do_commit = sections.wrap("COMMIT", dialect.do_commit, within_claim=False)
    engine.services.register(SERVICE, sections.wrap("handler", noop))


def _warm(engine: Engine) -> None:
    """Build every deployed definition now, as a long-running worker already has."""
    catalog = engine.jobs._executor._catalog
    for key in PROCESSES:
        catalog.get(engine.definitions.get(key).id)


def _cpu() -> tuple[float, float]:
    """CPU seconds of this process so far: all of it, and the kernel's part."""
    times = os.times()
    return times.user + times.system, times.system


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--mode", choices=("once", "loop"), required=True)
    parser.add_argument("--now", help="once: run what is due at this ISO time")
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--poll", type=float, default=1.0)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)

    engine = Engine(args.url, migrate=False)
    engine.services.register(SERVICE, noop)
    sections = Sections()
    if args.profile:
        _instrument(engine, sections)
    _warm(engine)
    results: Counter[str] = Counter()
    worker = engine.worker(
        worker_id=f"bench-{os.getpid()}",
        poll_interval=args.poll,
        batch=args.batch,
        on_outcome=lambda o: results.update([f"{o.kind} {o.result}"]),
        on_error=lambda message: print(message, file=sys.stderr, flush=True),
    )
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return
    if args.mode == "loop":

        def stop_on_request() -> None:
            sys.stdin.readline()
            worker.stop()

        threading.Thread(target=stop_on_request, daemon=True).start()
    cpu, started = _cpu(), time.time()
    worker.run(
        once=args.mode == "once",
        now=datetime.fromisoformat(args.now) if args.now else None,
    )
    ended, (cpu_end, sys_end) = time.time(), _cpu()
    report = {
        "pid": os.getpid(),
        "started": started,
        "ended": ended,
        "cpu": cpu_end - cpu[0],
        "cpu_kernel": sys_end - cpu[1],
        "outcomes": dict(results),
        "sections": dict(sections.seconds),
        "calls": dict(sections.calls),
    }
    print(json.dumps(report), flush=True)
    sys.stdin.read()  # until the parent has sampled PostgreSQL and closes our stdin
    engine.close()


if __name__ == "__main__":
    main()
