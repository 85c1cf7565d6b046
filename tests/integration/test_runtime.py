"""The durable runtime on both backends: every step reloads the instance from storage
(a fresh Engine, so nothing is served from the in-process cache)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from uuid import UUID

import pytest
import sqlalchemy as sa
from pydantic import BaseModel

from bankflow import (
    AccessDenied,
    DuplicateBusinessKey,
    Engine,
    FixedClock,
    InstanceStatus,
    InvalidData,
    InvalidState,
    InvalidTaskData,
    NotFound,
)

HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="t">"""

REVIEW = (
    HEAD
    + """
  <bpmn:process id="review" name="Review" isExecutable="true">
    <bpmn:laneSet id="ls">
      <bpmn:lane id="cs" name="Customer Service"><bpmn:flowNodeRef>capture</bpmn:flowNodeRef>
      </bpmn:lane>
      <bpmn:lane id="risk" name="Risk"><bpmn:flowNodeRef>assess</bpmn:flowNodeRef></bpmn:lane>
    </bpmn:laneSet>
    <bpmn:startEvent id="start" name="Start"/>
    <bpmn:userTask id="capture" name="Capture" camunda:dueDate="P2D" camunda:priority="70">
      <bpmn:extensionElements><camunda:formData>
        <camunda:formField id="amount" label="Amount" type="long">
          <camunda:validation><camunda:constraint name="required"/></camunda:validation>
        </camunda:formField>
        <camunda:formField id="purpose" type="enum">
          <camunda:value id="car" name="Car"/><camunda:value id="home" name="Home"/>
        </camunda:formField>
      </camunda:formData></bpmn:extensionElements>
    </bpmn:userTask>
    <bpmn:userTask id="assess" name="Assess"/>
    <bpmn:scriptTask id="score" name="Score" scriptFormat="python">
      <bpmn:script>score = amount / divisor</bpmn:script></bpmn:scriptTask>
    <bpmn:endEvent id="end" name="End"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="capture"/>
    <bpmn:sequenceFlow id="f2" sourceRef="capture" targetRef="assess"/>
    <bpmn:sequenceFlow id="f3" sourceRef="assess" targetRef="score"/>
    <bpmn:sequenceFlow id="f4" sourceRef="score" targetRef="end"/>
  </bpmn:process>
</bpmn:definitions>
"""
)

LOOP = (
    HEAD
    + """
  <bpmn:process id="loop" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:scriptTask id="init" scriptFormat="python"><bpmn:script>i = 0</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:exclusiveGateway id="join"/>
    <bpmn:scriptTask id="inc" scriptFormat="python"><bpmn:script>i = i + 1</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:exclusiveGateway id="check" default="back"/>
    <bpmn:endEvent id="end"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="init"/>
    <bpmn:sequenceFlow id="f2" sourceRef="init" targetRef="join"/>
    <bpmn:sequenceFlow id="f3" sourceRef="join" targetRef="inc"/>
    <bpmn:sequenceFlow id="f4" sourceRef="inc" targetRef="check"/>
    <bpmn:sequenceFlow id="done" sourceRef="check" targetRef="end">
      <bpmn:conditionExpression>i &gt;= rounds</bpmn:conditionExpression></bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="back" sourceRef="check" targetRef="join"/>
  </bpmn:process>
</bpmn:definitions>
"""
)

SERVICE = (
    HEAD
    + """
  <bpmn:process id="kyc" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:serviceTask id="screen" name="Screen" camunda:type="external" camunda:topic="kyc.screen"/>
    <bpmn:endEvent id="end"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="screen"/>
    <bpmn:sequenceFlow id="f2" sourceRef="screen" targetRef="end"/>
  </bpmn:process>
</bpmn:definitions>
"""
)

CS = ["Customer Service"]
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def deployed(db_url: str, tmp_path: Path) -> str:
    """A database with the three test processes deployed; returns its URL."""
    for name, text in (("review", REVIEW), ("loop", LOOP), ("kyc", SERVICE)):
        (tmp_path / f"{name}.bpmn").write_text(text)
    with Engine(db_url, migrate=True) as engine:
        engine.definitions.deploy(tmp_path)
    return db_url


def fresh(url: str, clock: FixedClock | None = None) -> Engine:
    return Engine(url, migrate=True, clock=clock, cache_size=0)


def table_counts(url: str) -> dict[str, int]:
    with sa.create_engine(url).connect() as connection:
        return {
            t: connection.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
            for t in ("bf_instance", "bf_task", "bf_task_candidate", "bf_event")
        }


