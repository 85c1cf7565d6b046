"""Deploying: versioning by content, metadata stored, decisions and called processes
resolved against what is deployed, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from bankflow import DefinitionError, Engine, NotFound, Severity

CAMUNDA = 'xmlns:camunda="http://camunda.org/schema/1.0/bpmn"'


def bpmn(
    process_id: str, body: str, *, lanes: str = "", name: str = "Loan", root_extra: str = ""
) -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" {CAMUNDA}
    id="defs_{process_id}" targetNamespace="http://bank.example/bpmn">
  {root_extra}
  <bpmn:process id="{process_id}" name="{name}" isExecutable="true">
    {lanes}
    <bpmn:startEvent id="start" name="Received"/>
    {body}
    <bpmn:endEvent id="end" name="Done"/>
  </bpmn:process>
</bpmn:definitions>
"""


REVIEW = """
    <bpmn:userTask id="review" name="Review application" camunda:candidateGroups="risk, credit"
        camunda:dueDate="P2D" camunda:priority="70" camunda:formKey="review-form">
      <bpmn:documentation>Check the numbers.</bpmn:documentation>
      <bpmn:extensionElements>
        <camunda:formData>
          <camunda:formField id="amount" label="Amount" type="long">
            <camunda:validation><camunda:constraint name="required"/></camunda:validation>
          </camunda:formField>
        </camunda:formData>
      </bpmn:extensionElements>
    </bpmn:userTask>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="review"/>
    <bpmn:sequenceFlow id="f2" sourceRef="review" targetRef="end"/>
"""
LANES = """<bpmn:laneSet id="ls"><bpmn:lane id="lane_risk" name="Risk">
      <bpmn:flowNodeRef>start</bpmn:flowNodeRef><bpmn:flowNodeRef>review</bpmn:flowNodeRef>
      <bpmn:flowNodeRef>end</bpmn:flowNodeRef></bpmn:lane></bpmn:laneSet>"""

