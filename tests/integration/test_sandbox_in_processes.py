"""Known Python sandbox escapes and resource bombs, each put into a gateway condition, a
script task and a DMN cell: every one is refused (at deploy, or when evaluated) with a
clear error, and none of them ran (the sentinel file they would create does not exist)."""

from __future__ import annotations

import time
from pathlib import Path
from xml.sax.saxutils import escape

import pytest

from bankflow import DefinitionError, Engine, InstanceStatus, Severity

SENTINEL = "/tmp/bankflow-sandbox-escaped"
TOUCH = f"__import__('os').system('touch {SENTINEL}')"

ESCAPES: list[tuple[str, str]] = [
    ("subclasses", "().__class__.__base__.__subclasses__()"),
    (
        "catch_warnings",
        "[c for c in ().__class__.__base__.__subclasses__() if c.__name__ == "
        "'catch_warnings'][0]()._module.__builtins__['__import__']('os').system('id')",
    ),
    ("import", TOUCH),
    ("import-statement", "import os"),
    ("getattr", "getattr(1, '__class__')"),
    ("type", "type(1)"),
    ("eval", "eval('1')"),
    ("exec", f'exec("{TOUCH}")'),
    ("open", "open('/etc/passwd')"),
    ("compile", "compile('1', 'x', 'eval')"),
    ("globals", "globals()"),
    ("vars", "vars()"),
    ("locals", "locals()"),
    ("builtins-name", "__builtins__"),
    ("dunder-name", "__name__"),
    ("frame-walk", "(x for x in ()).gi_frame.f_back"),
    ("format-attribute", "'{0.__class__}'.format(1)"),
    ("lambda", "(lambda: 1)()"),
    ("comprehension", "[x for x in [1, 2, 3]]"),
    ("generator", "sum(x for x in [1, 2])"),
    ("dict-attribute", "amount.__dict__"),
    ("mro", "amount.__class__.__mro__"),
    ("confusable-eval", "\uff45\uff56\uff41\uff4c('1')"),  # NFKC-normalises to eval
    ("confusable-dunder", "().__\uff43\uff4c\uff41\uff53\uff53__"),
    ("private-name", "_secret"),
    ("method-call", "'abc'.upper()"),
    ("breakpoint", "breakpoint()"),
    ("walrus", "(y := 1)"),
    ("fstring", "f'{amount}'"),
    ("starred", "max(*[1, 2])"),
    ("keyword-smuggling", "min([1], key=print)"),
    ("power-tower", "9 ** 9 ** 9"),
    ("big-power", "10 ** 10 ** 10"),
    ("string-bomb", "'a' * 10 ** 10"),
    ("list-bomb", "[0] * 10 ** 9"),
    ("shift-bomb", "1 << 10 ** 9"),
    ("decimal-bomb", "Decimal('1e999999') ** 999999"),
    ("huge-int-to-str", "str(10 ** 100000)"),
    ("deep-nesting", "[" * 100 + "]" * 100),
    ("deep-negation", "-" * 500 + "1"),
]
assert len(ESCAPES) >= 30

HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="t">
  <bpmn:process id="{key}" isExecutable="true">
    <bpmn:startEvent id="start" name="Start"/>
"""
TAIL = """    <bpmn:endEvent id="end" name="End"/>
  </bpmn:process>
</bpmn:definitions>
"""


def condition_process(text: str) -> str:
    return (
        HEAD.format(key="cond")
        + f"""    <bpmn:exclusiveGateway id="gw" name="Route?" default="plain"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="gw"/>
    <bpmn:sequenceFlow id="evil" name="evil" sourceRef="gw" targetRef="end">
      <bpmn:conditionExpression>{escape(text)}</bpmn:conditionExpression></bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="plain" name="plain" sourceRef="gw" targetRef="end"/>
"""
        + TAIL
    )


def script_process(text: str) -> str:
    return (
        HEAD.format(key="script")
        + f"""    <bpmn:scriptTask id="run" name="Run" scriptFormat="python">
      <bpmn:script>{escape(text)}</bpmn:script></bpmn:scriptTask>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="run"/>
    <bpmn:sequenceFlow id="f2" sourceRef="run" targetRef="end"/>
