"""P4: bytes stored per instance, bankflow's rows against SpiffWorkflow's full JSON.

One application that goes through Review runs on both sides in step; at each point the
bankflow figures are SQL ``length()`` sums over its rows, the SpiffWorkflow figure is the
length of ``serialize_json`` of the stock workflow (what the naive design stores).
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from _workload import Application, Spec, complete_first, complete_next, start, stock_serializer
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow

from bankflow import Engine, InstanceStatus


@dataclass(frozen=True)
class Footprint:
    point: str
    state: int  # bf_instance.state (compressed, spec-less)
    rows: int  # the whole bf_instance row plus its bf_task and bf_task_candidate rows
    history: int  # its bf_event rows
    spiff_json: int  # serialize_json of the same workflow at the same point
    spiff_gzip: int  # the same, gzip'ed (serialize_json(use_gzip=True))


def _payload(connection: sqlite3.Connection, table: str, where: str, value: str) -> int:
    """Sum of ``length()`` of every column of the matching rows (no page or index bytes)."""
    columns = [row[1] for row in connection.execute(f"PRAGMA table_info({table})")]
    total = " + ".join(f"coalesce(length({c}), 0)" for c in columns)
    sql = f"SELECT coalesce(sum({total}), 0) FROM {table} WHERE {where}"
    return int(connection.execute(sql, (value,)).fetchone()[0])


def _bankflow_bytes(connection: sqlite3.Connection, instance_id: str) -> tuple[int, int, int]:
    (state,) = connection.execute(
        "SELECT length(state) FROM bf_instance WHERE id = ?", (instance_id,)
    ).fetchone()
    rows = (
        _payload(connection, "bf_instance", "id = ?", instance_id)
        + _payload(connection, "bf_task", "instance_id = ?", instance_id)
        + _payload(
            connection,
            "bf_task_candidate",
            "task_id IN (SELECT id FROM bf_task WHERE instance_id = ?)",
            instance_id,
        )
    )
    return int(state), rows, _payload(connection, "bf_event", "instance_id = ?", instance_id)


def footprints(engine: Engine, path: Path, app: Application) -> list[Footprint]:
    """Footprints while waiting at Review and once completed."""
    serializer = stock_serializer()

    def footprint(point: str, instance_id: str, workflow: BpmnWorkflow) -> Footprint:
        with closing(sqlite3.connect(path)) as connection:
            stored = _bankflow_bytes(connection, instance_id)
        return Footprint(
            point,
            *stored,
            spiff_json=len(serializer.serialize_json(workflow).encode()),
            spiff_gzip=len(serializer.serialize_json(workflow, use_gzip=True)),
        )

    instance = complete_first(engine, start(engine, app))
    workflow = Spec.parse().start(app.data)
    complete_next(workflow)
    assert [t.element_id for t in instance.tasks] == ["review"], instance.tasks
    waiting = footprint("waiting at Review", instance.id, workflow)
    instance = complete_first(engine, instance)
    complete_next(workflow)
    assert instance.status == InstanceStatus.COMPLETED
    assert workflow.is_completed()
    return [waiting, footprint("completed", instance.id, workflow)]
