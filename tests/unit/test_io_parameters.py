"""``camunda:inputOutput`` parameters read as expressions (definitions/_io.py), refused by
name where bankflow cannot evaluate them, and checked at validate like every expression."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from bankflow import Engine
from bankflow.definitions import _io
from bankflow.definitions._lint import lint_bpmn
from bankflow.models import Severity

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
CAMUNDA = "http://camunda.org/schema/1.0/bpmn"


def model(parameters: str) -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="{BPMN}" xmlns:camunda="{CAMUNDA}" id="Defs" targetNamespace="t">
  <bpmn:process id="io" name="IO" isExecutable="true">
    <bpmn:startEvent id="Begin" name="Started"/>
    <bpmn:scriptTask id="Assess" name="Assess" scriptFormat="python">
      <bpmn:extensionElements><camunda:inputOutput>{parameters}</camunda:inputOutput>
      </bpmn:extensionElements>
      <bpmn:script>risk = 1</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:endEvent id="Finish" name="Done"/>
    <bpmn:sequenceFlow id="F1" sourceRef="Begin" targetRef="Assess"/>
    <bpmn:sequenceFlow id="F2" sourceRef="Assess" targetRef="Finish"/>
  </bpmn:process>
</bpmn:definitions>
"""


def read(parameters: str) -> _io.Mapping:
    root = etree.fromstring(model(parameters).encode())
    return _io.mappings(root)["Assess"]


@pytest.mark.parametrize(
    ("content", "expression"),
    [
        ("branch", "'branch'"),
        ("${amount}", "amount"),
        ("${amount > 1000 &amp;&amp; !approved}", "amount > 1000 and not approved"),
        ("Dear ${name}, ${n} left", "'Dear ' + str(name) + ', ' + str(n) + ' left'"),
        ("", "None"),
        (
            "<camunda:list><camunda:value>kyc</camunda:value>"
            "<camunda:value>${segment}</camunda:value></camunda:list>",
            "['kyc', segment]",
        ),
        (
            '<camunda:map><camunda:entry key="a">1</camunda:entry>'
            '<camunda:entry key="b">${b}</camunda:entry></camunda:map>',
            "{'a': '1', 'b': b}",
        ),
    ],
    ids=["literal", "expression", "juel", "composite", "empty", "list", "map"],
)
def test_a_parameter_becomes_one_expression(content: str, expression: str) -> None:
    mapping = read(f'<camunda:inputParameter name="x">{content}</camunda:inputParameter>')
    assert [(p.name, p.expression) for p in mapping.inputs] == [("x", expression)]
    assert mapping.outputs == ()


def test_inputs_and_outputs_keep_their_order() -> None:
    mapping = read(
        '<camunda:inputParameter name="b">${1}</camunda:inputParameter>'
        '<camunda:inputParameter name="a">${b}</camunda:inputParameter>'
        '<camunda:outputParameter name="z">${a}</camunda:outputParameter>'
    )
    assert [p.name for p in mapping.inputs] == ["b", "a"]
    assert [(p.name, p.expression) for p in mapping.outputs] == [("z", "a")]


@pytest.mark.parametrize(
    ("parameter", "reason"),
    [
        (
            '<camunda:inputParameter name="x"><camunda:script scriptFormat="javascript">'
            "1</camunda:script></camunda:inputParameter>",
            "the input parameter 'x' is a script, which bankflow does not run: the activity "
            "runs without it",
        ),
        (
            '<camunda:outputParameter name="not a name">1</camunda:outputParameter>',
            "the output parameter 'not a name' is not a variable name",
        ),
        (
            '<camunda:inputParameter name="x">${open</camunda:inputParameter>',
            "no closing brace",
        ),
    ],
    ids=["script", "name", "unclosed"],
)
def test_what_bankflow_cannot_evaluate_is_refused_by_name(parameter: str, reason: str) -> None:
    root = etree.fromstring(model(parameter).encode())
    found = [d for d in lint_bpmn(root, file="io.bpmn") if d.rule == "unsupported"]
    assert len(found) == 1
    (diagnostic,) = found
    severity = Severity.WARNING if "script" in reason else Severity.ERROR
    assert (diagnostic.severity, diagnostic.element_id) == (severity, "Assess")
    assert reason in diagnostic.message
    assert diagnostic.line is not None


def test_a_clean_mapping_lints_clean() -> None:
    root = etree.fromstring(
        model('<camunda:inputParameter name="x">${amount}</camunda:inputParameter>').encode()
    )
    assert [d for d in lint_bpmn(root, file="io.bpmn") if d.severity == Severity.ERROR] == []


def test_validate_checks_parameter_expressions(tmp_path: Path) -> None:
    path = tmp_path / "io.bpmn"
    path.write_text(
        model(
            '<camunda:inputParameter name="ok">${amount + 1}</camunda:inputParameter>'
            '<camunda:outputParameter name="bad">${amount +}</camunda:outputParameter>'
        )
    )
    with Engine(f"sqlite:///{tmp_path / 'db.sqlite'}", migrate=True) as engine:
        report = engine.definitions.validate(path)
    errors = [d for d in report.diagnostics if d.severity == Severity.ERROR]
    assert [(d.rule, d.element_id) for d in errors] == [("expression-parse", "Assess")]
    assert "the output parameter 'bad'" in errors[0].message


def test_an_element_id_the_engine_uses_itself_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "io.bpmn"
    path.write_text(model("").replace('"Begin"', '"Start"').replace('"Finish"', '"End"'))
    with Engine(f"sqlite:///{tmp_path / 'db.sqlite'}", migrate=True) as engine:
        report = engine.definitions.validate(path)
    errors = sorted(
        (d.rule, d.element_id) for d in report.diagnostics if d.severity == Severity.ERROR
    )
    assert errors == [("reserved-id", "End"), ("reserved-id", "Start")]