"""
        + TAIL
    )


def rule_process() -> str:
    return (
        HEAD.format(key="rule")
        + """    <bpmn:businessRuleTask id="decide" name="Decide" camunda:decisionRef="evil"
        camunda:resultVariable="verdict"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="decide"/>
    <bpmn:sequenceFlow id="f2" sourceRef="decide" targetRef="end"/>
"""
        + TAIL
    )


def dmn(text: str) -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/" id="dd" name="D"
    namespace="x">
  <decision id="evil" name="Evil"><decisionTable id="t" hitPolicy="FIRST">
    <input id="i"><inputExpression id="e"><text>amount</text></inputExpression></input>
    <output id="o" name="verdict"/>
    <rule id="r1"><inputEntry id="a"><text>{escape(text)}</text></inputEntry>
      <outputEntry id="b"><text>"yes"</text></outputEntry></rule>
  </decisionTable></decision>
</definitions>
"""


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    folder = tmp_path_factory.mktemp("sandbox")
    return Engine(f"sqlite:///{folder}/sandbox.db")


def refused(engine: Engine, files: list[Path], key: str) -> str:
    """Deploy and run; return how the escape was refused. Fails the test if it ran."""
    try:
        engine.definitions.deploy(*files)
    except DefinitionError as exc:
        errors = [d for d in exc.diagnostics if d.severity == Severity.ERROR]
        assert errors, "refused without an error"
        assert all(d.element_id and d.line for d in errors), errors
        return f"deploy: {errors[0].rule}"
    started = time.monotonic()
    instance = engine.instances.start(key, data={"amount": 5})
    assert time.monotonic() - started < 2, "the bomb was not stopped early"
    assert instance.status == InstanceStatus.FAILED, f"ran: {instance.data}"
    assert instance.failure is not None
    assert instance.failure.element_id in {"gw", "run", "decide"}
    return f"run: {instance.failure.error_type}"


@pytest.fixture(autouse=True)
def no_sentinel() -> None:
    Path(SENTINEL).unlink(missing_ok=True)
    yield
    assert not Path(SENTINEL).exists(), "an escape ran code"


@pytest.mark.parametrize(("name", "text"), ESCAPES, ids=[n for n, _ in ESCAPES])
def test_escape_in_condition(engine: Engine, tmp_path: Path, name: str, text: str) -> None:
    file = tmp_path / f"cond_{name}.bpmn"
    file.write_text(condition_process(text), encoding="utf-8")
    assert refused(engine, [file], "cond")


@pytest.mark.parametrize(("name", "text"), ESCAPES, ids=[n for n, _ in ESCAPES])
def test_escape_in_script(engine: Engine, tmp_path: Path, name: str, text: str) -> None:
    file = tmp_path / f"script_{name}.bpmn"
    file.write_text(script_process(text), encoding="utf-8")
    assert refused(engine, [file], "script")


@pytest.mark.parametrize(("name", "text"), ESCAPES, ids=[n for n, _ in ESCAPES])
def test_escape_in_dmn_cell(engine: Engine, tmp_path: Path, name: str, text: str) -> None:
    process = tmp_path / f"rule_{name}.bpmn"
    process.write_text(rule_process(), encoding="utf-8")
    table = tmp_path / f"rule_{name}.dmn"
    table.write_text(dmn(text), encoding="utf-8")
    assert refused(engine, [process, table], "rule")


def test_harmless_expressions_still_run(engine: Engine, tmp_path: Path) -> None:
    file = tmp_path / "ok.bpmn"
    file.write_text(script_process("total = amount * Decimal('1.10')\nbig = total > 5"))
    engine.definitions.deploy(file)
    instance = engine.instances.start("script", data={"amount": 5})
    assert instance.status == InstanceStatus.COMPLETED
    assert instance.data["big"] is True