def test_path_with_reload_between_steps(deployed: str) -> None:
    clock = FixedClock(T0)
    with fresh(deployed, clock) as engine:
        started = engine.instances.start(
            "review", business_key="L-1", data={"divisor": Decimal(4)}, user="alice"
        )
    assert started.status == InstanceStatus.RUNNING
    [capture] = started.tasks
    assert (capture.element_id, capture.lane, capture.candidate_groups) == (
        "capture",
        "Customer Service",
        ("Customer Service",),
    )
    assert capture.due_at == T0 + timedelta(days=2)
    assert capture.priority == 70
    with fresh(deployed, clock) as engine:
        assert [t.id for t in engine.tasks.query(groups=CS)] == [capture.id]
        assert engine.tasks.query(groups=["Risk"]) == []
        engine.tasks.claim(capture.id, user="bob", groups=CS)
    with fresh(deployed, clock) as engine:
        assert engine.tasks.query(assignee="bob")[0].id == capture.id
        after = engine.tasks.complete(
            capture.id, user="bob", groups=CS, data={"amount": 1000, "purpose": "car"}
        )
    [assess] = after.tasks
    assert (assess.element_id, assess.lane) == ("assess", "Risk")
    with fresh(deployed, clock) as engine:
        done = engine.tasks.complete(assess.id, user="carol", groups=["Risk"])
        assert done.status == InstanceStatus.COMPLETED
        assert done.data["score"] == Decimal(250)
        again = engine.instances.get(started.id)
        assert again.status == InstanceStatus.COMPLETED
        assert again.tasks == ()
        events = engine.history.for_instance(started.id)
    assert [(e.type, e.actor, e.element_id) for e in events] == [
        ("instance_started", "alice", None),
        ("task_created", None, "capture"),
        ("task_claimed", "bob", "capture"),
        ("task_completed", "bob", "capture"),
        ("task_created", None, "assess"),
        ("task_completed", "carol", "assess"),
        ("data_changed", None, "score"),
        ("end_event_reached", None, "end"),
        ("instance_completed", None, None),
    ]
    assert events[3].data == {"amount": 1000, "purpose": "car"}
    assert table_counts(deployed)["bf_task"] == 0


def test_access_is_checked(deployed: str) -> None:
    with fresh(deployed) as engine:
        [task] = engine.instances.start("review", data={"divisor": 1}).tasks
        with pytest.raises(AccessDenied, match="Customer Service"):
            engine.tasks.complete(task.id, user="mallory", groups=["Risk"], data={"amount": 1})
        with pytest.raises(AccessDenied):
            engine.tasks.claim(task.id, user="mallory")
        engine.tasks.claim(task.id, user="bob", groups=CS)
        with pytest.raises(AccessDenied, match="assigned to bob"):
            engine.tasks.complete(task.id, user="dave", groups=CS, data={"amount": 1})
        with pytest.raises(InvalidState, match="already claimed by bob"):
            engine.tasks.claim(task.id, user="dave", groups=CS)
        engine.tasks.delegate(task.id, user="bob", to_user="erin")
        delegated = engine.tasks.get(task.id)
        assert (delegated.assignee, delegated.candidate_users) == ("erin", ("erin",))
        engine.tasks.complete(task.id, user="erin", data={"amount": 5})
        assert [e.type for e in engine.history.for_actor("bob")] == [
            "task_claimed",
            "task_delegated",
        ]


def test_invalid_data_changes_nothing(deployed: str) -> None:
    with fresh(deployed) as engine:
        instance = engine.instances.start("review", data={"divisor": 1})
        [task] = instance.tasks
        before = table_counts(deployed)
        with pytest.raises(InvalidTaskData) as raised:
            engine.tasks.complete(
                task.id, user="bob", groups=CS, data={"amount": "lots", "purpose": "boat"}
            )
        assert sorted(e.field for e in raised.value.errors) == ["amount", "purpose"]
        with pytest.raises(InvalidTaskData) as missing:
            engine.tasks.complete(task.id, user="bob", groups=CS, data={})
        assert [e.field for e in missing.value.errors] == ["amount"]
        with pytest.raises(InvalidData, match="object"):
            engine.tasks.complete(task.id, user="bob", groups=CS, data={"x": object()})
        assert table_counts(deployed) == before
        assert engine.instances.get(instance.id).revision == instance.revision


