"""Claiming and the idle wait, on both backends: a claim takes the earliest due jobs up to
its limit, in due order, and only those nobody holds; ``next_due`` (how long an idle
worker sleeps) counts only the jobs that worker could claim, so a timer another worker is
running, or a call with no handler in this process, never makes it sleep a whole poll
interval past the next timer."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bankflow import Engine
from bankflow._clock import FixedClock

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
LOCK = timedelta(minutes=5)

PROCESSES = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="t">
  <bpmn:process id="wait" isExecutable="true">
    <bpmn:startEvent id="start" name="Start"/>
    <bpmn:intermediateCatchEvent id="until_due" name="Due">
      <bpmn:timerEventDefinition><bpmn:timeDate>${due}</bpmn:timeDate>
      </bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:endEvent id="end" name="End"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="until_due"/>
    <bpmn:sequenceFlow id="f2" sourceRef="until_due" targetRef="end"/>
  </bpmn:process>
  <bpmn:process id="call" isExecutable="true">
    <bpmn:startEvent id="call_start" name="Start"/>
    <bpmn:serviceTask id="notify" name="Notify" camunda:asyncBefore="true"
        camunda:delegateExpression="${notify}"/>
    <bpmn:endEvent id="call_end" name="End"/>
    <bpmn:sequenceFlow id="g1" sourceRef="call_start" targetRef="notify"/>
    <bpmn:sequenceFlow id="g2" sourceRef="notify" targetRef="call_end"/>
  </bpmn:process>
</bpmn:definitions>
"""


@pytest.fixture
def deployed(db_url: str, tmp_path: Path) -> Iterator[tuple[Engine, FixedClock]]:
    (tmp_path / "processes.bpmn").write_text(PROCESSES)
    clock = FixedClock(T0)
    engine = Engine(db_url, migrate=True, clock=clock, cache_size=0)
    try:
        engine.definitions.deploy(tmp_path / "processes.bpmn")
        yield engine, clock
    finally:
        engine.close()


def _wait_until(engine: Engine, minutes: int) -> str:
    instance = engine.instances.start(
        "wait", data={"due": (T0 + timedelta(minutes=minutes)).isoformat()}
    )
    [job] = engine.jobs.list(instance_id=instance.id)
    assert job.due_at == T0 + timedelta(minutes=minutes)
    return job.id


def test_a_claim_takes_the_earliest_due_jobs_in_due_order(
    deployed: tuple[Engine, FixedClock],
) -> None:
    engine, _ = deployed
    ids = {minutes: _wait_until(engine, minutes) for minutes in (5, 1, 4, 2, 3, 60)}
    at = T0 + timedelta(minutes=10)

    first = engine.jobs.claim(owner="a", now=at, limit=3)
    assert [j["id"] for j in first] == [ids[1], ids[2], ids[3]]
    assert {j["lock_owner"] for j in first} == {"a"}
    assert {j["lock_expires_at"] for j in first} == {at + LOCK}

    # What "a" holds is not claimed again; the one not due yet is not claimed at all.
    second = engine.jobs.claim(owner="b", now=at, limit=10)
    assert [j["id"] for j in second] == [ids[4], ids[5]]
    assert engine.jobs.claim(owner="c", now=at, limit=10) == []
    # Once a's locks run out, its jobs are free again.
    later = at + LOCK + timedelta(seconds=1)
    assert [j["id"] for j in engine.jobs.claim(owner="c", now=later, limit=2)] == [
        ids[1],
        ids[2],
    ]


def test_next_due_counts_only_jobs_this_worker_could_claim(
    deployed: tuple[Engine, FixedClock],
) -> None:
    engine, _ = deployed
    assert engine.jobs.next_due(now=T0) is None

    engine.instances.start("call")  # a service job due now, with no handler here
    assert engine.jobs.next_due(now=T0) is None
    engine.services.register("notify", lambda _data: {"notified": True})
    assert engine.jobs.next_due(now=T0) == T0
    engine.services.unregister("notify")

    _wait_until(engine, 1)
    _wait_until(engine, 2)
    assert engine.jobs.next_due(now=T0) == T0 + timedelta(minutes=1)

    # Another worker is running the first timer: the next one is what this worker waits for.
    at = T0 + timedelta(minutes=1)
    [taken] = engine.jobs.claim(owner="other", now=at, limit=1)
    assert taken["due_at"] == at
    assert engine.jobs.next_due(now=at) == T0 + timedelta(minutes=2)
    # Its lock runs out: the job counts again (due already, so look again at once).
    assert engine.jobs.next_due(now=at + LOCK + timedelta(seconds=1)) == at


def test_an_idle_worker_wakes_for_the_next_free_timer(deployed: tuple[Engine, FixedClock]) -> None:
    engine, clock = deployed
    worker = engine.worker(poll_interval=30.0)
    assert worker._idle_wait() == 30.0  # nothing waiting: one poll interval

    _wait_until(engine, 1)
    clock.set(T0 + timedelta(seconds=59, milliseconds=500))
    assert worker._idle_wait() == pytest.approx(0.5)

    # Due, but another worker holds it: sleep until the next one, not a poll interval.
    clock.set(T0 + timedelta(minutes=1))
    engine.jobs.claim(owner="other", limit=1)
    _wait_until(engine, 2)
    clock.set(T0 + timedelta(minutes=1, seconds=58))
    assert worker._idle_wait() == pytest.approx(2.0)

    # Due and free (it fell due after the last claim): look again almost at once.
    clock.set(T0 + timedelta(minutes=2))
    assert worker._idle_wait() == pytest.approx(0.01)
