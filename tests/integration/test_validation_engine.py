"""Issue 11 through the engine, on SQLite and PostgreSQL: a timer `P24H` and a `targetRef`
typo are located errors at validate (never SpiffWorkflow's words), deploy refuses them and
stores nothing; `ValidationReport.clean` tells CI whether warnings remain."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_deploy import CALL, DMN, RULE_TASK
from test_deploy import bpmn as deploy_bpmn

from bankflow import DefinitionError, Engine, Severity

PROCESS = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="t">
  <bpmn:process id="reminder" name="Reminder" isExecutable="true">
    <bpmn:startEvent id="start" name="Start"/>
    <bpmn:intermediateCatchEvent id="wait" name="Wait a day">
      <bpmn:timerEventDefinition><bpmn:timeDuration>{duration}</bpmn:timeDuration>
      </bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:endEvent id="done" name="Done"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="wait"/>
    <bpmn:sequenceFlow id="f2" sourceRef="wait" targetRef="{target}"/>
  </bpmn:process>
</bpmn:definitions>
"""


def _write(tmp_path: Path, *, duration: str = "PT24H", target: str = "done") -> Path:
    path = tmp_path / "reminder.bpmn"
    path.write_text(PROCESS.format(duration=duration, target=target), encoding="utf-8")
    return path


def _line(path: Path, element_id: str) -> int:
    text = path.read_text()
    return text[: text.index(f'id="{element_id}"')].count("\n") + 1


@pytest.mark.parametrize(
    ("change", "rule", "element_id", "words"),
    [
        ({"duration": "P24H"}, "timer-definition", "wait", "did you mean PT24H?"),
        (
            {"target": "doen"},
            "reference",
            "f2",
            'targetRef="doen" names no element: did you mean "done"?',
        ),
    ],
)
def test_validate_locates_the_mistake_and_deploy_refuses_it(
    engine: Engine, tmp_path: Path, change: dict[str, str], rule: str, element_id: str, words: str
) -> None:
    path = _write(tmp_path, **change)
    report = engine.definitions.validate(path)
    assert not report.ok
    assert [(d.rule, d.element_id, d.line, d.severity) for d in report.errors] == [
        (rule, element_id, _line(path, element_id), Severity.ERROR)
    ]
    assert words in report.errors[0].message
    assert "perhaps a form has the same ID" not in report.errors[0].message
    with pytest.raises(DefinitionError):
        engine.definitions.deploy(path)
    assert engine.definitions.list() == []


def test_a_valid_timer_deploys_and_the_report_is_clean(engine: Engine, tmp_path: Path) -> None:
    report = engine.definitions.validate(_write(tmp_path))
    assert report.ok
    assert report.clean, report.diagnostics
    engine.definitions.deploy(_write(tmp_path, duration='"PT48H"'))
    assert [d.key for d in engine.definitions.list()] == ["reminder"]


def test_a_decision_ref_typo_suggests_the_decision_of_the_deployment(
    engine: Engine, tmp_path: Path
) -> None:
    (tmp_path / "p.dmn").write_text(DMN.format(id="precheck_dmn", limit=1), encoding="utf-8")
    text = deploy_bpmn("loan", RULE_TASK.replace('"precheck_dmn"', '"precheck_dnm"'))
    (tmp_path / "loan.bpmn").write_text(text, encoding="utf-8")
    report = engine.definitions.validate(tmp_path)
    [error] = report.errors
    line = text[: text.index('id="precheck"')].count("\n") + 1
    assert (error.rule, error.element_id, error.line) == ("decision-ref", "precheck", line)
    assert 'calls decision "precheck_dnm"' in error.message
    assert error.message.endswith('did you mean "precheck_dmn"?')


def test_a_called_element_typo_suggests_the_process_of_the_deployment(
    engine: Engine, tmp_path: Path
) -> None:
    (tmp_path / "kyc.bpmn").write_text(deploy_bpmn("kyc_check", ""), encoding="utf-8")
    text = deploy_bpmn("loan", CALL.replace('"kyc_check"', '"kyc_chek"'))
    (tmp_path / "loan.bpmn").write_text(text, encoding="utf-8")
    report = engine.definitions.validate(tmp_path)
    [warning] = [d for d in report.warnings if d.rule == "call-activity-target"]
    line = text[: text.index('id="call_kyc"')].count("\n") + 1
    assert (warning.element_id, warning.line) == ("call_kyc", line)
    assert warning.message.endswith('did you mean "kyc_check" (in this deployment)?')