def test_registered_model_validates_instead_of_the_form(deployed: str) -> None:
    class Capture(BaseModel):
        amount: Decimal
        applicant: str

    with fresh(deployed) as engine:
        engine.tasks.register_model("review", "capture", Capture)
        [task] = engine.instances.start("review", data={"divisor": 1}).tasks
        with pytest.raises(InvalidTaskData) as raised:
            engine.tasks.complete(task.id, user="bob", groups=CS, data={"amount": "1.5"})
        assert [e.field for e in raised.value.errors] == ["applicant"]
        after = engine.tasks.complete(
            task.id, user="bob", groups=CS, data={"amount": "1.50", "applicant": "Ann"}
        )
        assert after.data["amount"] == Decimal("1.50")


def test_exact_types_round_trip(deployed: str) -> None:
    values = {
        "divisor": Decimal("3"),
        "amount": Decimal("1234567890.12"),
        "opened": date(2026, 11, 2),
        "at": datetime(2026, 11, 2, 9, 30, tzinfo=UTC),
        "ref": UUID("12345678-1234-5678-1234-567812345678"),
        "nested": {"fees": [Decimal("0.10"), Decimal("0.20")]},
    }
    with fresh(deployed) as engine:
        instance = engine.instances.start("review", data=values)
    with fresh(deployed) as engine:
        stored = engine.instances.get(instance.id).data
        assert {k: stored[k] for k in values} == values
        assert type(stored["amount"]) is Decimal
        assert engine.tasks.data(instance.tasks[0].id)["opened"] == date(2026, 11, 2)


def test_failure_is_recorded_and_retry_resumes(deployed: str) -> None:
    with fresh(deployed) as engine:
        instance = engine.instances.start("review", data={"divisor": 0})
        capture = instance.tasks[0]
        engine.tasks.complete(capture.id, user="bob", groups=CS, data={"amount": 10})
        assess = engine.tasks.query(instance_id=instance.id)[0]
        failed = engine.tasks.complete(assess.id, user="carol", groups=["Risk"])
    assert failed.status == InstanceStatus.FAILED
    assert failed.failure is not None
    assert failed.failure.element_id == "score"
    assert failed.failure.error_type == "ZeroDivisionError"
    with fresh(deployed) as engine:
        shown = engine.instances.get(instance.id)
        assert shown.failure == failed.failure
        assert engine.history.for_instance(instance.id)[-1].type == "instance_failed"
        running = engine.instances.start("review", data={"divisor": 1})
        with pytest.raises(InvalidState, match="nothing to retry"):
            engine.instances.retry(running.id)
        fixed = engine.instances.retry(instance.id, data={"divisor": 5}, user="ops")
    assert fixed.status == InstanceStatus.COMPLETED
    assert fixed.data["score"] == 2


def test_a_loop_of_2000_rounds_completes_correctly(deployed: str) -> None:
    with fresh(deployed) as engine:
        instance = engine.instances.start("loop", data={"rounds": 2000})
        assert instance.status == InstanceStatus.COMPLETED
        assert engine.instances.get(instance.id).data["i"] == 2000


def test_failing_service_handler_fails_clearly(deployed: str) -> None:
    with fresh(deployed) as engine:

        def screen(data: dict[str, object]) -> dict[str, object]:
            raise KeyError("customer_id")

        engine.services.register("kyc.screen", screen)
        instance = engine.instances.start("kyc")
    assert instance.status == InstanceStatus.FAILED
    assert instance.failure is not None
    assert instance.failure.element_id == "screen"
    assert "kyc.screen" in instance.failure.message
    assert "KeyError" in instance.failure.message
    assert instance.failure.error_type != "NameError"


def test_business_keys_and_cancel(deployed: str) -> None:
    with fresh(deployed) as engine:
        instance = engine.instances.start("review", business_key="B-1", data={"divisor": 1})
        with pytest.raises(DuplicateBusinessKey):
            engine.instances.start("review", business_key="B-1")
        cancelled = engine.instances.cancel(instance.id, user="ops", reason="withdrawn")
        assert cancelled.status == InstanceStatus.CANCELLED
        assert engine.tasks.query(business_key="B-1") == []
        with pytest.raises(InvalidState):
            engine.instances.cancel(instance.id)
        assert [i.id for i in engine.instances.list(status="cancelled")] == [instance.id]
        assert engine.instances.list(process_key="review", status="running") == []
        with pytest.raises(NotFound):
            engine.instances.start("no-such-process")
        with pytest.raises(NotFound):
            engine.instances.get("no-such-instance")
