"""Messages on both backends: ``engine.messages.correlate`` delivers to the one waiting
instance (catch event, receive task, boundary event) or starts one (message start event);
messages one instance throws travel to another as ``message`` jobs run by
``engine.jobs.run_due()``. Every step reloads from storage (a fresh Engine, no cache)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from bankflow import (
    CorrelationError,
    DuplicateBusinessKey,
    Engine,
    FixedClock,
    InstanceStatus,
    InvalidData,
    InvalidState,
)

HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn"
    xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"
    id="d" targetNamespace="t">"""
TAIL = "\n</bpmn:definitions>\n"

# Documents arrive days after the application: the instance waits at a catch event.
ONBOARDING = (
    HEAD
    + """
  <bpmn:message id="Msg_docs" name="documents_received"/>
  <bpmn:process id="onboarding" name="Onboarding" isExecutable="true">
    <bpmn:startEvent id="start" name="Application in"/>
    <bpmn:intermediateCatchEvent id="wait_docs" name="Documents received">
      <bpmn:messageEventDefinition id="wait_docs_def" messageRef="Msg_docs"/>
    </bpmn:intermediateCatchEvent>
    <bpmn:userTask id="review" name="Review documents" camunda:candidateGroups="kyc"/>
    <bpmn:endEvent id="end" name="Onboarded"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="wait_docs"/>
    <bpmn:sequenceFlow id="f2" sourceRef="wait_docs" targetRef="review"/>
    <bpmn:sequenceFlow id="f3" sourceRef="review" targetRef="end"/>
  </bpmn:process>"""
    + TAIL
)

CONTRACT = (
    HEAD
    + """
  <bpmn:message id="Msg_signed" name="contract_signed"/>
  <bpmn:process id="contract" name="Contract" isExecutable="true">
    <bpmn:startEvent id="start" name="Contract sent"/>
    <bpmn:receiveTask id="await_signature" name="Await signature" messageRef="Msg_signed"/>
    <bpmn:userTask id="activate" name="Activate account" camunda:candidateGroups="ops"/>
    <bpmn:endEvent id="end" name="Active"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="await_signature"/>
    <bpmn:sequenceFlow id="f2" sourceRef="await_signature" targetRef="activate"/>
    <bpmn:sequenceFlow id="f3" sourceRef="activate" targetRef="end"/>
  </bpmn:process>"""
    + TAIL
)

# A dispute under review: withdrawing it interrupts the review, a customer call does not.
DISPUTE = (
    HEAD
    + """
  <bpmn:message id="Msg_withdrawn" name="dispute_withdrawn"/>
  <bpmn:message id="Msg_called" name="customer_called"/>
  <bpmn:process id="dispute" name="Dispute" isExecutable="true">
    <bpmn:startEvent id="start" name="Dispute raised"/>
    <bpmn:userTask id="investigate" name="Investigate" camunda:candidateGroups="disputes"/>
    <bpmn:boundaryEvent id="withdrawn" name="Withdrawn" attachedToRef="investigate">
      <bpmn:messageEventDefinition id="withdrawn_def" messageRef="Msg_withdrawn"/>
    </bpmn:boundaryEvent>
    <bpmn:boundaryEvent id="called" name="Customer called" cancelActivity="false"
        attachedToRef="investigate">
      <bpmn:messageEventDefinition id="called_def" messageRef="Msg_called"/>
    </bpmn:boundaryEvent>
    <bpmn:userTask id="close" name="Close withdrawn dispute" camunda:candidateGroups="disputes"/>
    <bpmn:userTask id="call_back" name="Call customer back" camunda:candidateGroups="disputes"/>
    <bpmn:endEvent id="end" name="Resolved"/>
    <bpmn:endEvent id="end_withdrawn" name="Withdrawn"/>
    <bpmn:endEvent id="end_called" name="Called back"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="investigate"/>
    <bpmn:sequenceFlow id="f2" sourceRef="investigate" targetRef="end"/>
    <bpmn:sequenceFlow id="f3" sourceRef="withdrawn" targetRef="close"/>
    <bpmn:sequenceFlow id="f4" sourceRef="close" targetRef="end_withdrawn"/>
    <bpmn:sequenceFlow id="f5" sourceRef="called" targetRef="call_back"/>
    <bpmn:sequenceFlow id="f6" sourceRef="call_back" targetRef="end_called"/>
  </bpmn:process>"""
    + TAIL
)

APPLICATION = (
    HEAD
    + """
  <bpmn:message id="Msg_app" name="application_submitted"/>
  <bpmn:process id="application" name="Application" isExecutable="true">
    <bpmn:startEvent id="submitted" name="Application submitted">
      <bpmn:messageEventDefinition id="submitted_def" messageRef="Msg_app"/>
    </bpmn:startEvent>
    <bpmn:userTask id="check" name="Check application" camunda:candidateGroups="credit"/>
    <bpmn:endEvent id="end" name="Checked"/>
    <bpmn:sequenceFlow id="f1" sourceRef="submitted" targetRef="check"/>
    <bpmn:sequenceFlow id="f2" sourceRef="check" targetRef="end"/>
  </bpmn:process>"""
    + TAIL
)

