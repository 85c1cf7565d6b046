"""The path on record (issue 11, item 3), on both backends: history says which flows each
gateway took, which end events were reached and what each script and service wrote, in
the order the step did them, between the task events of the same step.

Every step opens a fresh Engine on the stored state (``cache_size=0``), so what history
shows comes from the write transaction, never from an object left in memory.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bankflow import Engine, InstanceStatus

HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="t">
"""
TAIL = "</bpmn:definitions>\n"


def flow(source: str, target: str, condition: str | None = None) -> str:
    """A sequence flow ``source_to_target``, with a condition when given."""
    body = ""
    if condition is not None:
        body = (
            '<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">'
            f"{condition}</bpmn:conditionExpression>"
        )
    return (
        f'<bpmn:sequenceFlow id="{source}_to_{target}" sourceRef="{source}" '
        f'targetRef="{target}">{body}</bpmn:sequenceFlow>'
    )


def process(process_id: str, body: str) -> str:
    return f'{HEAD}<bpmn:process id="{process_id}" isExecutable="true">{body}</bpmn:process>{TAIL}'


def script(element_id: str, text: str) -> str:
    return (
        f'<bpmn:scriptTask id="{element_id}" scriptFormat="python">'
        f"<bpmn:script>{text}</bpmn:script></bpmn:scriptTask>"
    )


LOAN = process(
    "loan",
    '<bpmn:startEvent id="start"/>'
    + script("score", "score = amount * 2\nnote = 'scored'")
    + '<bpmn:exclusiveGateway id="decide" default="decide_to_rejected"/>'
    + '<bpmn:userTask id="review" camunda:candidateUsers="ann"/>'
    + '<bpmn:serviceTask id="pay" camunda:delegateExpression="${pay}"/>'
    + '<bpmn:endEvent id="done"/><bpmn:endEvent id="rejected"/>'
    + flow("start", "score")
    + flow("score", "decide")
    + flow("decide", "review", "${score &gt;= 700}")
    + flow("decide", "rejected")
    + flow("review", "pay")
    + flow("pay", "done"),
)

CHECKS = process(
    "checks",
    '<bpmn:startEvent id="start"/>'
    + '<bpmn:inclusiveGateway id="split"/>'
    + "".join(f'<bpmn:userTask id="check_{x}" camunda:candidateUsers="ann"/>' for x in "abc")
    + '<bpmn:inclusiveGateway id="join"/><bpmn:endEvent id="end"/>'
    + flow("start", "split")
    + flow("split", "check_a", "${amount &gt; 100}")
    + flow("split", "check_b", "${amount &gt; 200}")
    + flow("split", "check_c", "${amount &gt; 10000}")
    + flow("check_a", "join")
    + flow("check_b", "join")
    + flow("check_c", "join")
    + flow("join", "end"),
)

FORK = process(
    "parallel",
    '<bpmn:startEvent id="start"/><bpmn:parallelGateway id="fork"/>'
    + script("stamp", "stamped = True")
    + '<bpmn:userTask id="sign" camunda:candidateUsers="ann"/>'
    + '<bpmn:endEvent id="end_stamped"/><bpmn:endEvent id="end_signed"/>'
    + flow("start", "fork")
    + flow("fork", "stamp")
    + flow("fork", "sign")
    + flow("stamp", "end_stamped")
    + flow("sign", "end_signed"),
)


RATED = process(
    "rated",
    '<bpmn:startEvent id="start"/>'
    + '<bpmn:businessRuleTask id="rate" camunda:decisionRef="rating"'
    + ' camunda:resultVariable="verdict"/>'
    + '<bpmn:serviceTask id="book" camunda:type="external" camunda:topic="booking"/>'
    + '<bpmn:endEvent id="end"/>'
    + flow("start", "rate")
    + flow("rate", "book")
    + flow("book", "end"),
)

RATING = """<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/" id="dd" name="D"
    namespace="x">
  <decision id="rating" name="Rating"><decisionTable id="t" hitPolicy="FIRST">
    <input id="i"><inputExpression id="e"><text>amount</text></inputExpression></input>
    <output id="o" name="verdict"/>
    <rule id="r1"><inputEntry id="a1"><text>&gt; 100</text></inputEntry>
      <outputEntry id="b1"><text>"high"</text></outputEntry></rule>
    <rule id="r2"><inputEntry id="a2"><text>&lt;= 100</text></inputEntry>
      <outputEntry id="b2"><text>"low"</text></outputEntry></rule>
  </decisionTable></decision>
</definitions>
"""


class Steps:
    """Deploys inline BPMN, then opens a fresh Engine (nothing cached) for every step."""

    def __init__(self, url: str, tmp_path: Path) -> None:
        self.url = url
        self.tmp_path = tmp_path

    def deploy(self, key: str, source: str, *, dmn: str | None = None) -> None:
        path = self.tmp_path / f"{key}.bpmn"
        path.write_text(source)
        files = [path]
        if dmn is not None:
            files.append(self.tmp_path / f"{key}.dmn")
            files[-1].write_text(dmn)
        with self.engine() as engine:
            engine.definitions.deploy(*files)

    def engine(self) -> Engine:
        engine = Engine(self.url, migrate=True, cache_size=0)
        engine.services.register("pay", _pay)
        return engine


def _pay(data: dict[str, Any]) -> dict[str, Any]:
    return {"paid": True, "rate": Decimal("3.25"), "ref": f"P-{data['score']}"}


@pytest.fixture
def steps(db_url: str, tmp_path: Path) -> Steps:
    return Steps(db_url, tmp_path)


