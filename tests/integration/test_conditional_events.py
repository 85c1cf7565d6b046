"""Conditional events, checked again whenever the instance's variables change (issue 10),
on both backends: an intermediate catch waits until its condition turns true, a boundary
event interrupts (or not) its activity when its condition turns true, an event
sub-process starts on its condition. A condition that stays true fires once; one that is
true when the event is reached fires at once.

Script tasks append their id to ``trace``; every step opens a fresh Engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bankflow import Engine, InstanceStatus

HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="t">
"""
TAIL = "</bpmn:definitions>\n"


def condition(text: str) -> str:
    return (
        "<bpmn:conditionalEventDefinition><bpmn:condition>"
        f"{text}</bpmn:condition></bpmn:conditionalEventDefinition>"
    )


def script(element_id: str) -> str:
    return (
        f'<bpmn:scriptTask id="{element_id}" scriptFormat="python">'
        f"<bpmn:script>trace = trace + ['{element_id}']</bpmn:script></bpmn:scriptTask>"
    )


def user(element_id: str) -> str:
    return f'<bpmn:userTask id="{element_id}" camunda:candidateUsers="clerk"/>'


def flows(*pairs: str) -> str:
    return "".join(
        f'<bpmn:sequenceFlow id="{s}_to_{t}" sourceRef="{s}" targetRef="{t}"/>'
        for s, t in (pair.split(">") for pair in pairs)
    )


def process(key: str, body: str) -> str:
    return f'{HEAD}<bpmn:process id="{key}" isExecutable="true">{body}</bpmn:process>{TAIL}'


class Steps:
    def __init__(self, url: str, tmp_path: Path) -> None:
        self.url = url
        self.tmp_path = tmp_path

    def engine(self) -> Engine:
        return Engine(self.url, migrate=True, cache_size=0)

    def deploy(self, key: str, source: str) -> None:
        path = self.tmp_path / f"{key}.bpmn"
        path.write_text(source)
        with self.engine() as engine:
            report = engine.definitions.validate(path)
            assert [d for d in report.diagnostics if d.rule == "unsupported"] == []
            engine.definitions.deploy(path)

    def start(self, key: str, data: dict[str, Any]) -> str:
        with self.engine() as engine:
            started = engine.instances.start(key, data={"trace": [], **data})
            assert started.failure is None, started.failure
            return started.id

    def complete(self, instance_id: str, element_id: str, data: dict[str, Any]) -> None:
        with self.engine() as engine:
            (task,) = [
                t for t in engine.instances.get(instance_id).tasks if t.element_id == element_id
            ]
            done = engine.tasks.complete(task.id, user="clerk", data=data)
            assert done.failure is None, done.failure

    def state(self, instance_id: str) -> tuple[InstanceStatus, list[str], list[str]]:
        with self.engine() as engine:
            instance = engine.instances.get(instance_id)
            waiting = sorted(t.element_id for t in instance.tasks)
            return instance.status, waiting, list(instance.data["trace"])


@pytest.fixture
def steps(db_url: str, tmp_path: Path) -> Steps:
    return Steps(db_url, tmp_path)


# -- intermediate catch --------------------------------------------------------------------

INTERMEDIATE = process(
    "wait_for_limit",
    '<bpmn:startEvent id="start"/><bpmn:parallelGateway id="split"/>'
    + user("raise_limit")
    + script("before")
    + f'<bpmn:intermediateCatchEvent id="limit_ok">{condition("limit &gt;= 1000")}'
    "</bpmn:intermediateCatchEvent>"
    + script("after")
    + '<bpmn:parallelGateway id="join"/><bpmn:endEvent id="end"/>'
    + flows(
        "start>split",
        "split>raise_limit",
        "split>before",
        "before>limit_ok",
        "limit_ok>after",
        "raise_limit>join",
        "after>join",
        "join>end",
    ),
)


def test_an_intermediate_catch_waits_until_its_condition_turns_true(steps: Steps) -> None:
    steps.deploy("wait_for_limit", INTERMEDIATE)
    instance = steps.start("wait_for_limit", {"limit": 500})
    assert steps.state(instance) == (InstanceStatus.RUNNING, ["raise_limit"], ["before"])
    with steps.engine() as engine:
        waiting = [w.element_id for w in engine.instances.get(instance).tasks]
        assert waiting == ["raise_limit"]
    steps.complete(instance, "raise_limit", {"limit": 1500})
    assert steps.state(instance) == (InstanceStatus.COMPLETED, [], ["before", "after"])


def test_an_intermediate_catch_whose_condition_holds_passes_at_once(steps: Steps) -> None:
    steps.deploy("wait_for_limit", INTERMEDIATE)
    instance = steps.start("wait_for_limit", {"limit": 2000})
    assert steps.state(instance) == (
        InstanceStatus.RUNNING,
        ["raise_limit"],
        ["before", "after"],
    )


