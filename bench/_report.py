"""Measuring side by side and printing: interleaved rounds, percentiles, the table."""

from __future__ import annotations

import os
import platform
import sqlite3
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version

from _workload import Application, Runner


@dataclass(frozen=True)
class Rates:
    """Instances per second of each runner, one entry per round."""

    by_runner: dict[str, list[float]]
    tasks_per_instance: float

    def median(self, name: str) -> float:
        return statistics.median(self.by_runner[name])

    def ratio(self, name: str, baseline: str) -> float:
        """Median over rounds of the ratio measured within each round."""
        pairs = zip(self.by_runner[name], self.by_runner[baseline], strict=True)
        return statistics.median(a / b for a, b in pairs)


def interleaved(runners: Sequence[Runner], batches: Sequence[Sequence[Application]]) -> Rates:
    """Every runner runs every batch; the order rotates from one round to the next so
    drift (caches, a busy neighbour) falls on all of them alike."""
    rates: dict[str, list[float]] = {r.name: [] for r in runners}
    tasks = 0
    for number, batch in enumerate(batches):
        shift = number % len(runners)
        done = set()
        for runner in [*runners[shift:], *runners[:shift]]:
            began = time.perf_counter()
            done.add(runner.run(batch))
            rates[runner.name].append(len(batch) / (time.perf_counter() - began))
        assert len(done) == 1, f"the runners did different work: {done} user tasks"
        tasks += done.pop()
    return Rates(rates, tasks_per_instance=tasks / sum(len(b) for b in batches))


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def machine() -> list[str]:
    return [
        f"machine: {platform.machine()} {platform.processor() or ''}".rstrip()
        + f", {os.cpu_count()} CPUs, {platform.system()} {platform.release()}",
        f"python {sys.version.split()[0]}, SpiffWorkflow {version('SpiffWorkflow')}, "
        f"SQLite {sqlite3.sqlite_version}, SQLAlchemy {version('SQLAlchemy')}, "
        f"bankflow {version('bankflow')}",
    ]


@dataclass(frozen=True)
class Row:
    figure: str
    bankflow: str
    baseline: str
    ratio: str
    target: str
    met: bool | None  # None: for information, no target


def print_table(rows: Sequence[Row]) -> None:
    header = ("figure", "bankflow", "baseline", "ratio", "target", "result")
    cells = [header] + [
        (r.figure, r.bankflow, r.baseline, r.ratio, r.target, _verdict(r.met)) for r in rows
    ]
    widths = [max(len(line[i]) for line in cells) for i in range(len(header))]
    for n, line in enumerate(cells):
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
        if n == 0:
            print("  ".join("-" * width for width in widths))


def _verdict(met: bool | None) -> str:
    return {True: "ok", False: "MISSED", None: "(info)"}[met]