def path(engine: Engine, instance_id: str) -> list[tuple[str, str | None, Any]]:
    """History as (type, element, data) with the data of the path's events only."""
    shown = ("gateway_taken", "data_changed", "end_event_reached")
    return [
        (e.type, e.element_id, e.data if e.type in shown else None)
        for e in engine.history.for_instance(instance_id)
    ]


def task_of(engine: Engine, instance_id: str, element_id: str) -> str:
    found = [t.id for t in engine.instances.get(instance_id).tasks if t.element_id == element_id]
    assert len(found) == 1, found
    return found[0]


def test_an_exclusive_gateway_a_script_and_a_service_on_record(steps: Steps) -> None:
    steps.deploy("loan", LOAN)
    with steps.engine() as engine:
        started = engine.instances.start("loan", data={"amount": 400})
    with steps.engine() as engine:
        assert path(engine, started.id) == [
            ("instance_started", None, None),
            ("data_changed", "score", {"set": {"score": 800, "note": "scored"}, "removed": []}),
            ("gateway_taken", "decide", {"flows": ["decide_to_review"], "targets": ["review"]}),
            ("task_created", "review", None),
        ]
        engine.tasks.complete(task_of(engine, started.id, "review"), data={"ok": True}, user="ann")
    with steps.engine() as engine:
        assert engine.instances.get(started.id).status == InstanceStatus.COMPLETED
        events = path(engine, started.id)
        assert events[4:] == [
            ("task_completed", "review", None),
            (
                "data_changed",
                "pay",
                {"set": {"paid": True, "rate": Decimal("3.25"), "ref": "P-800"}, "removed": []},
            ),
            ("end_event_reached", "done", None),
            ("instance_completed", None, None),
        ]
        # Values come back as the variables hold them: the rate is still an exact Decimal.
        assert type(events[5][2]["set"]["rate"]) is Decimal


def test_the_default_flow_and_the_end_event_that_finished_the_instance(steps: Steps) -> None:
    steps.deploy("loan", LOAN)
    with steps.engine() as engine:
        started = engine.instances.start("loan", data={"amount": 100})
    with steps.engine() as engine:
        assert engine.instances.get(started.id).status == InstanceStatus.COMPLETED
        assert path(engine, started.id) == [
            ("instance_started", None, None),
            ("data_changed", "score", {"set": {"score": 200, "note": "scored"}, "removed": []}),
            (
                "gateway_taken",
                "decide",
                {"flows": ["decide_to_rejected"], "targets": ["rejected"]},
            ),
            ("end_event_reached", "rejected", None),
            ("instance_completed", None, None),
        ]


def test_an_inclusive_split_takes_two_flows(steps: Steps) -> None:
    steps.deploy("checks", CHECKS)
    with steps.engine() as engine:
        started = engine.instances.start("checks", data={"amount": 500})
    with steps.engine() as engine:
        assert path(engine, started.id) == [
            ("instance_started", None, None),
            (
                "gateway_taken",
                "split",
                {
                    "flows": ["split_to_check_a", "split_to_check_b"],
                    "targets": ["check_a", "check_b"],
                },
            ),
            ("task_created", "check_a", None),
            ("task_created", "check_b", None),
        ]
        engine.tasks.complete(task_of(engine, started.id, "check_a"), data={}, user="ann")
    with steps.engine() as engine:
        engine.tasks.complete(task_of(engine, started.id, "check_b"), data={}, user="ann")
    with steps.engine() as engine:
        # The join has one way out: it chose nothing, so it records nothing.
        assert path(engine, started.id)[4:] == [
            ("task_completed", "check_a", None),
            ("task_completed", "check_b", None),
            ("end_event_reached", "end", None),
            ("instance_completed", None, None),
        ]


def test_a_parallel_split_reaches_two_end_events_in_order(steps: Steps) -> None:
    steps.deploy("parallel", FORK)
    with steps.engine() as engine:
        started = engine.instances.start("parallel", data={})
    with steps.engine() as engine:
        # Both branches start together: the person's task appears when the fork completes,
        # before the other branch's script runs and reaches its end event.
        assert path(engine, started.id) == [
            ("instance_started", None, None),
            ("task_created", "sign", None),
            ("data_changed", "stamp", {"set": {"stamped": True}, "removed": []}),
            ("end_event_reached", "end_stamped", None),
        ]
        engine.tasks.complete(task_of(engine, started.id, "sign"), data={}, user="ann")
    with steps.engine() as engine:
        assert engine.instances.get(started.id).status == InstanceStatus.COMPLETED
        assert path(engine, started.id)[4:] == [
            ("task_completed", "sign", None),
            ("end_event_reached", "end_signed", None),
            ("instance_completed", None, None),
        ]


def test_a_decision_and_an_external_task_record_what_they_wrote(steps: Steps) -> None:
    steps.deploy("rated", RATED, dmn=RATING)
    with steps.engine() as engine:
        started = engine.instances.start("rated", data={"amount": 500})
    with steps.engine() as engine:
        [task] = engine.external.fetch_and_lock(["booking"], worker_id="w1")
    with steps.engine() as engine:
        engine.external.complete(
            task.id, worker_id="w1", variables={"booking": "B-7", "amount": 500}
        )
    with steps.engine() as engine:
        assert engine.instances.get(started.id).status == InstanceStatus.COMPLETED
        # The worker sent amount back unchanged: only what changed is in the change set.
        assert path(engine, started.id) == [
            ("instance_started", None, None),
            ("data_changed", "rate", {"set": {"verdict": "high"}, "removed": []}),
            ("service_completed", "book", None),
            ("data_changed", "book", {"set": {"booking": "B-7"}, "removed": []}),
            ("end_event_reached", "end", None),
            ("instance_completed", None, None),
        ]