# The document portal: one instance per upload throws "documents_received", which must
# reach the onboarding instance with the same business key. Three ways to throw it; the
# payload is SpiffWorkflow's messagePayload expression (without one, the message is empty).
_PAYLOAD = """<bpmn:extensionElements><spiffworkflow:messagePayload>
        {"docs": docs, "upload": upload}
      </spiffworkflow:messagePayload></bpmn:extensionElements>"""
_THROWERS = {
    "intermediate_throw": """
    <bpmn:startEvent id="start" name="Upload"/>
    <bpmn:scriptTask id="collect" name="Collect" scriptFormat="python">
      <bpmn:script>docs = ["passport", "payslip"]</bpmn:script></bpmn:scriptTask>
    <bpmn:intermediateThrowEvent id="notify" name="Notify onboarding">
      <bpmn:messageEventDefinition id="notify_def" messageRef="Msg_docs">
      """
    + _PAYLOAD
    + """</bpmn:messageEventDefinition>
    </bpmn:intermediateThrowEvent>
    <bpmn:endEvent id="end" name="Done"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="collect"/>
    <bpmn:sequenceFlow id="f2" sourceRef="collect" targetRef="notify"/>
    <bpmn:sequenceFlow id="f3" sourceRef="notify" targetRef="end"/>""",
    "end_event": """
    <bpmn:startEvent id="start" name="Upload"/>
    <bpmn:scriptTask id="collect" name="Collect" scriptFormat="python">
      <bpmn:script>docs = ["passport", "payslip"]</bpmn:script></bpmn:scriptTask>
    <bpmn:endEvent id="notify" name="Notify onboarding">
      <bpmn:messageEventDefinition id="notify_def" messageRef="Msg_docs"/>
    </bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="collect"/>
    <bpmn:sequenceFlow id="f2" sourceRef="collect" targetRef="notify"/>""",
    "send_task": """
    <bpmn:startEvent id="start" name="Upload"/>
    <bpmn:scriptTask id="collect" name="Collect" scriptFormat="python">
      <bpmn:script>docs = ["passport", "payslip"]</bpmn:script></bpmn:scriptTask>
    <bpmn:sendTask id="notify" name="Notify onboarding" messageRef="Msg_docs">
      """
    + _PAYLOAD
    + """</bpmn:sendTask>
    <bpmn:endEvent id="end" name="Done"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="collect"/>
    <bpmn:sequenceFlow id="f2" sourceRef="collect" targetRef="notify"/>
    <bpmn:sequenceFlow id="f3" sourceRef="notify" targetRef="end"/>""",
}


def portal(thrower: str) -> str:
    return (
        HEAD
        + """
  <bpmn:message id="Msg_docs" name="documents_received"/>
  <bpmn:process id="portal" name="Document portal" isExecutable="true">"""
        + _THROWERS[thrower]
        + """
  </bpmn:process>"""
        + TAIL
    )


T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
KYC = ["kyc"]
TABLES = ("bf_instance", "bf_task", "bf_event", "bf_job", "bf_subscription")


def deploy(url: str, tmp_path: Path, **files: str) -> None:
    folder = tmp_path / "bpmn"
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / f"{name}.bpmn").write_text(text)
    with Engine(url, migrate=True) as engine:
        engine.definitions.deploy(folder)


def fresh(url: str, clock: FixedClock | None = None) -> Engine:
    return Engine(url, clock=clock, cache_size=0)


def table_counts(url: str) -> dict[str, int]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return {
                t: connection.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
                for t in TABLES
            }
    finally:
        engine.dispose()