DMN = """<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/" id="d" name="D"
    namespace="http://bank.example/dmn">
  <decision id="{id}" name="Pre-check">
    <decisionTable id="t">
      <input id="i1" label="Amount"><inputExpression id="e1" typeRef="number">
        <text>amount</text></inputExpression></input>
      <output id="o1" name="auto" typeRef="boolean"/>
      <rule id="r1"><inputEntry id="ie1"><text>&lt; {limit}</text></inputEntry>
        <outputEntry id="oe1"><text>True</text></outputEntry></rule>
    </decisionTable>
  </decision>
</definitions>
"""
RULE_TASK = """
    <bpmn:businessRuleTask id="precheck" name="Pre-check" camunda:decisionRef="precheck_dmn"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="precheck"/>
    <bpmn:sequenceFlow id="f2" sourceRef="precheck" targetRef="end"/>
"""
CALL = """
    <bpmn:callActivity id="call_kyc" name="Run KYC" calledElement="kyc_check"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="call_kyc"/>
    <bpmn:sequenceFlow id="f2" sourceRef="call_kyc" targetRef="end"/>
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_deploy_stores_versions_by_content(engine: Engine, tmp_path: Path) -> None:
    file = write(tmp_path / "loan.bpmn", bpmn("loan", REVIEW, lanes=LANES))
    first = engine.definitions.deploy(file)
    assert first.created
    assert [(p.key, p.version, p.name) for p in first.processes] == [("loan", 1, "Loan")]
    again = engine.definitions.deploy(file)
    assert not again.created
    assert again.id is None
    assert again.processes == first.processes
    write(file, bpmn("loan", REVIEW, lanes=LANES, name="Loan v2"))
    second = engine.definitions.deploy(file)
    assert [(p.key, p.version) for p in second.processes] == [("loan", 2)]
    assert engine.definitions.get("loan").version == 2
    assert engine.definitions.get("loan", version=1).name == "Loan"
    assert [p.version for p in engine.definitions.list(key="loan")] == [1, 2]
    assert [p.version for p in engine.definitions.list(latest_only=True)] == [2]


def test_element_metadata_is_stored(engine: Engine, tmp_path: Path) -> None:
    engine.definitions.deploy(write(tmp_path / "loan.bpmn", bpmn("loan", REVIEW, lanes=LANES)))
    review = {e.element_id: e for e in engine.definitions.elements("loan")}["review"]
    assert review.lane == "Risk"
    assert review.candidate_groups == ("risk", "credit")
    assert review.due_date == "P2D"
    assert review.priority == "70"
    assert review.form_key == "review-form"
    assert review.documentation == "Check the numbers."
    assert [(f.id, f.type, f.required) for f in review.form_fields] == [("amount", "long", True)]
    assert review.line is not None


def test_directory_deploy_and_decision_versions(engine: Engine, tmp_path: Path) -> None:
    folder = tmp_path / "procs"
    folder.mkdir()
    write(folder / "precheck.dmn", DMN.format(id="precheck_dmn", limit=10000))
    write(folder / "loan.bpmn", bpmn("loan", RULE_TASK))
    deployed = engine.definitions.deploy(folder)
    assert [d.key for d in deployed.decisions] == ["precheck_dmn"]
    assert sorted(deployed.resources) == ["loan.bpmn", "precheck.dmn"]
    write(folder / "precheck.dmn", DMN.format(id="precheck_dmn", limit=20000))
    redeployed = engine.definitions.deploy(folder)
    assert [(d.key, d.version) for d in redeployed.decisions] == [("precheck_dmn", 2)]
    assert [(p.key, p.version) for p in redeployed.processes] == [("loan", 1)]


def test_business_rule_task_resolves_a_decision_deployed_earlier(
    engine: Engine, tmp_path: Path
) -> None:
    engine.definitions.deploy(write(tmp_path / "p.dmn", DMN.format(id="precheck_dmn", limit=1)))
    deployed = engine.definitions.deploy(write(tmp_path / "loan.bpmn", bpmn("loan", RULE_TASK)))
    assert [p.key for p in deployed.processes] == ["loan"]


def test_missing_decision_is_an_error_and_stores_nothing(engine: Engine, tmp_path: Path) -> None:
    text = bpmn("loan", RULE_TASK)
    with pytest.raises(DefinitionError) as raised:
        engine.definitions.deploy(write(tmp_path / "loan.bpmn", text))
    [error] = [d for d in raised.value.diagnostics if d.severity == Severity.ERROR]
    assert (error.rule, error.element_id) == ("decision-ref", "precheck")
    assert error.file.endswith("loan.bpmn")
    assert error.line == text[: text.index('id="precheck"')].count("\n") + 1
    assert engine.definitions.list() == []


def test_called_process_may_come_later(engine: Engine, tmp_path: Path) -> None:
    caller = write(tmp_path / "caller.bpmn", bpmn("onboarding", CALL))
    first = engine.definitions.deploy(caller)
    [warning] = [d for d in first.diagnostics if d.rule == "call-activity-target"]
    assert warning.severity == Severity.WARNING
    assert warning.element_id == "call_kyc"
    engine.definitions.deploy(write(tmp_path / "kyc.bpmn", bpmn("kyc_check", REVIEW)))
    report = engine.definitions.validate(caller)
    assert report.ok
    assert not [d for d in report.diagnostics if d.rule == "call-activity-target"]


def test_validate_stores_nothing(engine: Engine, tmp_path: Path) -> None:
    report = engine.definitions.validate(write(tmp_path / "l.bpmn", bpmn("loan", REVIEW)))
    assert report.ok
    assert engine.definitions.list() == []
    with pytest.raises(NotFound):
        engine.definitions.get("loan")


def test_unknown_version_is_not_found(engine: Engine, tmp_path: Path) -> None:
    engine.definitions.deploy(write(tmp_path / "l.bpmn", bpmn("loan", REVIEW, lanes=LANES)))
    with pytest.raises(NotFound, match="version 7"):
        engine.definitions.get("loan", version=7)


def test_camunda_style_file_deploys_with_rewrites(engine: Engine, tmp_path: Path) -> None:
    """Unquoted ISO timers, a task with two unconditional flows, a data store: valid BPMN
    SpiffWorkflow rejects on its own."""
    body = """
    <bpmn:dataStoreReference id="core_ref" name="Core banking" dataStoreRef="core"/>
    <bpmn:userTask id="capture" name="Capture" camunda:candidateGroups="cs">
      <bpmn:dataInputAssociation id="read_core"><bpmn:sourceRef>core_ref</bpmn:sourceRef>
      </bpmn:dataInputAssociation></bpmn:userTask>
    <bpmn:boundaryEvent id="late" name="48 hours" attachedToRef="capture">
      <bpmn:timerEventDefinition><bpmn:timeDuration>PT48H</bpmn:timeDuration>
      </bpmn:timerEventDefinition></bpmn:boundaryEvent>
    <bpmn:userTask id="a" name="A" camunda:candidateGroups="cs"/>
    <bpmn:userTask id="b" name="B" camunda:candidateGroups="cs"/>
    <bpmn:parallelGateway id="join" name="Join"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="capture"/>
    <bpmn:sequenceFlow id="f2" sourceRef="capture" targetRef="a"/>
    <bpmn:sequenceFlow id="f3" sourceRef="capture" targetRef="b"/>
    <bpmn:sequenceFlow id="f4" sourceRef="a" targetRef="join"/>
    <bpmn:sequenceFlow id="f5" sourceRef="b" targetRef="join"/>
    <bpmn:sequenceFlow id="f6" sourceRef="join" targetRef="end"/>
    <bpmn:sequenceFlow id="f7" sourceRef="late" targetRef="end"/>
    """
    store = '<bpmn:dataStore id="core" name="Core banking"/>'
    text = bpmn("camunda", body, root_extra=store)
    deployed = engine.definitions.deploy(write(tmp_path / "c.bpmn", text))
    rules = {d.rule for d in deployed.diagnostics}
    assert {"no-implicit-split", "data-store", "data-association"} <= rules
    assert all(d.severity == Severity.WARNING for d in deployed.diagnostics)
    assert [p.key for p in deployed.processes] == ["camunda"]
