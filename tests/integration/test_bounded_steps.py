"""Bounded execution: a loop with no exit fails its instance (naming where it looped)
instead of holding the engine; SpiffWorkflow runs with no write transaction open; long
chains run without recursion limits; a value a step builds that cannot be stored fails
the step (retry possible), never leaves the instance stuck; a stopping worker interrupts a
long step after its grace period, writing nothing."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bankflow import Engine, FixedClock, InstanceStatus, Limits

HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn"
    xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"
    id="d" targetNamespace="t">
"""

LOOP = (
    HEAD
    + """  <bpmn:process id="loop" isExecutable="true">
    <bpmn:startEvent id="start" name="Start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="count"/>
    <bpmn:scriptTask id="count" name="Count"><bpmn:script>n = n + 1</bpmn:script></bpmn:scriptTask>
    <bpmn:sequenceFlow id="f2" sourceRef="count" targetRef="check"/>
    <bpmn:exclusiveGateway id="check" name="Again?" default="f_again"/>
    <bpmn:sequenceFlow id="f_again" sourceRef="check" targetRef="count"/>
    <bpmn:sequenceFlow id="f_never" sourceRef="check" targetRef="end">
      <bpmn:conditionExpression>n &lt; 0</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:endEvent id="end" name="End"/>
  </bpmn:process>
</bpmn:definitions>
"""
)

PLAIN_CYCLE = (
    HEAD
    + """  <bpmn:process id="plain" isExecutable="true">
    <bpmn:startEvent id="start" name="Start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="a"/>
    <bpmn:task id="a" name="A"/>
    <bpmn:sequenceFlow id="f2" sourceRef="a" targetRef="b"/>
    <bpmn:task id="b" name="B"/>
    <bpmn:sequenceFlow id="f3" sourceRef="b" targetRef="a"/>
  </bpmn:process>
</bpmn:definitions>
"""
)

# A timer a worker fires, then a loop with a service call the host handles inline (inside
# the step), so a test knows when the step is running.
SERVICE_LOOP = (
    HEAD
    + """  <bpmn:process id="service_loop" isExecutable="true">
    <bpmn:startEvent id="start" name="Start"/>
    <bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="wait"/>
    <bpmn:intermediateCatchEvent id="wait" name="Wait">
      <bpmn:timerEventDefinition><bpmn:timeDuration>PT1S</bpmn:timeDuration></bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="wait" targetRef="call"/>
    <bpmn:serviceTask id="call" name="Call" camunda:class="bank.Ping"/>
    <bpmn:sequenceFlow id="f2" sourceRef="call" targetRef="again"/>
    <bpmn:scriptTask id="again" name="Again"><bpmn:script>n = n + 1</bpmn:script></bpmn:scriptTask>
    <bpmn:sequenceFlow id="f3" sourceRef="again" targetRef="call"/>
  </bpmn:process>
</bpmn:definitions>
"""
)

BLOCKING = (
    HEAD
    + """  <bpmn:process id="blocking" isExecutable="true">
    <bpmn:startEvent id="start" name="Start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="call"/>
    <bpmn:serviceTask id="call" name="Call" camunda:class="bank.Hold"/>
    <bpmn:sequenceFlow id="f2" sourceRef="call" targetRef="end"/>
    <bpmn:endEvent id="end" name="End"/>
  </bpmn:process>
</bpmn:definitions>
"""
)

INBOX = (
    HEAD
    + """  <bpmn:process id="inbox" isExecutable="true">
    <bpmn:startEvent id="start" name="Start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="review"/>
    <bpmn:userTask id="review" name="Review" camunda:candidateGroups="clerks"/>
    <bpmn:sequenceFlow id="f2" sourceRef="review" targetRef="compute"/>
    <bpmn:scriptTask id="compute" name="Compute">
      <bpmn:script>{script}</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:sequenceFlow id="f3" sourceRef="compute" targetRef="second"/>
    <bpmn:userTask id="second" name="Second look" camunda:candidateGroups="clerks"/>
    <bpmn:sequenceFlow id="f4" sourceRef="second" targetRef="end"/>
    <bpmn:endEvent id="end" name="End"/>
  </bpmn:process>
</bpmn:definitions>
"""
)

