"""bankflow's runtime measured side by side with SpiffWorkflow alone and a hand-built store.

    .venv/bin/python bench/runtime.py [--quick] [--profile]

Every figure is a ratio of two things measured in this one process, on this machine,
with the same workload (``loan_bench.bpmn``); absolute times are printed for context
only. ``--quick`` shrinks every size (a smoke check, under a minute); ``--profile`` adds
cProfile's top 25 (cumulative) for one bankflow batch. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import _inbox
import _workload
from _report import Rates, Row, interleaved, machine, percentile, print_table
from _storage import footprints
from _workload import (
    Application,
    Applications,
    BankflowRunner,
    NaiveRunner,
    RawRunner,
    Runner,
    Spec,
    application,
    is_small,
    open_engine,
)

BANKFLOW = "bankflow"
UNCACHED = "bankflow, cache_size=0"


@dataclass(frozen=True)
class Sizes:
    batch: int  # instances per runner per round (P1, P2)
    rounds: int
    warmup: int  # instances per runner before measuring
    inbox_seed: int  # instances created through the API (P3)
    inbox_sizes: tuple[int, ...]  # multiples of inbox_seed, ascending
    queries: int  # timed inbox queries per size
    query_warmup: int


FULL = Sizes(
    batch=300,
    rounds=9,
    warmup=30,
    inbox_seed=1_000,
    inbox_sizes=(1_000, 10_000, 100_000),
    queries=200,
    query_warmup=20,
)
QUICK = Sizes(
    batch=30,
    rounds=3,
    warmup=10,
    inbox_seed=200,
    inbox_sizes=(200, 2_000, 20_000),
    queries=50,
    query_warmup=10,
)


def _size(n: int) -> str:
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def _ratio(value: float) -> str:
    return f"{value:.2f}x"


# -- P1, P2: throughput ----------------------------------------------------------------


def throughput(tmp: Path, sizes: Sizes, *, profile: bool) -> list[Row]:
    spec = Spec.parse()
    engine = open_engine(tmp / "bankflow.db")
    uncached = open_engine(tmp / "bankflow-uncached.db", cache_size=0)
    naive = NaiveRunner(tmp / "naive.db", spec)
    runners: list[Runner] = [
        BankflowRunner(BANKFLOW, engine),
        BankflowRunner(UNCACHED, uncached),
        RawRunner(spec),
        naive,
    ]
    apps = Applications()
    try:
        interleaved(runners, [apps.take(sizes.warmup)])
        rates = interleaved(runners, [apps.take(sizes.batch) for _ in range(sizes.rounds)])
        _print_rates(rates, sizes)
        if profile:
            _profile(runners[0], apps.take(sizes.batch))
    finally:
        engine.close()
        uncached.close()
        naive.close()
    raw, hand = RawRunner.name, NaiveRunner.name
    return [
        _throughput_row("P1 bankflow / raw SpiffWorkflow", rates, BANKFLOW, raw, 0.5),
        _throughput_row("P2 bankflow / naive SQLite+JSON", rates, BANKFLOW, hand, 3.0),
        _throughput_row("   cache_size=0 / naive", rates, UNCACHED, hand, None),
    ]


def _throughput_row(
    figure: str, rates: Rates, name: str, baseline: str, target: float | None
) -> Row:
    ratio = rates.ratio(name, baseline)
    return Row(
        figure=figure,
        bankflow=f"{rates.median(name):.0f} inst/s",
        baseline=f"{rates.median(baseline):.0f} inst/s",
        ratio=_ratio(ratio),
        target="" if target is None else f">= {target:g}x",
        met=None if target is None else ratio >= target,
    )


def _print_rates(rates: Rates, sizes: Sizes) -> None:
    print(
        f"\nP1/P2 throughput: {sizes.rounds} rounds x {sizes.batch} instances per runner, "
        f"order rotated each round; {rates.tasks_per_instance:.2f} user tasks per instance"
    )
    for name, per_round in rates.by_runner.items():
        rounds = " ".join(f"{r:.0f}" for r in per_round)
        print(f"  {name:<24} median {rates.median(name):7.0f} inst/s   rounds: {rounds}")


def _profile(runner: Runner, batch: Sequence[Application]) -> None:
    profiler = cProfile.Profile()
    profiler.runcall(runner.run, batch)
    print(f"\ncProfile of {runner.name}, {len(batch)} instances (top 25, cumulative):")
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)


# -- P3: inbox query -------------------------------------------------------------------


def inbox(tmp: Path, sizes: Sizes) -> list[Row]:
    path = tmp / "inbox.db"
    with open_engine(path) as engine:
        _inbox.seed(engine, sizes.inbox_seed)
        cloner = _inbox.Cloner(path)
        try:
            timings = []
            for size in sizes.inbox_sizes:
                cloner.grow_to(size)
                timings.append(
                    _inbox.measure(engine, path, queries=sizes.queries, warmup=sizes.query_warmup)
                )
        finally:
            cloner.close()
        statement, plan = _inbox.query_plan(engine, path)
    _print_inbox(timings, sizes, statement, plan)
    return _inbox_rows(timings)


def _print_inbox(
    timings: Sequence[_inbox.Timing], sizes: Sizes, statement: str, plan: Sequence[str]
) -> None:
    print(
        f"\nP3 inbox: engine.tasks.query(groups=[{_inbox.GROUP!r}], limit={_inbox.PAGE}), "
        f"{sizes.queries} timed calls after {sizes.query_warmup} warm-up, per size; "
        "'SQL only' runs the same statement on a plain sqlite3 connection"
    )
    for t in timings:
        print(
            f"  {t.instances:>7} instances, {t.waiting_tasks:>6} waiting tasks:"
            f"  API p50 {_ms(percentile(t.api, 0.5))}  p95 {_ms(percentile(t.api, 0.95))}"
            f"  | SQL only p50 {_ms(percentile(t.sql, 0.5))}  p95 {_ms(percentile(t.sql, 0.95))}"
        )
    print(f"  SQL at {_size(timings[-1].instances)}:\n    " + " ".join(statement.split()))
    print("  EXPLAIN QUERY PLAN:")
    for line in plan:
        print(f"    {line}")


def _inbox_rows(timings: Sequence[_inbox.Timing]) -> list[Row]:
    p50 = [percentile(t.api, 0.5) for t in timings]
    largest, smallest = _size(timings[-1].instances), _size(timings[0].instances)
    rows = [
        Row(
            figure=f"P3 inbox p50 @ {_size(t.instances)}",
            bankflow=_ms(median),
            baseline="",
            ratio="",
            target="<= 2 ms" if t is timings[-1] else "",
            met=median <= 0.002 if t is timings[-1] else None,
        )
        for t, median in zip(timings, p50, strict=True)
    ]
    growth = p50[-1] / p50[0]
    rows.append(
        Row(
            figure=f"P3 inbox t({largest}) / t({smallest})",
            bankflow=_ms(p50[-1]),
            baseline=_ms(p50[0]),
            ratio=_ratio(growth),
            target="<= 2x",
            met=growth <= 2,
        )
    )
    return rows


# -- P4: bytes per instance ------------------------------------------------------------

REVIEWED = 5  # an application number that goes through Review
assert not is_small(REVIEWED)


def storage(tmp: Path) -> list[Row]:
    path = tmp / "storage.db"
    with open_engine(path) as engine:
        found = footprints(engine, path, application(REVIEWED))
    print("\nP4 bytes per instance (SQL length() of the stored values, no page overhead):")
    for f in found:
        print(
            f"  {f.point:<18} bankflow state {f.state} B, instance+task+candidate rows "
            f"{f.rows} B, history {f.history} B | SpiffWorkflow JSON {f.spiff_json} B, "
            f"gzip {f.spiff_gzip} B"
        )
    rows = []
    for f in found:
        rows.append(_bytes_row(f"P4 state / Spiff JSON, {f.point}", f.state, f.spiff_json, 1 / 3))
        rows.append(_bytes_row("   state+rows / Spiff JSON", f.rows, f.spiff_json, None))
    return rows


def _bytes_row(figure: str, ours: int, theirs: int, target: float | None) -> Row:
    ratio = ours / theirs
    return Row(
        figure=figure,
        bankflow=f"{ours} B",
        baseline=f"{theirs} B",
        ratio=_ratio(ratio),
        target="" if target is None else f"<= {target:.2f}x",
        met=None if target is None else ratio <= target,
    )


# -- main ------------------------------------------------------------------------------


WORKLOADS = {
    "minimal": Path(__file__).with_name("loan_bench.bpmn"),
    "reference": Path(__file__).with_name("loan_reference.bpmn"),
}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke check")
    parser.add_argument("--profile", action="store_true", help="cProfile one bankflow batch")
    parser.add_argument(
        "--workload",
        choices=sorted(WORKLOADS),
        default="reference",
        help="reference: a loan with the automatic steps of a real one (the architecture "
        "sketch's reference size); minimal: the same user tasks with nothing else",
    )
    args = parser.parse_args(argv)
    _workload.BPMN = WORKLOADS[args.workload]
    sizes = QUICK if args.quick else FULL
    print("bankflow runtime benchmark" + (" (--quick)" if args.quick else ""))
    for line in machine():
        print(f"  {line}")
    print(f"  workload: {args.workload} ({_workload.BPMN.name})")
    print(f"  sizes: {sizes}")
    with tempfile.TemporaryDirectory(prefix="bankflow-bench-") as tmp:
        rows = [
            *throughput(Path(tmp), sizes, profile=args.profile),
            *inbox(Path(tmp), sizes),
            *storage(Path(tmp)),
        ]
    print()
    print_table(rows)


if __name__ == "__main__":
    main()
