"""``engine.external`` refuses durations and counts that one database would take and the
other refuse or overflow on: NaN, infinite, negative (for a lock also zero) and huge lock
durations, negative or huge ``max_tasks`` and ``retries`` are ``InvalidData`` on SQLite and
PostgreSQL alike, and the task stays as it was."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bankflow import Engine
from bankflow._clock import FixedClock
from bankflow.errors import InvalidData

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)

PROCESS = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="defs" targetNamespace="t">
  <bpmn:process id="bureau" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="call"/>
    <bpmn:serviceTask id="call" camunda:type="external" camunda:topic="credit-bureau"/>
    <bpmn:sequenceFlow id="f2" sourceRef="call" targetRef="end"/>
    <bpmn:endEvent id="end"/>
  </bpmn:process>
</bpmn:definitions>
"""

BAD_LOCKS: list[Any] = [
    0,
    0.0,
    -1,
    -3600.5,
    float("nan"),
    float("inf"),
    float("-inf"),
    1e300,
    10**400,  # too large even for a float
    Decimal("NaN"),
    timedelta(0),
    timedelta(seconds=-1),
    timedelta(days=999_999_999),
    "60",
    None,
    True,
]


@pytest.fixture
def engine(db_url: str, tmp_path: Path) -> Any:
    file = tmp_path / "bureau.bpmn"
    file.write_text(PROCESS, encoding="utf-8")
    eng = Engine(db_url, migrate=True, clock=FixedClock(T0))
    try:
        eng.definitions.deploy(file)
        eng.instances.start("bureau", business_key="B-1")
        yield eng
    finally:
        eng.close()


@pytest.mark.parametrize("duration", BAD_LOCKS, ids=repr)
def test_extend_lock_refuses_a_bad_duration(engine: Engine, duration: Any) -> None:
    [task] = engine.external.fetch_and_lock(["credit-bureau"], worker_id="w1", lock_duration=60)
    with pytest.raises(InvalidData, match="new_duration"):
        engine.external.extend_lock(task.id, worker_id="w1", new_duration=duration)
    assert engine.jobs.get(task.id).lock_expires_at == T0 + timedelta(seconds=60)


@pytest.mark.parametrize("duration", BAD_LOCKS, ids=repr)
def test_fetch_and_lock_refuses_a_bad_duration(engine: Engine, duration: Any) -> None:
    with pytest.raises(InvalidData, match="lock_duration"):
        engine.external.fetch_and_lock(["credit-bureau"], worker_id="w1", lock_duration=duration)
    [job] = engine.jobs.list()
    assert (job.lock_owner, job.lock_expires_at) == (None, None)


@pytest.mark.parametrize("max_tasks", [-1, 10_001, 2**63, 1.5, "3"], ids=repr)
def test_fetch_and_lock_refuses_a_bad_max_tasks(engine: Engine, max_tasks: Any) -> None:
    # SQLite reads LIMIT -1 as "no limit", PostgreSQL refuses it.
    with pytest.raises(InvalidData, match="max_tasks"):
        engine.external.fetch_and_lock(["credit-bureau"], worker_id="w1", max_tasks=max_tasks)
    [job] = engine.jobs.list()
    assert job.lock_owner is None


def test_fail_refuses_bad_retries_and_delays(engine: Engine) -> None:
    [task] = engine.external.fetch_and_lock(["credit-bureau"], worker_id="w1", lock_duration=60)
    for retries, delay in [(2**40, 0), (1, float("nan")), (1, -5), (1, 10**9)]:
        with pytest.raises(InvalidData):
            engine.external.fail(
                task.id, worker_id="w1", error_message="x", retries=retries, retry_timeout=delay
            )
    job = engine.jobs.get(task.id)
    assert (job.attempts, job.lock_owner) == (0, "w1")
    # Negative retries still mean "none left" (an incident), as before.
    assert engine.external.fail(task.id, worker_id="w1", error_message="x", retries=-3) == (
        "incident"
    )


def test_the_edges_are_accepted(engine: Engine) -> None:
    [task] = engine.external.fetch_and_lock(
        ["credit-bureau"], worker_id="w1", max_tasks=10_000, lock_duration=timedelta(days=366)
    )
    until = engine.external.extend_lock(task.id, worker_id="w1", new_duration=0.001)
    assert until == T0 + timedelta(milliseconds=1)
    assert engine.external.fail(task.id, worker_id="w1", error_message="x", retries=1) == "retry"


@pytest.mark.parametrize("task_id", ["\ud800", "x" * 100_000, "nul\x00", "not-an-id"])
def test_a_malformed_task_id_is_not_found_before_any_query(engine: Engine, task_id: str) -> None:
    from bankflow.errors import NotFound

    with pytest.raises(NotFound):
        engine.external.complete(task_id, worker_id="w1", variables={})
    with pytest.raises(NotFound):
        engine.external.extend_lock(task_id, worker_id="w1", new_duration=60)


@pytest.mark.parametrize("worker_id", ["\ud800", "", "w\x00", "w" * 1000])
def test_a_malformed_worker_id_is_refused(engine: Engine, worker_id: str) -> None:
    [task] = engine.external.fetch_and_lock(["credit-bureau"], worker_id="w1", lock_duration=60)
    with pytest.raises(InvalidData, match="worker_id"):
        engine.external.fetch_and_lock(["credit-bureau"], worker_id=worker_id)
    with pytest.raises(InvalidData, match="worker_id"):
        engine.external.complete(task.id, worker_id=worker_id, variables={})


@pytest.mark.parametrize("topics", ["credit-bureau", ["\ud800"], [""], [None]])
def test_malformed_topics_are_refused(engine: Engine, topics: Any) -> None:
    with pytest.raises(InvalidData, match="topics"):
        engine.external.fetch_and_lock(topics, worker_id="w1")


def test_a_malformed_error_code_is_refused(engine: Engine) -> None:
    [task] = engine.external.fetch_and_lock(["credit-bureau"], worker_id="w1", lock_duration=60)
    with pytest.raises(InvalidData, match="error_code"):
        engine.external.bpmn_error(task.id, worker_id="w1", error_code="\ud800")