THROWER = (
    HEAD
    + """  <bpmn:message id="told" name="told"/>
  <bpmn:process id="thrower" isExecutable="true">
    <bpmn:startEvent id="start" name="Start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="first"/>
    <bpmn:userTask id="first" name="First" camunda:candidateGroups="clerks"/>
    <bpmn:sequenceFlow id="f2" sourceRef="first" targetRef="tell"/>
    <bpmn:intermediateThrowEvent id="tell" name="Tell">
      <bpmn:messageEventDefinition id="tell_def" messageRef="told">
        <bpmn:extensionElements>
          <spiffworkflow:messagePayload>{payload}</spiffworkflow:messagePayload>
        </bpmn:extensionElements>
      </bpmn:messageEventDefinition>
    </bpmn:intermediateThrowEvent>
    <bpmn:sequenceFlow id="f3" sourceRef="tell" targetRef="second"/>
    <bpmn:userTask id="second" name="Second" camunda:candidateGroups="clerks"/>
    <bpmn:sequenceFlow id="f4" sourceRef="second" targetRef="end"/>
    <bpmn:endEvent id="end" name="End"/>
  </bpmn:process>
</bpmn:definitions>
"""
)


def _chain(n: int) -> str:
    parts = [
        HEAD,
        '  <bpmn:process id="chain" isExecutable="true">\n',
        '    <bpmn:startEvent id="s" name="Start"/>\n',
    ]
    previous = "s"
    for i in range(n):
        parts.append(f'    <bpmn:scriptTask id="t{i}" name="T{i}">')
        parts.append(f"<bpmn:script>x = {i}</bpmn:script></bpmn:scriptTask>\n")
        parts.append(
            f'    <bpmn:sequenceFlow id="f{i}" sourceRef="{previous}" targetRef="t{i}"/>\n'
        )
        previous = f"t{i}"
    parts.append('    <bpmn:endEvent id="e" name="End"/>\n')
    parts.append(f'    <bpmn:sequenceFlow id="fe" sourceRef="{previous}" targetRef="e"/>\n')
    parts.append("  </bpmn:process>\n</bpmn:definitions>\n")
    return "".join(parts)


def _deploy(engine: Engine, folder: Path, name: str, text: str) -> None:
    path = folder / f"{name}.bpmn"
    path.write_text(text, encoding="utf-8")
    engine.definitions.deploy(path)


def test_a_loop_with_no_exit_fails_the_instance_naming_the_element(
    db_url: str, tmp_path: Path
) -> None:
    with Engine(db_url, migrate=True, limits=Limits(max_steps=500)) as engine:
        _deploy(engine, tmp_path, "loop", LOOP)
        instance = engine.instances.start("loop", data={"n": 0})
        assert instance.status == InstanceStatus.FAILED
        assert instance.failure is not None
        assert instance.failure.error_type == "StepLimitExceeded"
        assert instance.failure.element_id in ("count", "check")
        assert "500" in instance.failure.message
        [event] = [
            e for e in engine.history.for_instance(instance.id) if e.type == "instance_failed"
        ]
        assert event.element_id == instance.failure.element_id
        # Recorded like any other failure: an incident to retry (after a fix).
        assert [i.instance_id for i in engine.incidents.list()] == [instance.id]
        retried = engine.instances.retry(instance.id)
        assert retried.status == InstanceStatus.FAILED
        assert retried.data["n"] > instance.data["n"]


def test_a_cycle_of_plain_tasks_fails_instead_of_crashing(db_url: str, tmp_path: Path) -> None:
    with Engine(db_url, migrate=True, limits=Limits(max_steps=300)) as engine:
        _deploy(engine, tmp_path, "plain", PLAIN_CYCLE)
        instance = engine.instances.start("plain")
        assert instance.status == InstanceStatus.FAILED
        assert instance.failure is not None
        assert instance.failure.element_id in ("a", "b")


def test_a_chain_of_5000_elements_deploys_and_runs(db_url: str, tmp_path: Path) -> None:
    with Engine(db_url, migrate=True) as engine:
        _deploy(engine, tmp_path, "chain", _chain(5000))
        instance = engine.instances.start("chain")
        assert instance.status == InstanceStatus.COMPLETED
        assert instance.data["x"] == 4999


def test_no_write_transaction_is_open_while_a_step_runs(sqlite_url: str, tmp_path: Path) -> None:
    """On SQLite a step used to hold the write lock: every other writer failed with
    'database is locked'. Here a step is held mid-way (inside a service handler the host
    runs inline) while another engine completes a task of another instance on the file."""
    held = threading.Event()
    release = threading.Event()
    with Engine(sqlite_url, migrate=True) as engine:
        _deploy(engine, tmp_path, "inbox", INBOX.format(script="y = 1"))
        _deploy(engine, tmp_path, "blocking", BLOCKING)
        waiting = engine.instances.start("inbox")

        @engine.services.register("Hold")
        def hold(data: dict[str, Any]) -> dict[str, Any]:
            held.set()
            assert release.wait(timeout=60), "the other writer never got through"
            return {"held": True}

        started: list[Any] = []
        runner = threading.Thread(target=lambda: started.append(engine.instances.start("blocking")))
        runner.start()
        try:
            assert held.wait(timeout=60)
            with Engine(sqlite_url) as other:
                [task] = waiting.tasks
                done = other.tasks.complete(task.id, user="anna", groups=["clerks"], data={})
                assert [t.element_id for t in done.tasks] == ["second"]
        finally:
            release.set()
            runner.join(timeout=120)
        [blocking] = started
        assert blocking.status == InstanceStatus.COMPLETED


