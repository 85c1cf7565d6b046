"""P3: the first page of a group's inbox as the database grows.

The first ``seed`` instances go through the API: by application number, 4 in 10 end
(2 small loans after Capture, 2 after Review), 3 wait at Capture (``cs``) and 3 at Review
(``risk``). Larger sizes are SQL copies of those rows (instance, task and candidate rows
with new ids, business keys and timestamps shifted back ``k`` hours for copy ``k``), so
the group mix and the share of finished instances (which have no task rows) stay the
same. History rows are not copied: the inbox never reads them.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _workload import application, complete_first, start
from sqlalchemy import event
from sqlalchemy.engine import Engine as SAEngine

from bankflow import Engine

GROUP = "risk"
PAGE = 50

# Replacement expressions for copy ``copy.k`` of a column, by the column's role.
_NEW_ID = "substr({c}, 1, 28) || printf('%08x', copy.k)"
_NEW_KEY = "{c} || '/' || copy.k"
_SHIFTED = "strftime('%Y-%m-%d %H:%M:%S', {c}, -copy.k || ' hours') || substr({c}, 20)"

# table -> (the seed table its rows are chosen by, {column: replacement})
_CLONED: dict[str, tuple[str, str, dict[str, str]]] = {
    "bf_instance": (
        "id",
        "seed_instance",
        {
            "id": _NEW_ID,
            "business_key": _NEW_KEY,
            "started_at": _SHIFTED,
            "updated_at": _SHIFTED,
            "ended_at": _SHIFTED,
        },
    ),
    "bf_task": (
        "id",
        "seed_task",
        {
            "id": _NEW_ID,
            "instance_id": _NEW_ID,
            "business_key": _NEW_KEY,
            "created_at": _SHIFTED,
            "due_at": _SHIFTED,
        },
    ),
    "bf_task_candidate": (
        "task_id",
        "seed_task",
        {"task_id": _NEW_ID, "created_at": _SHIFTED},
    ),
}


def seed_steps(number: int) -> int:
    """How many user tasks application ``number`` completes when seeding."""
    stage = number % 10
    if stage < 2:  # small loan: ends after Capture
        return 1
    if stage < 4:  # ends after Review
        return 2
    return 0 if stage < 7 else 1  # waits at Capture (cs) / at Review (risk)


def seed(engine: Engine, count: int) -> None:
    for number in range(count):
        instance = start(engine, application(number))
        for _ in range(seed_steps(number)):
            instance = complete_first(engine, instance)


class Cloner:
    """Copies the seed's runtime rows ``k`` times, on its own SQLite connection."""

    def __init__(self, path: Path) -> None:
        self.connection = sqlite3.connect(path)
        self.connection.execute("CREATE TEMP TABLE seed_instance AS SELECT id FROM bf_instance")
        self.connection.execute("CREATE TEMP TABLE seed_task AS SELECT id FROM bf_task")
        self.connection.execute("CREATE TEMP TABLE copy (k INTEGER PRIMARY KEY)")
        self.seed_count = self.count("bf_instance")

    def count(self, table: str) -> int:
        return int(self.connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0])

    def grow_to(self, instances: int) -> None:
        """Add copies until the database holds ``instances`` instances."""
        first = self.count("bf_instance") // self.seed_count
        last = instances // self.seed_count
        with self.connection:
            self.connection.execute("DELETE FROM copy")
            self.connection.executemany(
                "INSERT INTO copy VALUES (?)", [(k,) for k in range(first, last)]
            )
            for table, (key, seed_table, replaced) in _CLONED.items():
                self.connection.execute(
                    _clone_sql(self.connection, table, key, seed_table, replaced)
                )

    def close(self) -> None:
        self.connection.close()


def _clone_sql(
    connection: sqlite3.Connection, table: str, key: str, seed_table: str, replaced: dict[str, str]
) -> str:
    columns = [row[1] for row in connection.execute(f"PRAGMA table_info({table})")]
    values = [replaced.get(c, "{c}").format(c=f"{table}.{c}") for c in columns]
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(values)} "
        f"FROM {table} JOIN copy WHERE {table}.{key} IN (SELECT id FROM temp.{seed_table})"
    )


@dataclass(frozen=True)
class Timing:
    instances: int
    waiting_tasks: int
    api: list[float]  # seconds per engine.tasks.query call
    sql: list[float]  # seconds for the same SQL on a plain sqlite3 connection


def inbox(engine: Engine) -> list[Any]:
    return engine.tasks.query(groups=[GROUP], limit=PAGE)


def captured_sql(engine: Engine) -> tuple[str, tuple[Any, ...]]:
    """The statement and parameters the inbox call sends to the database."""
    seen: list[tuple[str, tuple[Any, ...]]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_rest: Any) -> None:
        seen.append((statement, tuple(parameters)))

    # Listening on the class hears every SQLAlchemy engine, bankflow's included.
    event.listen(SAEngine, "before_cursor_execute", record)
    try:
        inbox(engine)
    finally:
        event.remove(SAEngine, "before_cursor_execute", record)
    [query] = [s for s in seen if s[0].lstrip().upper().startswith("SELECT")]
    return query


def _timed(call: Callable[[], object], count: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(count):
        began = time.perf_counter()
        call()
        times.append(time.perf_counter() - began)
    return times


def measure(engine: Engine, path: Path, *, queries: int, warmup: int) -> Timing:
    page = inbox(engine)
    assert len(page) == PAGE, f"only {len(page)} {GROUP} tasks: seed more instances"
    assert all(GROUP in t.candidate_groups for t in page)
    statement, parameters = captured_sql(engine)
    connection = sqlite3.connect(path)
    try:
        instances = int(connection.execute("SELECT count(*) FROM bf_instance").fetchone()[0])
        waiting = int(connection.execute("SELECT count(*) FROM bf_task").fetchone()[0])
        sql = _timed(lambda: connection.execute(statement, parameters).fetchall(), queries, warmup)
    finally:
        connection.close()
    api = _timed(lambda: inbox(engine), queries, warmup)
    return Timing(instances=instances, waiting_tasks=waiting, api=api, sql=sql)


def query_plan(engine: Engine, path: Path) -> tuple[str, list[str]]:
    """The inbox SQL and SQLite's ``EXPLAIN QUERY PLAN`` for it."""
    statement, parameters = captured_sql(engine)
    connection = sqlite3.connect(path)
    try:
        rows = connection.execute(f"EXPLAIN QUERY PLAN {statement}", parameters).fetchall()
    finally:
        connection.close()
    return statement, [row[-1] for row in rows]