# -- boundary events -----------------------------------------------------------------------


def boundary_process(key: str, *, interrupting: bool) -> str:
    cancel = "true" if interrupting else "false"
    return process(
        key,
        '<bpmn:startEvent id="start"/><bpmn:parallelGateway id="split"/>'
        + user("review")
        + user("customer")
        + f'<bpmn:boundaryEvent id="withdrawn" attachedToRef="review" cancelActivity="{cancel}">'
        + condition("withdrawn == True")
        + "</bpmn:boundaryEvent>"
        + script("notify")
        + script("reviewed")
        + '<bpmn:endEvent id="end_review"/><bpmn:endEvent id="end_notify"/>'
        '<bpmn:endEvent id="end_customer"/>'
        + flows(
            "start>split",
            "split>review",
            "split>customer",
            "review>reviewed",
            "reviewed>end_review",
            "withdrawn>notify",
            "notify>end_notify",
            "customer>end_customer",
        ),
    )


def test_an_interrupting_conditional_boundary_event_cancels_its_activity(steps: Steps) -> None:
    steps.deploy("withdrawal", boundary_process("withdrawal", interrupting=True))
    instance = steps.start("withdrawal", {"withdrawn": False})
    assert steps.state(instance) == (InstanceStatus.RUNNING, ["customer", "review"], [])
    steps.complete(instance, "customer", {"withdrawn": True})
    assert steps.state(instance) == (InstanceStatus.COMPLETED, [], ["notify"])


def test_a_non_interrupting_conditional_boundary_event_fires_beside_it(steps: Steps) -> None:
    steps.deploy("withdrawal", boundary_process("withdrawal", interrupting=False))
    instance = steps.start("withdrawal", {"withdrawn": False})
    steps.complete(instance, "customer", {"withdrawn": True})
    assert steps.state(instance) == (InstanceStatus.RUNNING, ["review"], ["notify"])
    steps.complete(instance, "review", {"note": "seen"})
    assert steps.state(instance) == (InstanceStatus.COMPLETED, [], ["notify", "reviewed"])


def test_a_boundary_condition_that_holds_when_the_activity_starts_fires_at_once(
    steps: Steps,
) -> None:
    steps.deploy("withdrawal", boundary_process("withdrawal", interrupting=True))
    instance = steps.start("withdrawal", {"withdrawn": True})
    assert steps.state(instance) == (InstanceStatus.RUNNING, ["customer"], ["notify"])


# -- event sub-process --------------------------------------------------------------------


def event_sub_process(key: str, *, interrupting: bool) -> str:
    flag = "true" if interrupting else "false"
    return process(
        key,
        '<bpmn:startEvent id="start"/>'
        + user("work")
        + user("more_work")
        + script("done")
        + '<bpmn:endEvent id="end"/>'
        + '<bpmn:subProcess id="on_risk" triggeredByEvent="true">'
        f'<bpmn:startEvent id="risky" isInterrupting="{flag}">'
        + condition("risk &gt; 7")
        + "</bpmn:startEvent>"
        + script("alarm")
        + '<bpmn:endEvent id="alarm_end"/>'
        + flows("risky>alarm", "alarm>alarm_end")
        + "</bpmn:subProcess>"
        + flows("start>work", "work>more_work", "more_work>done", "done>end"),
    )


def test_an_interrupting_conditional_event_sub_process_replaces_the_work(steps: Steps) -> None:
    steps.deploy("risk_watch", event_sub_process("risk_watch", interrupting=True))
    instance = steps.start("risk_watch", {"risk": 1})
    steps.complete(instance, "work", {"risk": 3})
    assert steps.state(instance) == (InstanceStatus.RUNNING, ["more_work"], [])
    steps.complete(instance, "more_work", {"risk": 9})
    # The condition turned true as more_work completed: the event sub-process replaces
    # the rest of the work, done never runs.
    assert steps.state(instance) == (InstanceStatus.COMPLETED, [], ["alarm"])


def test_a_non_interrupting_conditional_event_sub_process_fires_once_per_change(
    steps: Steps,
) -> None:
    steps.deploy("risk_watch", event_sub_process("risk_watch", interrupting=False))
    instance = steps.start("risk_watch", {"risk": 1})
    steps.complete(instance, "work", {"risk": 9})
    assert steps.state(instance) == (InstanceStatus.RUNNING, ["more_work"], ["alarm"])
    with steps.engine() as engine:  # still true: no second alarm
        assert engine.instances.get(instance).data["trace"] == ["alarm"]
    steps.complete(instance, "more_work", {"risk": 2})
    assert steps.state(instance) == (InstanceStatus.COMPLETED, [], ["alarm", "done"])