@pytest.mark.parametrize(
    ("script", "reason"),
    [
        ("r = amount * amount * amount", "digits"),
        ("r = 'x' * 150000", "characters"),
        ("r = " + "[" * 40 + "1" + "]" * 40, "nested"),
    ],
)
def test_a_value_a_script_cannot_store_fails_the_step_and_retry_works(
    db_url: str, tmp_path: Path, script: str, reason: str
) -> None:
    with Engine(db_url, migrate=True) as engine:
        _deploy(engine, tmp_path, "inbox", INBOX.format(script=script))
        instance = engine.instances.start("inbox")
        [task] = instance.tasks
        failed = engine.tasks.complete(
            task.id, user="anna", groups=["clerks"], data={"amount": 10**40}
        )
        assert failed.status == InstanceStatus.FAILED
        assert failed.failure is not None
        assert failed.failure.element_id == "compute"
        assert reason in failed.failure.message
        # Nothing unstorable was kept, and the same call keeps giving a clear answer.
        assert "r" not in (engine.instances.get(instance.id).data or {})
        fixed = engine.instances.retry(instance.id, data={"amount": 2})
        if reason == "digits":
            assert fixed.status == InstanceStatus.RUNNING
            assert fixed.data["r"] == 8
        else:
            assert fixed.status == InstanceStatus.FAILED  # the script itself needs a fix


def test_an_unstorable_message_keeps_the_instance_as_it_was(db_url: str, tmp_path: Path) -> None:
    deep = "[" * 40 + "1" + "]" * 40
    with Engine(db_url, migrate=True, cache_size=0) as engine:
        _deploy(engine, tmp_path, "thrower", THROWER.format(payload=f'{{"deep": {deep}}}'))
        instance = engine.instances.start("thrower")
        [task] = instance.tasks
        failed = engine.tasks.complete(task.id, user="anna", groups=["clerks"], data={})
        assert failed.status == InstanceStatus.FAILED
        assert failed.failure is not None
        assert failed.failure.error_type == "UnstorableData"
        # Kept as before the step: the first task still waits, nothing was thrown.
        assert [t.element_id for t in failed.tasks] == ["first"]
        assert engine.jobs.list() == []


def test_a_thrown_message_is_sent_once_even_when_the_state_is_reloaded(
    db_url: str, tmp_path: Path
) -> None:
    with Engine(db_url, migrate=True, cache_size=0) as engine:
        _deploy(engine, tmp_path, "thrower", THROWER.format(payload='{"a": 1}'))
        instance = engine.instances.start("thrower")
        [task] = instance.tasks
        instance = engine.tasks.complete(task.id, user="anna", groups=["clerks"], data={})
        assert [j.kind for j in engine.jobs.list()] == ["message"]
        [task] = instance.tasks
        engine.tasks.complete(task.id, user="anna", groups=["clerks"], data={})
        assert [j.kind for j in engine.jobs.list()] == ["message"]


def test_a_stopping_worker_interrupts_a_long_step_after_its_grace(
    db_url: str, tmp_path: Path
) -> None:
    calls = threading.Event()
    clock = FixedClock(datetime(2026, 12, 1, 9, 0, tzinfo=UTC))
    limits = Limits(max_steps=10_000_000)
    with Engine(db_url, migrate=True, clock=clock, limits=limits) as engine:
        _deploy(engine, tmp_path, "service_loop", SERVICE_LOOP)
        instance = engine.instances.start("service_loop", data={"n": 0})
        clock.set(clock.now() + timedelta(seconds=2))

        @engine.services.register("Ping")
        def ping(data: dict[str, Any]) -> dict[str, Any]:
            calls.set()
            return {}

        worker = engine.worker(worker_id="w1", grace=0.5, poll_interval=0.05)
        runner = threading.Thread(target=worker.run)
        runner.start()
        assert calls.wait(timeout=60)
        worker.stop()
        runner.join(timeout=60)
        assert not runner.is_alive(), "the worker did not stop within its grace"
        # Nothing of the interrupted step was written; the job is free for another worker.
        after = engine.instances.get(instance.id)
        assert after.revision == instance.revision
        assert after.status == InstanceStatus.RUNNING
        [job] = engine.jobs.list()
        assert job.kind == "timer"
        assert job.lock_owner is None
