"""Service tasks run the host's handlers: results merge into task data, a BpmnError takes
the matching error boundary path, anything else fails the instance, and a task with no
handler waits for an external worker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bankflow import BpmnError, Engine, InstanceStatus

PROCESS = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="t">
  <bpmn:error id="err_sanctions" name="Sanctions hit" errorCode="SANCTIONS"/>
  <bpmn:process id="onboard" isExecutable="true">
    <bpmn:startEvent id="start" name="Start"/>
    <bpmn:serviceTask id="screen" name="Screen" camunda:type="external"
        camunda:topic="kyc.screen"/>
    <bpmn:boundaryEvent id="sanctions" name="Sanctions hit" attachedToRef="screen">
      <bpmn:errorEventDefinition errorRef="err_sanctions"/>
    </bpmn:boundaryEvent>
    <bpmn:userTask id="open" name="Open account" camunda:candidateGroups="cs"/>
    <bpmn:userTask id="review" name="Compliance review" camunda:candidateGroups="compliance"/>
    <bpmn:endEvent id="end" name="End"/>
    <bpmn:endEvent id="end_review" name="Reviewed"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="screen"/>
    <bpmn:sequenceFlow id="f2" sourceRef="screen" targetRef="open"/>
    <bpmn:sequenceFlow id="f3" sourceRef="open" targetRef="end"/>
    <bpmn:sequenceFlow id="f4" sourceRef="sanctions" targetRef="review"/>
    <bpmn:sequenceFlow id="f5" sourceRef="review" targetRef="end_review"/>
  </bpmn:process>
</bpmn:definitions>
"""


@pytest.fixture
def engine_with_process(db_url: str, tmp_path: Path) -> Engine:
    (tmp_path / "onboard.bpmn").write_text(PROCESS)
    engine = Engine(db_url, migrate=True, cache_size=0)
    engine.definitions.deploy(tmp_path / "onboard.bpmn")
    return engine


def test_handler_result_merges_into_data(engine_with_process: Engine) -> None:
    engine = engine_with_process
    seen: list[dict[str, Any]] = []

    @engine.services.register("kyc.screen")
    def screen(data: dict[str, Any]) -> dict[str, Any]:
        seen.append(data)
        return {"screened": True, "hits": 0}

    instance = engine.instances.start("onboard", data={"name": "Ada"})
    assert instance.status == InstanceStatus.RUNNING
    assert [t.element_id for t in instance.tasks] == ["open"]
    assert instance.data["screened"] is True
    assert seen == [{"name": "Ada"}]
    engine.close()


def test_bpmn_error_takes_the_boundary_path(engine_with_process: Engine) -> None:
    engine = engine_with_process

    def screen(data: dict[str, Any]) -> dict[str, Any]:
        raise BpmnError("SANCTIONS", "listed on EU sanctions list")

    engine.services.register("kyc.screen", screen)
    instance = engine.instances.start("onboard", data={"name": "Mallory"})
    assert instance.status == InstanceStatus.RUNNING
    assert [t.element_id for t in instance.tasks] == ["review"]
    engine.close()


def test_uncaught_code_and_other_errors_fail_the_instance(engine_with_process: Engine) -> None:
    engine = engine_with_process

    def wrong_code(data: dict[str, Any]) -> dict[str, Any]:
        raise BpmnError("OTHER")

    engine.services.register("kyc.screen", wrong_code)
    failed = engine.instances.start("onboard")
    assert failed.status == InstanceStatus.FAILED
    assert failed.failure is not None
    assert "OTHER" in failed.failure.message
    assert failed.failure.element_id == "screen"

    def broken(data: dict[str, Any]) -> dict[str, Any]:
        raise ConnectionError("screening service unreachable")

    engine.services.register("kyc.screen", broken)
    broke = engine.instances.start("onboard")
    assert broke.status == InstanceStatus.FAILED
    assert broke.failure is not None
    assert "ConnectionError: screening service unreachable" in broke.failure.message
    assert broke.failure.error_type != "NameError"

    engine.services.register("kyc.screen", lambda data: {"screened": True})
    fixed = engine.instances.retry(broke.id)
    assert [t.element_id for t in fixed.tasks] == ["open"]
    engine.close()


def test_without_handler_the_task_waits(engine_with_process: Engine, tmp_path: Path) -> None:
    engine = engine_with_process
    instance = engine.instances.start("onboard")
    assert instance.status == InstanceStatus.RUNNING
    assert instance.tasks == ()
    # An external task is meant to wait for a worker: validate does not warn (issue 11),
    # with or without a handler registered for its topic.
    report = engine.definitions.validate(tmp_path / "onboard.bpmn")
    assert not [d for d in report.diagnostics if d.rule == "service-handler"]
    engine.services.register("kyc.screen", lambda data: None)
    assert not [
        d
        for d in engine.definitions.validate(tmp_path / "onboard.bpmn").diagnostics
        if d.rule == "service-handler"
    ]
    engine.close()