def subscriptions(url: str) -> list[tuple[str, str | None, str, str]]:
    """(message name, business key, element id, instance id) of every subscription row."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text(
                    "SELECT message_name, business_key, element_id, instance_id "
                    "FROM bf_subscription ORDER BY message_name, business_key, instance_id"
                )
            )
            return [(r[0], r[1], r[2], r[3]) for r in rows]
    finally:
        engine.dispose()


def history(url: str, instance_id: str) -> list[tuple[str, str | None, str | None]]:
    with fresh(url) as engine:
        return [(e.type, e.element_id, e.actor) for e in engine.history.for_instance(instance_id)]


# -- correlate: intermediate catch event ----------------------------------------------------


def test_catch_event_by_business_key_days_later(db_url: str, tmp_path: Path) -> None:
    deploy(db_url, tmp_path, onboarding=ONBOARDING)
    clock = FixedClock(T0)
    with fresh(db_url, clock) as engine:
        waiting = engine.instances.start(
            "onboarding", business_key="C-1", data={"customer": "Ann"}, user="alice"
        )
        other = engine.instances.start("onboarding", business_key="C-2", data={"customer": "Bo"})
    assert (waiting.status, waiting.tasks) == (InstanceStatus.RUNNING, ())
    assert subscriptions(db_url) == sorted(
        [
            ("documents_received", "C-1", "wait_docs", waiting.id),
            ("documents_received", "C-2", "wait_docs", other.id),
        ]
    )

    later = T0 + timedelta(days=3)
    clock.set(later)
    with fresh(db_url, clock) as engine:
        [delivered] = engine.messages.correlate(
            "documents_received",
            business_key="C-1",
            data={"documents": ["passport", "payslip"], "amount": Decimal("1200.50")},
            user="portal",
        )
    assert delivered.id == waiting.id
    assert delivered.status == InstanceStatus.RUNNING
    assert delivered.revision == 1
    assert delivered.updated_at == later
    [review] = delivered.tasks
    assert (review.element_id, review.name, review.candidate_groups, review.created_at) == (
        "review",
        "Review documents",
        ("kyc",),
        later,
    )

    with fresh(db_url, clock) as engine:
        stored = engine.instances.get(waiting.id)
        assert stored.data == {
            "customer": "Ann",
            "documents": ["passport", "payslip"],
            "amount": Decimal("1200.50"),
        }
        assert type(stored.data["amount"]) is Decimal
        assert [t.id for t in engine.tasks.query(groups=KYC)] == [review.id]
        assert engine.tasks.data(review.id)["documents"] == ["passport", "payslip"]
        # The other customer still waits, untouched.
        untouched = engine.instances.get(other.id)
        assert (untouched.revision, untouched.tasks, untouched.data) == (0, (), {"customer": "Bo"})
        events = engine.history.for_instance(waiting.id)
    assert [(e.type, e.element_id, e.actor, e.at) for e in events] == [
        ("instance_started", None, "alice", T0),
        ("message_received", "wait_docs", "portal", later),
        ("task_created", "review", None, later),
    ]
    assert events[1].data == {
        "message": "documents_received",
        "data": {"documents": ["passport", "payslip"], "amount": Decimal("1200.50")},
    }
    assert subscriptions(db_url) == [("documents_received", "C-2", "wait_docs", other.id)]

    with fresh(db_url, clock) as engine:
        done = engine.tasks.complete(review.id, user="kim", groups=KYC)
    assert done.status == InstanceStatus.COMPLETED
    # The same message again: nobody with C-1 waits any more.
    with fresh(db_url, clock) as engine, pytest.raises(CorrelationError, match="'C-1'"):
        engine.messages.correlate("documents_received", business_key="C-1")


# -- receive task ---------------------------------------------------------------------------


def test_receive_task(db_url: str, tmp_path: Path) -> None:
    deploy(db_url, tmp_path, contract=CONTRACT)
    with fresh(db_url) as engine:
        instance = engine.instances.start("contract", business_key="K-7", data={"iban": "X1"})
    assert instance.tasks == ()
    assert subscriptions(db_url) == [("contract_signed", "K-7", "await_signature", instance.id)]
    with fresh(db_url) as engine:
        [after] = engine.messages.correlate(
            "contract_signed", business_key="K-7", data={"signed_by": "Ann"}
        )
    assert after.id == instance.id
    assert [t.element_id for t in after.tasks] == ["activate"]
    assert subscriptions(db_url) == []
    with fresh(db_url) as engine:
        stored = engine.instances.get(instance.id)
        assert stored.data == {"iban": "X1", "signed_by": "Ann"}
        assert [t.element_id for t in stored.tasks] == ["activate"]
        done = engine.tasks.complete(stored.tasks[0].id, user="op", groups=["ops"])
    assert done.status == InstanceStatus.COMPLETED
    assert history(db_url, instance.id) == [
        ("instance_started", None, None),
        ("message_received", "await_signature", None),
        ("task_created", "activate", None),
        ("task_completed", "activate", "op"),
        ("end_event_reached", "end", None),
        ("instance_completed", None, None),
    ]


# -- boundary events ------------------------------------------------------------------------


def test_interrupting_message_boundary_event(db_url: str, tmp_path: Path) -> None:
    deploy(db_url, tmp_path, dispute=DISPUTE)
    with fresh(db_url) as engine:
        instance = engine.instances.start("dispute", business_key="D-1")
    [investigate] = instance.tasks
    assert subscriptions(db_url) == [
        ("customer_called", "D-1", "called", instance.id),
        ("dispute_withdrawn", "D-1", "withdrawn", instance.id),
    ]
    with fresh(db_url) as engine:
        [after] = engine.messages.correlate(
            "dispute_withdrawn", business_key="D-1", data={"reason": "found it"}, user="crm"
        )
    [close] = after.tasks
    assert close.element_id == "close"
    # The review is gone, and so is every wait attached to it.
    assert subscriptions(db_url) == []
    with fresh(db_url) as engine:
        assert [t.element_id for t in engine.tasks.query(instance_id=instance.id)] == ["close"]
        assert engine.instances.get(instance.id).data == {"reason": "found it"}
        with pytest.raises(CorrelationError, match="no instance is waiting"):
            engine.messages.correlate("customer_called", business_key="D-1")
        done = engine.tasks.complete(close.id, user="dee", groups=["disputes"])
    assert done.status == InstanceStatus.COMPLETED
    assert history(db_url, instance.id) == [
        ("instance_started", None, None),
        ("task_created", "investigate", None),
        ("message_received", "withdrawn", "crm"),
        ("task_cancelled", "investigate", "crm"),
        ("task_created", "close", None),
        ("task_completed", "close", "dee"),
        ("end_event_reached", "end_withdrawn", None),
        ("instance_completed", None, None),
    ]
    assert investigate.id not in {t.id for t in after.tasks}


def test_non_interrupting_message_boundary_event(db_url: str, tmp_path: Path) -> None:
    deploy(db_url, tmp_path, dispute=DISPUTE)
    with fresh(db_url) as engine:
        instance = engine.instances.start("dispute", business_key="D-2")
    [investigate] = instance.tasks
    with fresh(db_url) as engine:
        [after] = engine.messages.correlate(
            "customer_called", business_key="D-2", data={"note": "asked for status"}
        )
    # The review carries on beside the call-back.
    assert sorted(t.element_id for t in after.tasks) == ["call_back", "investigate"]
    assert investigate.id in {t.id for t in after.tasks}
    # Still interruptible, and still listening: a non-interrupting boundary event waits
    # again while its activity runs (as in Camunda), so a second call makes a second
    # call-back.
    assert subscriptions(db_url) == [
        ("customer_called", "D-2", "called", instance.id),
        ("dispute_withdrawn", "D-2", "withdrawn", instance.id),
    ]
    with fresh(db_url) as engine:
        [again] = engine.messages.correlate(
            "customer_called", business_key="D-2", data={"note": "called again"}
        )
    assert sorted(t.element_id for t in again.tasks) == ["call_back", "call_back", "investigate"]
    with fresh(db_url) as engine:
        stored = engine.instances.get(instance.id)
        assert stored.data == {"note": "called again"}
        for call_back in [t for t in stored.tasks if t.element_id == "call_back"]:
            engine.tasks.complete(call_back.id, user="dee", groups=["disputes"])
    with fresh(db_url) as engine:
        running = engine.instances.get(instance.id)
        assert running.status == InstanceStatus.RUNNING
        assert [t.id for t in running.tasks] == [investigate.id]
        done = engine.tasks.complete(investigate.id, user="dee", groups=["disputes"])
    assert done.status == InstanceStatus.COMPLETED
    # The boundary event that still waited went with its activity.
    assert subscriptions(db_url) == []
    assert history(db_url, instance.id) == [
        ("instance_started", None, None),
        ("task_created", "investigate", None),
        ("message_received", "called", None),
        ("task_created", "call_back", None),
        ("message_received", "called", None),
        ("task_created", "call_back", None),
        ("task_completed", "call_back", "dee"),
        ("end_event_reached", "end_called", None),
        ("task_completed", "call_back", "dee"),
        ("end_event_reached", "end_called", None),
        ("task_completed", "investigate", "dee"),
        ("end_event_reached", "end", None),
        ("instance_completed", None, None),
    ]


# -- message start event --------------------------------------------------------------------


def test_message_start_event_starts_an_instance(db_url: str, tmp_path: Path) -> None:
    deploy(db_url, tmp_path, application=APPLICATION)
    clock = FixedClock(T0)
    with fresh(db_url, clock) as engine:
        [started] = engine.messages.correlate(
            "application_submitted",
            business_key="APP-1",
            data={"amount": Decimal("25000"), "applicant": "Ann"},
            user="web",
        )
    assert (started.process_key, started.business_key, started.status) == (
        "application",
        "APP-1",
        InstanceStatus.RUNNING,
    )
    assert started.started_by == "web"
    assert [t.element_id for t in started.tasks] == ["check"]
    with fresh(db_url, clock) as engine:
        stored = engine.instances.get(started.id)
        assert stored.data == {"amount": Decimal("25000"), "applicant": "Ann"}
        assert stored.business_key == "APP-1"
        assert engine.tasks.data(stored.tasks[0].id) == {
            "amount": Decimal("25000"),
            "applicant": "Ann",
        }
        assert [i.id for i in engine.instances.list(process_key="application")] == [started.id]
        # A second message starts a second instance.
        [second] = engine.messages.correlate(
            "application_submitted", business_key="APP-2", data={"amount": 1}
        )
    assert second.id != started.id
    assert history(db_url, started.id) == [
        ("instance_started", None, "web"),
        ("message_received", "submitted", "web"),
        ("task_created", "check", None),
    ]
    assert subscriptions(db_url) == []
    before = table_counts(db_url)
    with fresh(db_url, clock) as engine:
        assert sorted(i.business_key or "" for i in engine.instances.list()) == ["APP-1", "APP-2"]
        # The same application again: its business key is taken, nothing is started.
        with pytest.raises(DuplicateBusinessKey, match="'APP-1'"):
            engine.messages.correlate("application_submitted", business_key="APP-1")
        with pytest.raises(InvalidData, match="x: object is not storable"):
            engine.messages.correlate(
                "application_submitted", business_key="APP-3", data={"x": object()}
            )
    assert table_counts(db_url) == before


# -- no match, several matches, broadcast, correlation ----------------------------------------


def test_no_match_raises_and_writes_nothing(db_url: str, tmp_path: Path) -> None:
    deploy(db_url, tmp_path, onboarding=ONBOARDING)
    with fresh(db_url) as engine:
        instance = engine.instances.start("onboarding", business_key="C-1")
    before = table_counts(db_url)
    events_before = history(db_url, instance.id)
    with fresh(db_url) as engine:
        with pytest.raises(CorrelationError) as wrong_key:
            engine.messages.correlate("documents_received", business_key="C-9", data={"x": 1})
        with pytest.raises(CorrelationError) as unknown:
            engine.messages.correlate("no_such_message", data={"x": 1})
        with pytest.raises(CorrelationError) as narrowed_away:
            engine.messages.correlate(
                "documents_received", business_key="C-1", correlation={"customer": "Ann"}
            )
    assert str(wrong_key.value) == (
        "no instance is waiting for message 'documents_received' with business key 'C-9' "
        "and no process starts with it"
    )
    assert (wrong_key.value.message_name, wrong_key.value.instance_ids) == (
        "documents_received",
        (),
    )
    assert unknown.value.message_name == "no_such_message"
    assert "no instance is waiting for message 'no_such_message'" in str(unknown.value)
    assert narrowed_away.value.instance_ids == ()
    assert table_counts(db_url) == before
    assert history(db_url, instance.id) == events_before
    with fresh(db_url) as engine:
        stored = engine.instances.get(instance.id)
    assert (stored.revision, stored.data, stored.tasks) == (0, {}, ())


def test_two_waiting_without_business_key_is_ambiguous(db_url: str, tmp_path: Path) -> None:
    deploy(db_url, tmp_path, onboarding=ONBOARDING)
    with fresh(db_url) as engine:
        first = engine.instances.start("onboarding", business_key="C-1")
        second = engine.instances.start("onboarding", business_key="C-2")
    before = table_counts(db_url)
    with fresh(db_url) as engine, pytest.raises(CorrelationError) as raised:
        engine.messages.correlate("documents_received", data={"documents": []})
    assert set(raised.value.instance_ids) == {first.id, second.id}
    assert len(raised.value.instance_ids) == 2
    assert first.id in str(raised.value)
    assert second.id in str(raised.value)
    assert "matches 2 waiting instances" in str(raised.value)
    assert table_counts(db_url) == before
    with fresh(db_url) as engine:
        assert [engine.instances.get(i.id).revision for i in (first, second)] == [0, 0]


def test_broadcast_delivers_to_every_waiting_instance(db_url: str, tmp_path: Path) -> None:
    deploy(db_url, tmp_path, onboarding=ONBOARDING)
    with fresh(db_url) as engine:
        first = engine.instances.start("onboarding", business_key="C-1")
        second = engine.instances.start("onboarding", business_key="C-2")
    with fresh(db_url) as engine:
        delivered = engine.messages.correlate(
            "documents_received", data={"batch": 7}, all=True, user="batch"
        )
    assert sorted(i.id for i in delivered) == sorted([first.id, second.id])
    assert [[t.element_id for t in i.tasks] for i in delivered] == [["review"], ["review"]]
    assert subscriptions(db_url) == []
    with fresh(db_url) as engine:
        for instance in (first, second):
            stored = engine.instances.get(instance.id)
            assert (stored.revision, stored.data) == (1, {"batch": 7})
            assert [t.element_id for t in stored.tasks] == ["review"]
        assert len(engine.tasks.query(groups=KYC)) == 2
        # Broadcast to nobody is still an error.
        with pytest.raises(CorrelationError):
            engine.messages.correlate("documents_received", all=True)


def test_correlation_variables_narrow_the_match(db_url: str, tmp_path: Path) -> None:
    deploy(db_url, tmp_path, onboarding=ONBOARDING)
    with fresh(db_url) as engine:
        ann = engine.instances.start("onboarding", data={"customer_id": 101, "branch": "north"})
        bo = engine.instances.start("onboarding", data={"customer_id": 102, "branch": "north"})
    with fresh(db_url) as engine:
        with pytest.raises(CorrelationError) as both:
            engine.messages.correlate("documents_received", correlation={"branch": "north"})
        assert set(both.value.instance_ids) == {ann.id, bo.id}
        [delivered] = engine.messages.correlate(
            "documents_received",
            correlation={"customer_id": 102, "branch": "north"},
            data={"documents": ["passport"]},
        )
    assert delivered.id == bo.id
    assert [t.element_id for t in delivered.tasks] == ["review"]
    with fresh(db_url) as engine:
        assert engine.instances.get(ann.id).revision == 0
        assert engine.instances.get(bo.id).data == {
            "customer_id": 102,
            "branch": "north",
            "documents": ["passport"],
        }
        # Only Ann waits now: the branch alone finds her.
        [last] = engine.messages.correlate("documents_received", correlation={"branch": "north"})
    assert last.id == ann.id


# An event-based gateway: the documents, or a reminder after 14 days, whichever comes first.
CHASE = (
    HEAD
    + """
  <bpmn:message id="Msg_docs" name="documents_received"/>
  <bpmn:process id="chase" name="Chase documents" isExecutable="true">
    <bpmn:startEvent id="start" name="Requested"/>
    <bpmn:eventBasedGateway id="first" name="Whichever first"/>
    <bpmn:intermediateCatchEvent id="docs" name="Documents received">
      <bpmn:messageEventDefinition id="docs_def" messageRef="Msg_docs"/>
    </bpmn:intermediateCatchEvent>
    <bpmn:intermediateCatchEvent id="timeout" name="14 days">
      <bpmn:timerEventDefinition id="timeout_def">
        <bpmn:timeDuration>P14D</bpmn:timeDuration>
      </bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:userTask id="review" name="Review documents" camunda:candidateGroups="kyc"/>
    <bpmn:userTask id="remind" name="Remind customer" camunda:candidateGroups="kyc"/>
    <bpmn:endEvent id="end" name="Reviewed"/>
    <bpmn:endEvent id="end_reminded" name="Reminded"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="first"/>
    <bpmn:sequenceFlow id="f2" sourceRef="first" targetRef="docs"/>
    <bpmn:sequenceFlow id="f3" sourceRef="first" targetRef="timeout"/>
    <bpmn:sequenceFlow id="f4" sourceRef="docs" targetRef="review"/>
    <bpmn:sequenceFlow id="f5" sourceRef="timeout" targetRef="remind"/>
    <bpmn:sequenceFlow id="f6" sourceRef="review" targetRef="end"/>
    <bpmn:sequenceFlow id="f7" sourceRef="remind" targetRef="end_reminded"/>
  </bpmn:process>"""
    + TAIL
)


def test_event_based_gateway_message_first(db_url: str, tmp_path: Path) -> None:
    deploy(db_url, tmp_path, chase=CHASE)
    clock = FixedClock(T0)
    with fresh(db_url, clock) as engine:
        instance = engine.instances.start("chase", business_key="C-1")
        [timer] = engine.jobs.list()
    assert (timer.kind, timer.element_id, timer.due_at) == (
        "timer",
        "timeout",
        T0 + timedelta(days=14),
    )
    assert subscriptions(db_url) == [("documents_received", "C-1", "docs", instance.id)]
    clock.set(T0 + timedelta(days=2))
    with fresh(db_url, clock) as engine:
        [after] = engine.messages.correlate(
            "documents_received", business_key="C-1", data={"documents": ["passport"]}
        )
    assert [t.element_id for t in after.tasks] == ["review"]
    # The race is decided: the reminder timer is gone with the subscription.
    assert subscriptions(db_url) == []
    clock.set(T0 + timedelta(days=30))
    with fresh(db_url, clock) as engine:
        assert engine.jobs.list() == []
        assert engine.jobs.run_due().outcomes == ()
        stored = engine.instances.get(instance.id)
    assert stored.data == {"documents": ["passport"]}
    assert [t.element_id for t in stored.tasks] == ["review"]


def test_event_based_gateway_timer_first(db_url: str, tmp_path: Path) -> None:
    deploy(db_url, tmp_path, chase=CHASE)
    clock = FixedClock(T0)
    with fresh(db_url, clock) as engine:
        instance = engine.instances.start("chase", business_key="C-2")
    clock.set(T0 + timedelta(days=14))
    with fresh(db_url, clock) as engine:
        [outcome] = engine.jobs.run_due().outcomes
        assert (outcome.kind, outcome.result) == ("timer", "fired")
        stored = engine.instances.get(instance.id)
    assert [t.element_id for t in stored.tasks] == ["remind"]
    assert subscriptions(db_url) == []
    with fresh(db_url, clock) as engine:
        with pytest.raises(CorrelationError, match="no instance is waiting"):
            engine.messages.correlate("documents_received", business_key="C-2")
        assert engine.instances.get(instance.id).revision == 1


# -- ended instances ------------------------------------------------------------------------


def test_cancelled_or_completed_instances_no_longer_receive(db_url: str, tmp_path: Path) -> None:
    deploy(db_url, tmp_path, onboarding=ONBOARDING, dispute=DISPUTE)
    with fresh(db_url) as engine:
        waiting = engine.instances.start("onboarding", business_key="C-1")
        dispute = engine.instances.start("dispute", business_key="D-1")
    assert len(subscriptions(db_url)) == 3
    with fresh(db_url) as engine:
        cancelled = engine.instances.cancel(waiting.id, user="ops", reason="withdrawn")
        assert cancelled.status == InstanceStatus.CANCELLED
        done = engine.tasks.complete(dispute.tasks[0].id, user="dee", groups=["disputes"])
        assert done.status == InstanceStatus.COMPLETED
    assert subscriptions(db_url) == []
    before = table_counts(db_url)
    with fresh(db_url) as engine:
        for name, key in (
            ("documents_received", "C-1"),
            ("dispute_withdrawn", "D-1"),
            ("customer_called", "D-1"),
        ):
            with pytest.raises(CorrelationError, match="no instance is waiting"):
                engine.messages.correlate(name, business_key=key)
            with pytest.raises(CorrelationError, match="no instance is waiting"):
                engine.messages.correlate(name, all=True)
    assert table_counts(db_url) == before
    with fresh(db_url) as engine:
        assert engine.instances.get(waiting.id).status == InstanceStatus.CANCELLED
        assert engine.instances.get(dispute.id).status == InstanceStatus.COMPLETED
        with pytest.raises(InvalidState):
            engine.instances.cancel(waiting.id)


# -- messages thrown by one instance ----------------------------------------------------------


@pytest.mark.parametrize("thrower", sorted(_THROWERS))
def test_thrown_message_reaches_another_instance(db_url: str, tmp_path: Path, thrower: str) -> None:
    deploy(db_url, tmp_path, onboarding=ONBOARDING, portal=portal(thrower))
    clock = FixedClock(T0)
    with fresh(db_url, clock) as engine:
        receiver = engine.instances.start("onboarding", business_key="C-1", data={"k": 1})
        decoy = engine.instances.start("onboarding", business_key="C-2")
        sender = engine.instances.start("portal", business_key="C-1", data={"upload": 5})
    assert sender.status == InstanceStatus.COMPLETED
    with fresh(db_url, clock) as engine:
        [job] = engine.jobs.list(kind="message")
        # Thrown, not yet delivered: the receiver still waits.
        assert engine.instances.get(receiver.id).revision == 0
    assert (job.status, job.instance_id, job.business_key, job.topic, job.element_id) == (
        "ready",
        sender.id,
        "C-1",
        "documents_received",
        "notify",
    )
    assert (job.process_key, job.due_at, job.attempts) == ("portal", T0, 0)

    with fresh(db_url, clock) as engine:
        run = engine.jobs.run_due()
    [outcome] = run.outcomes
    assert (outcome.kind, outcome.result, outcome.message) == (
        "message",
        "delivered",
        receiver.id,
    )
    with fresh(db_url, clock) as engine:
        assert engine.jobs.list() == []
        arrived = engine.instances.get(receiver.id)
        assert arrived.revision == 1
        assert [t.element_id for t in arrived.tasks] == ["review"]
        carried = {} if thrower == "end_event" else {"upload": 5, "docs": ["passport", "payslip"]}
        assert arrived.data == {"k": 1, **carried}
        assert engine.instances.get(decoy.id).revision == 0
        assert engine.jobs.run_due().outcomes == ()
    assert history(db_url, receiver.id) == [
        ("instance_started", None, None),
        ("message_received", "wait_docs", None),
        ("task_created", "review", None),
    ]
    assert subscriptions(db_url) == [("documents_received", "C-2", "wait_docs", decoy.id)]


def test_undeliverable_thrown_message_becomes_an_incident(db_url: str, tmp_path: Path) -> None:
    deploy(db_url, tmp_path, onboarding=ONBOARDING, portal=portal("intermediate_throw"))
    clock = FixedClock(T0)
    with fresh(db_url, clock) as engine:
        sender = engine.instances.start("portal", business_key="C-404", data={"upload": 9})
    assert sender.status == InstanceStatus.COMPLETED
    with fresh(db_url, clock) as engine:
        [job] = engine.jobs.list(kind="message")

    error = (
        "no instance is waiting for message 'documents_received' with business key "
        "'C-404' and no process starts with it"
    )
    # Three attempts, 10 s then 40 s apart; the third runs out of retries.
    for attempt, at, result, due in (
        (1, T0, "retry", T0 + timedelta(seconds=10)),
        (2, T0 + timedelta(seconds=10), "retry", T0 + timedelta(seconds=50)),
        (3, T0 + timedelta(seconds=50), "incident", T0 + timedelta(seconds=50)),
    ):
        clock.set(at)
        with fresh(db_url, clock) as engine:
            # Not due yet a moment before.
            assert engine.jobs.run_due(now=at - timedelta(microseconds=1)).outcomes == ()
            [outcome] = engine.jobs.run_due().outcomes
            assert (outcome.job_id, outcome.result, outcome.message) == (job.id, result, error)
            stored = engine.jobs.get(job.id)
            assert (stored.attempts, stored.last_error, stored.due_at) == (attempt, error, due)
            assert stored.status == ("incident" if result == "incident" else "ready")
            assert stored.lock_owner is None

    clock.set(T0 + timedelta(days=1))
    with fresh(db_url, clock) as engine:
        assert engine.jobs.run_due().outcomes == ()
        [incident] = engine.incidents.list()
        assert engine.incidents.get(incident.id) == incident
        # The sender itself finished fine; only its message is stuck.
        assert engine.instances.get(sender.id).status == InstanceStatus.COMPLETED
    assert (incident.id, incident.kind, incident.job_id, incident.instance_id) == (
        job.id,
        "message",
        job.id,
        sender.id,
    )
    assert (incident.process_key, incident.business_key, incident.element_id) == (
        "portal",
        "C-404",
        "notify",
    )
    assert (incident.message, incident.attempts) == (error, 3)
    assert [e[0] for e in history(db_url, sender.id)] == [
        "instance_started",
        "data_changed",
        "end_event_reached",
        "instance_completed",
        "job_failed",
        "job_failed",
        "incident",
    ]

    # Once the customer's onboarding waits, retrying the incident delivers the message.
    with fresh(db_url, clock) as engine:
        receiver = engine.instances.start("onboarding", business_key="C-404")
        engine.incidents.retry(incident.id, user="ops")
        assert engine.incidents.list() == []
    with fresh(db_url, clock) as engine:
        [outcome] = engine.jobs.run_due().outcomes
        assert (outcome.result, outcome.message) == ("delivered", receiver.id)
        arrived = engine.instances.get(receiver.id)
        assert [t.element_id for t in arrived.tasks] == ["review"]
        assert arrived.data == {"docs": ["passport", "payslip"], "upload": 9}
        assert engine.jobs.list() == []


# A web form's instance throws "application_submitted" at its end: that starts the
# application process (its message start event) with the form's business key.
WEB_FORM = (
    HEAD
    + """
  <bpmn:message id="Msg_app" name="application_submitted"/>
  <bpmn:process id="web_form" name="Web form" isExecutable="true">
    <bpmn:startEvent id="start" name="Form opened"/>
    <bpmn:endEvent id="submit" name="Submit">
      <bpmn:messageEventDefinition id="submit_def" messageRef="Msg_app">
        <bpmn:extensionElements>
          <spiffworkflow:messagePayload>{"amount": amount}</spiffworkflow:messagePayload>
        </bpmn:extensionElements>
      </bpmn:messageEventDefinition>
    </bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="submit"/>
  </bpmn:process>"""
    + TAIL
)


def test_thrown_message_starts_an_instance(db_url: str, tmp_path: Path) -> None:
    deploy(db_url, tmp_path, application=APPLICATION, web_form=WEB_FORM)
    clock = FixedClock(T0)
    with fresh(db_url, clock) as engine:
        form = engine.instances.start("web_form", business_key="W-1", data={"amount": 900})
        [outcome] = engine.jobs.run_due().outcomes
    assert form.status == InstanceStatus.COMPLETED
    with fresh(db_url, clock) as engine:
        [started] = engine.instances.list(process_key="application")
        stored = engine.instances.get(started.id)
    assert (outcome.kind, outcome.result, outcome.message) == (
        "message",
        "started",
        f"instance {started.id}",
    )
    assert (stored.business_key, stored.data, stored.started_by) == ("W-1", {"amount": 900}, None)
    assert [t.element_id for t in stored.tasks] == ["check"]

    # The application for W-2 already exists: the thrown message cannot start another one.
    # It is retried like any undeliverable message and ends as an incident, never blocking
    # the jobs behind it.
    with fresh(db_url, clock) as engine:
        engine.messages.correlate("application_submitted", business_key="W-2")
        form2 = engine.instances.start("web_form", business_key="W-2", data={"amount": 1})
    error = "process 'application' already has an instance with business key 'W-2'"
    for at in (T0, T0 + timedelta(seconds=10), T0 + timedelta(seconds=50)):
        clock.set(at)
        with fresh(db_url, clock) as engine:
            [outcome] = engine.jobs.run_due().outcomes
            assert (outcome.instance_id, outcome.message) == (form2.id, error)
    assert outcome.result == "incident"
    with fresh(db_url, clock) as engine:
        [incident] = engine.incidents.list()
        applications = engine.instances.list(process_key="application")
        assert sorted(i.business_key or "" for i in applications) == ["W-1", "W-2"]
    assert (incident.kind, incident.instance_id, incident.element_id, incident.message) == (
        "message",
        form2.id,
        "submit",
        error,
    )


# -- correlation from another OS process ------------------------------------------------------

_CORRELATE_SCRIPT = """
import json, sys
from bankflow import Engine

url, key = sys.argv[1], sys.argv[2]
with Engine(url, cache_size=0) as engine:
    delivered = engine.messages.correlate(
        "documents_received", business_key=key, data={"via": "other process"}, user="batch"
    )
print(json.dumps([[i.id, i.revision, [t.element_id for t in i.tasks]] for i in delivered]))
"""


def correlate_elsewhere(url: str, business_key: str) -> subprocess.CompletedProcess[str]:
    """Run ``_CORRELATE_SCRIPT`` in a new Python process against the same database."""
    return subprocess.run(
        [sys.executable, "-c", _CORRELATE_SCRIPT, url, business_key],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        check=False,
    )


def test_correlation_from_another_os_process(db_url: str, tmp_path: Path) -> None:
    deploy(db_url, tmp_path, onboarding=ONBOARDING)
    # This process keeps an engine with a cache open across the other process's change:
    # its cached workflow (revision 0) goes stale and must not be used.
    with Engine(db_url) as engine:
        instance = engine.instances.start("onboarding", business_key="C-77", data={"n": 1})
        assert engine.instances.get(instance.id).revision == 0

        done = correlate_elsewhere(db_url, "C-77")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == [[instance.id, 1, ["review"]]]

        with fresh(db_url) as reloaded:
            stored = reloaded.instances.get(instance.id)
        assert (stored.revision, stored.data) == (1, {"n": 1, "via": "other process"})
        assert subscriptions(db_url) == []

        advanced = engine.instances.get(instance.id)
        assert (advanced.revision, advanced.data) == (1, {"n": 1, "via": "other process"})
        [review] = advanced.tasks
        assert review.element_id == "review"
        finished = engine.tasks.complete(review.id, user="kim", groups=KYC)
        assert finished.status == InstanceStatus.COMPLETED
    assert history(db_url, instance.id) == [
        ("instance_started", None, None),
        ("message_received", "wait_docs", "batch"),
        ("task_created", "review", None),
        ("task_completed", "review", "kim"),
        ("end_event_reached", "end", None),
        ("instance_completed", None, None),
    ]
    # A second attempt from the other process finds nobody waiting.
    again = correlate_elsewhere(db_url, "C-77")
    assert again.returncode == 1
    assert (
        "bankflow.errors.CorrelationError: no instance is waiting for message "
        "'documents_received' with business key 'C-77'"
    ) in again.stderr
