"""The BPMN lint: each rule fires on the smallest model that breaks it and stays quiet on
one that doesn't, and the whole corpus of real tool output goes through without a crash."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from bankflow.definitions._lint import juel_to_python, lint_bpmn
from bankflow.models import Diagnostic, Severity

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
CAMUNDA = "http://camunda.org/schema/1.0/bpmn"
CORPUS = Path(__file__).parents[2].parent / "shared" / "bpmn-corpus"

ERROR, WARNING = Severity.ERROR, Severity.WARNING

# A model no rule complains about; tests splice their element into it.
CLEAN = """
    <bpmn:startEvent id="Start" name="Loan requested"/>
    <bpmn:userTask id="Approve" name="Approve loan" camunda:candidateGroups="officers"/>
    <bpmn:endEvent id="End" name="Loan decided"/>
    <bpmn:sequenceFlow id="F1" sourceRef="Start" targetRef="Approve"/>
    <bpmn:sequenceFlow id="F2" sourceRef="Approve" targetRef="End"/>
"""


def bpmn(body: str, *, executable: str = "true", definitions: str = "") -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="{BPMN}" xmlns:camunda="{CAMUNDA}" id="Defs"{definitions}>
  <bpmn:process id="Process_1" name="Loan" isExecutable="{executable}">{body}
  </bpmn:process>
</bpmn:definitions>
"""


def lint(text: str) -> list[Diagnostic]:
    return lint_bpmn(etree.fromstring(text.encode()), file="loan.bpmn")


def line_of(text: str, element_id: str) -> int:
    return text[: text.index(f'id="{element_id}"')].count("\n") + 1


def found(text: str, rule: str) -> list[tuple[Severity, str | None, int | None]]:
    return [(d.severity, d.element_id, d.line) for d in lint(text) if d.rule == rule]


def expect(text: str, rule: str, severity: Severity, *element_ids: str) -> list[Diagnostic]:
    """Assert ``rule`` fires exactly on ``element_ids`` (at their lines) and return them."""
    assert found(text, rule) == [(severity, i, line_of(text, i)) for i in element_ids]
    return [d for d in lint(text) if d.rule == rule]


def test_clean_model_has_no_diagnostics() -> None:
    assert lint(bpmn(CLEAN)) == []


def test_non_executable_processes_are_not_linted() -> None:
    assert lint(bpmn('<bpmn:task id="Lonely"/>', executable="false")) == []


def test_a_process_without_is_executable_is_linted_since_it_deploys() -> None:
    text = bpmn('<bpmn:task id="Lonely"/>').replace(' isExecutable="true"', "")
    assert lint(text) == lint(bpmn('<bpmn:task id="Lonely"/>'))
    assert lint(text) != []


def test_diagnostic_carries_file_line_id_and_element_name() -> None:
    text = bpmn(CLEAN.replace(' camunda:candidateGroups="officers"', ""))
    (diagnostic,) = expect(text, "human-task-unassigned", WARNING, "Approve")
    assert diagnostic.file == "loan.bpmn"
    assert 'user task "Approve loan"' in diagnostic.message


# --- start-event-required ---------------------------------------------------------------------

NO_START = """
    <bpmn:task id="A" name="A"/>
    <bpmn:task id="B" name="B"/>
    <bpmn:endEvent id="End" name="Done"/>
    <bpmn:boundaryEvent id="Timer" name="Late" attachedToRef="A">
      <bpmn:timerEventDefinition/>
    </bpmn:boundaryEvent>
    <bpmn:task id="Undo" name="Undo" isForCompensation="true"/>
    <bpmn:sequenceFlow id="F1" sourceRef="A" targetRef="End"/>
    <bpmn:sequenceFlow id="F2" sourceRef="B" targetRef="End"/>
    <bpmn:sequenceFlow id="F3" sourceRef="Timer" targetRef="End"/>
"""


def test_start_event_required_warns_with_implicit_starts() -> None:
    (diagnostic,) = expect(bpmn(NO_START), "start-event-required", WARNING, "Process_1")
    assert "bankflow starts it at A, B (the elements with no incoming flow)" in (diagnostic.message)


def test_start_event_required_errors_when_nothing_can_start() -> None:
    text = bpmn("""
    <bpmn:task id="A" name="A"/>
    <bpmn:task id="B" name="B"/>
    <bpmn:sequenceFlow id="F1" sourceRef="A" targetRef="B"/>
    <bpmn:sequenceFlow id="F2" sourceRef="B" targetRef="A"/>""")
    expect(text, "start-event-required", ERROR, "Process_1")


def test_empty_subprocess_is_left_to_the_rewrite() -> None:
    """An empty (collapsed) sub-process runs as a no-op; the rewrite warns, lint stays
    quiet so the element is not reported twice."""
    text = bpmn(
        CLEAN
        + """
    <bpmn:subProcess id="Sub" name="Collapsed"/>
    <bpmn:sequenceFlow id="F3" sourceRef="Approve" targetRef="Sub"/>
    <bpmn:sequenceFlow id="F4" sourceRef="Sub" targetRef="End"/>"""
    )
    assert found(text, "start-event-required") == []


def test_start_event_required_errors_on_event_subprocess_without_start() -> None:
    text = bpmn(
        CLEAN
        + """
    <bpmn:subProcess id="OnCancel" name="On cancel" triggeredByEvent="true">
      <bpmn:task id="Clean" name="Clean up"/>
      <bpmn:endEvent id="Cleaned" name="Cleaned"/>
      <bpmn:sequenceFlow id="E1" sourceRef="Clean" targetRef="Cleaned"/>
    </bpmn:subProcess>"""
    )
    expect(text, "start-event-required", ERROR, "OnCancel")


def test_start_event_required_quiet_with_start_event_or_ad_hoc() -> None:
    text = bpmn(
        CLEAN
        + """
    <bpmn:adHocSubProcess id="Adhoc" name="Checks">
      <bpmn:task id="C1" name="Check 1"/>
    </bpmn:adHocSubProcess>"""
    )
    assert found(text, "start-event-required") == []


# --- end-event-required -----------------------------------------------------------------------


def test_end_event_required() -> None:
    text = bpmn("""
    <bpmn:startEvent id="Start" name="Start"/>
    <bpmn:task id="A" name="A"/>
    <bpmn:sequenceFlow id="F1" sourceRef="Start" targetRef="A"/>""")
    expect(text, "end-event-required", WARNING, "Process_1")
    assert found(bpmn(CLEAN), "end-event-required") == []


# --- single-blank-start-event -----------------------------------------------------------------


def test_single_blank_start_event() -> None:
    second = """
    <bpmn:startEvent id="Start2" name="Also start"/>
    <bpmn:sequenceFlow id="F9" sourceRef="Start2" targetRef="Approve"/>"""
    expect(bpmn(CLEAN + second), "single-blank-start-event", ERROR, "Start2")
    triggered = second.replace(
        'name="Also start"/>',
        'name="Also start"><bpmn:messageEventDefinition/></bpmn:startEvent>',
    )
    assert found(bpmn(CLEAN + triggered), "single-blank-start-event") == []


# --- no-disconnected --------------------------------------------------------------------------


def test_no_disconnected_flags_lonely_task() -> None:
    text = bpmn(CLEAN + '<bpmn:task id="Lonely" name="Forgotten"/>')
    (diagnostic,) = expect(text, "no-disconnected", WARNING, "Lonely")
    assert 'task "Forgotten"' in diagnostic.message


def test_no_disconnected_flags_lonely_subprocess() -> None:
    text = bpmn(
        CLEAN
        + """
    <bpmn:subProcess id="Sub" name="Sub">
      <bpmn:startEvent id="S2" name="S"/>
      <bpmn:endEvent id="E2" name="E"/>
      <bpmn:sequenceFlow id="SF" sourceRef="S2" targetRef="E2"/>
    </bpmn:subProcess>"""
    )
    expect(text, "no-disconnected", WARNING, "Sub")


def test_no_disconnected_ignores_elements_reached_without_flows() -> None:
    text = bpmn(
        CLEAN
        + """
    <bpmn:boundaryEvent id="Comp" attachedToRef="Approve">
      <bpmn:compensateEventDefinition/>
    </bpmn:boundaryEvent>
    <bpmn:task id="Undo" name="Undo approval"/>
    <bpmn:association id="A1" sourceRef="Comp" targetRef="Undo"/>
    <bpmn:task id="Undo2" name="Undo more" isForCompensation="true"/>
    <bpmn:intermediateThrowEvent id="GoTo" name="Go">
      <bpmn:linkEventDefinition name="x"/>
    </bpmn:intermediateThrowEvent>
    <bpmn:subProcess id="OnError" name="On error" triggeredByEvent="true">
      <bpmn:startEvent id="Caught" name="Error"><bpmn:errorEventDefinition/></bpmn:startEvent>
    </bpmn:subProcess>"""
    )
    assert found(text, "no-disconnected") == []


def test_no_disconnected_ignores_single_node_scope() -> None:
    text = bpmn('<bpmn:startEvent id="S" name="S"/>')
    assert found(text, "no-disconnected") == []


# --- no-implicit-split ------------------------------------------------------------------------

SPLIT = """
    <bpmn:startEvent id="Start" name="Start"/>
    <bpmn:task id="A" name="Check"{default}/>
    <bpmn:endEvent id="E1" name="E1"/>
    <bpmn:endEvent id="E2" name="E2"/>
    <bpmn:sequenceFlow id="F0" sourceRef="Start" targetRef="A"/>
    <bpmn:sequenceFlow id="F1" sourceRef="A" targetRef="E1"/>
    <bpmn:sequenceFlow id="F2" sourceRef="A" targetRef="E2"/>
"""


def test_no_implicit_split() -> None:
    (diagnostic,) = expect(bpmn(SPLIT.format(default="")), "no-implicit-split", WARNING, "A")
    assert "2 outgoing flows without conditions" in diagnostic.message
    assert "bankflow runs every branch" in diagnostic.message
    quiet = bpmn(SPLIT.format(default=' default="F2"'))
    assert found(quiet, "no-implicit-split") == []


# --- conditional-flows ------------------------------------------------------------------------

DECISION = """
    <bpmn:startEvent id="Start" name="Start"/>
    <bpmn:exclusiveGateway id="G" name="Approved?"{default}/>
    <bpmn:endEvent id="Yes" name="Yes"/>
    <bpmn:endEvent id="No" name="No"/>
    <bpmn:sequenceFlow id="F0" sourceRef="Start" targetRef="G"/>
    <bpmn:sequenceFlow id="FYes" name="yes" sourceRef="G" targetRef="Yes">
      <bpmn:conditionExpression>approved</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="FNo" name="no" sourceRef="G" targetRef="No"/>
"""


def test_conditional_flows_on_gateway() -> None:
    (diagnostic,) = expect(bpmn(DECISION.format(default="")), "conditional-flows", WARNING, "FNo")
    assert "bankflow treats it as the default flow" in diagnostic.message
    assert found(bpmn(DECISION.format(default=' default="FNo"')), "conditional-flows") == []


def test_conditional_flows_ignores_parallel_gateway() -> None:
    text = bpmn(DECISION.format(default="").replace("exclusiveGateway", "parallelGateway"))
    assert found(text, "conditional-flows") == []


def test_conditional_flows_on_task() -> None:
    text = bpmn(
        SPLIT.format(default="").replace(
            'targetRef="E2"/>',
            'targetRef="E2"><bpmn:conditionExpression>x &gt; 1</bpmn:conditionExpression>'
            "</bpmn:sequenceFlow>",
        )
    )
    expect(text, "conditional-flows", WARNING, "F2")
    assert found(text, "no-implicit-split") == []


# --- gateways: no-gateway-join-fork, superfluous-gateway --------------------------------------


def test_no_gateway_join_fork() -> None:
    text = bpmn("""
    <bpmn:startEvent id="S1" name="S1"/>
    <bpmn:startEvent id="S2" name="S2"><bpmn:messageEventDefinition/></bpmn:startEvent>
    <bpmn:parallelGateway id="G"/>
    <bpmn:endEvent id="E1" name="E1"/>
    <bpmn:endEvent id="E2" name="E2"/>
    <bpmn:sequenceFlow id="F1" sourceRef="S1" targetRef="G"/>
    <bpmn:sequenceFlow id="F2" sourceRef="S2" targetRef="G"/>
    <bpmn:sequenceFlow id="F3" sourceRef="G" targetRef="E1"/>
    <bpmn:sequenceFlow id="F4" sourceRef="G" targetRef="E2"/>""")
    expect(text, "no-gateway-join-fork", WARNING, "G")
    assert found(bpmn(DECISION.format(default=' default="FNo"')), "no-gateway-join-fork") == []


def test_superfluous_gateway() -> None:
    text = bpmn("""
    <bpmn:startEvent id="S" name="S"/>
    <bpmn:exclusiveGateway id="G"/>
    <bpmn:endEvent id="E" name="E"/>
    <bpmn:sequenceFlow id="F1" sourceRef="S" targetRef="G"/>
    <bpmn:sequenceFlow id="F2" sourceRef="G" targetRef="E"/>""")
    expect(text, "superfluous-gateway", WARNING, "G")
    assert found(bpmn(DECISION.format(default=' default="FNo"')), "superfluous-gateway") == []


# --- fake-join --------------------------------------------------------------------------------

JOIN = """
    <bpmn:startEvent id="Start" name="Start"/>
    <bpmn:exclusiveGateway id="G" name="Approved?" default="FNo"/>
    <bpmn:task id="T" name="Notify"/>
    <bpmn:endEvent id="End" name="End"/>
    <bpmn:sequenceFlow id="F0" sourceRef="Start" targetRef="G"/>
    <bpmn:sequenceFlow id="FYes" name="yes" sourceRef="G" targetRef="{target}">
      <bpmn:conditionExpression>approved</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="FNo" sourceRef="G" targetRef="T"/>
    <bpmn:sequenceFlow id="F3" sourceRef="T" targetRef="End"/>
"""


def test_fake_join() -> None:
    (diagnostic,) = expect(bpmn(JOIN.format(target="T")), "fake-join", WARNING, "T")
    assert "runs once per arriving flow; use a gateway to join" in diagnostic.message
    separate_end = JOIN.format(target="Done") + '<bpmn:endEvent id="Done" name="Done"/>'
    assert found(bpmn(separate_end), "fake-join") == []


# --- label-required ---------------------------------------------------------------------------


def test_label_required() -> None:
    text = bpmn(
        JOIN.format(target="End").replace(' name="Notify"', "").replace(' name="yes"', "")
        + """
    <bpmn:laneSet id="LS"><bpmn:lane id="Lane"/></bpmn:laneSet>"""
    )
    expect(text, "label-required", WARNING, "T", "FYes", "Lane")


def test_label_required_ignores_joins_parallel_gateways_and_plain_flows() -> None:
    text = bpmn("""
    <bpmn:startEvent id="S" name="S"/>
    <bpmn:parallelGateway id="Fork"/>
    <bpmn:task id="A" name="A"/>
    <bpmn:task id="B" name="B"/>
    <bpmn:exclusiveGateway id="Join"/>
    <bpmn:endEvent id="E" name="E"/>
    <bpmn:sequenceFlow id="F1" sourceRef="S" targetRef="Fork"/>
    <bpmn:sequenceFlow id="F2" sourceRef="Fork" targetRef="A"/>
    <bpmn:sequenceFlow id="F3" sourceRef="Fork" targetRef="B"/>
    <bpmn:sequenceFlow id="F4" sourceRef="A" targetRef="Join"/>
    <bpmn:sequenceFlow id="F5" sourceRef="B" targetRef="Join"/>
    <bpmn:sequenceFlow id="F6" sourceRef="Join" targetRef="E"/>""")
    assert found(text, "label-required") == []


# --- no-duplicate-sequence-flows --------------------------------------------------------------


def test_no_duplicate_sequence_flows() -> None:
    duplicate = '<bpmn:sequenceFlow id="F2bis" sourceRef="Approve" targetRef="End"/>'
    expect(bpmn(CLEAN + duplicate), "no-duplicate-sequence-flows", ERROR, "F2bis")
    conditional = duplicate.replace(
        "/>", "><bpmn:conditionExpression>x</bpmn:conditionExpression></bpmn:sequenceFlow>"
    )
    assert found(bpmn(CLEAN + conditional), "no-duplicate-sequence-flows") == []


# --- human-task-unassigned --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "unassigned"),
    [
        ('<bpmn:userTask id="U" name="Sign"/>', True),
        ('<bpmn:manualTask id="U" name="Sign"/>', True),
        ('<bpmn:userTask id="U" name="Sign" camunda:assignee="ann"/>', False),
        ('<bpmn:userTask id="U" name="Sign" camunda:candidateUsers="ann"/>', False),
        ('<bpmn:userTask id="U" name="Sign" camunda:candidateGroups=""/>', True),
        (
            '<bpmn:userTask id="U" name="Sign"><bpmn:potentialOwner id="PO"/></bpmn:userTask>',
            False,
        ),
        (
            '<bpmn:userTask id="U" name="Sign"/><bpmn:laneSet id="LS">'
            '<bpmn:lane id="L" name="Clerk"><bpmn:flowNodeRef>U</bpmn:flowNodeRef></bpmn:lane>'
            "</bpmn:laneSet>",
            False,
        ),
        ('<bpmn:serviceTask id="U" name="Sign"/>', False),
    ],
)
def test_human_task_unassigned(task: str, unassigned: bool) -> None:
    text = bpmn(CLEAN + task)
    expected = [(WARNING, "U", line_of(text, "U"))] if unassigned else []
    assert found(text, "human-task-unassigned") == expected


# --- expressions ------------------------------------------------------------------------------


def with_condition(condition: str, language: str = "") -> str:
    attribute = f' language="{language}"' if language else ""
    return DECISION.format(default=' default="FNo"').replace(
        "<bpmn:conditionExpression>approved",
        f"<bpmn:conditionExpression{attribute}>{condition}",
    )


@pytest.mark.parametrize(
    ("condition", "language", "rule", "severity"),
    [
        ("amount &gt; 1000 and not approved", "", None, None),
        ("${amount &gt; 1000 &amp;&amp; !approved}", "", None, None),
        ("#{riskLevel eq 'red' || empty approved}", "", None, None),
        ("   ", "", None, None),
        ("amount &gt;", "python", "expression-parse", ERROR),
        ("amount &gt; 1000 &amp;&amp; !approved", "", "expression-parse", ERROR),
        ("${approved ? 'a' : 'b'}", "", "expression-parse", WARNING),
        ("${a} and ${b}", "", "expression-parse", WARNING),
        ("=approved = true", "", "expression-language", WARNING),
        ("approved", "groovy", "expression-language", WARNING),
        ("return approved;", "http://www.java.com/java", "expression-language", WARNING),
        ("${approved}", "juel", None, None),
    ],
)
def test_condition_expressions(
    condition: str, language: str, rule: str | None, severity: Severity | None
) -> None:
    text = bpmn(with_condition(condition, language))
    diagnostics = [d for d in lint(text) if d.rule.startswith("expression")]
    if rule is None:
        assert diagnostics == []
    else:
        assert [(d.rule, d.severity, d.element_id, d.line) for d in diagnostics] == [
            (rule, severity, "FYes", line_of(text, "FYes"))
        ]


def test_condition_syntax_error_quotes_expression_and_parser() -> None:
    (diagnostic,) = lint(bpmn(with_condition("amount &gt;")))
    assert diagnostic.message.startswith('the condition `amount >` on sequence flow "yes"')
    assert "does not parse" in diagnostic.message


def test_condition_in_files_default_expression_language_is_a_warning() -> None:
    xpath = ' expressionLanguage="http://www.w3.org/1999/XPath"'
    text = bpmn(with_condition("bpmn:getDataObject('approved')"), definitions=xpath)
    expect(text, "expression-language", WARNING, "FYes")
    juel = bpmn(with_condition("${approved}"), definitions=xpath)
    assert lint(juel) == []


def script_task(script: str, *, script_format: str = "") -> str:
    attribute = f' scriptFormat="{script_format}"' if script_format else ""
    return (
        CLEAN.replace('targetRef="End"', 'targetRef="Calc"')
        + f'<bpmn:scriptTask id="Calc" name="Compute score"{attribute}>{script}'
        + '</bpmn:scriptTask><bpmn:sequenceFlow id="F3" sourceRef="Calc" targetRef="End"/>'
    )


def test_script_parses() -> None:
    assert (
        lint(bpmn(script_task("<bpmn:script>\nscore = 1\nok = score &gt; 0\n</bpmn:script>"))) == []
    )
    assert (
        lint(bpmn(script_task("<bpmn:script>score = 1</bpmn:script>", script_format="python")))
        == []
    )


def test_script_syntax_error() -> None:
    text = bpmn(script_task("<bpmn:script>\nscore = 1\nif score\n</bpmn:script>"))
    (diagnostic,) = expect(text, "expression-parse", ERROR, "Calc")
    assert 'script task "Compute score" is refused by bankflow\'s expression language (line 3' in (
        diagnostic.message
    )


def test_script_language() -> None:
    text = bpmn(script_task("<bpmn:script>println 'hi'</bpmn:script>", script_format="groovy"))
    (diagnostic,) = expect(text, "script-language", WARNING, "Calc")
    assert "bankflow runs Python scripts only; this task fails when reached" in diagnostic.message


def test_script_missing() -> None:
    text = bpmn(
        script_task("", script_format="groovy").replace(
            'name="Compute score"', 'name="Compute score" camunda:resource="score.groovy"'
        )
    )
    expect(text, "script-missing", ERROR, "Calc")


# --- juel_to_python ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("juel", "python"),
    [
        ("${approved}", "approved"),
        ("#{!approved}", "not approved"),
        ("${ not approved }", "not approved"),
        ("${amount > 1000 && !approved}", "amount > 1000 and not approved"),
        ("${a||b}", "a or b"),
        ("${a&&!b}", "a and not b"),
        ("${foo != 'bar'}", "foo != 'bar'"),
        ("${x eq 'a && b'}", "x == 'a && b'"),
        ("${x ne null}", "x != None"),
        ("${a lt 1 and b gt 2 or c le 3 and d ge 4}", "a < 1 and b > 2 or c <= 3 and d >= 4"),
        ("${empty list}", "not list"),
        ("${flag == true || other == false}", "flag == True or other == False"),
        ("${order.empty}", "order.empty"),
        ("${score div 2 mod 3}", "score / 2 % 3"),
        ("${!(a && b)}", "not (a and b)"),
        ('${sentiment.toLowerCase() == "negative"}', 'sentiment.toLowerCase() == "negative"'),
        ("  ${approved}\n", "approved"),
        ("approved", None),
        ("=approved", None),
        ("x ${approved}", None),
        ("${a} and ${b}", None),
    ],
)
def test_juel_to_python(juel: str, python: str | None) -> None:
    assert juel_to_python(juel) == python


# --- robustness -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "prefix_declaration",
    [
        f'xmlns:bpmn2="{BPMN}"',
        f'xmlns:model="{BPMN}"',
        f'xmlns="{BPMN}"',
    ],
)
def test_any_prefix_works(prefix_declaration: str) -> None:
    prefix = prefix_declaration.split("=")[0].removeprefix("xmlns").removeprefix(":")
    text = bpmn(CLEAN + '<bpmn:task id="Lonely" name="Forgotten"/>').replace(
        f'xmlns:bpmn="{BPMN}"', prefix_declaration
    )
    text = text.replace("bpmn:", f"{prefix}:" if prefix else "")
    assert found(text, "no-disconnected") == [(WARNING, "Lonely", line_of(text, "Lonely"))]


def test_odd_input_never_raises() -> None:
    text = bpmn("""
    <!-- a comment -->
    <?some-pi data?>
    <bpmn:startEvent/>
    <bpmn:task name="No id"/>
    <bpmn:userTask id="" />
    <bpmn:exclusiveGateway id="G" default="Missing"/>
    <bpmn:sequenceFlow id="F1"/>
    <bpmn:sequenceFlow id="F2" sourceRef="Nowhere" targetRef="G"/>
    <bpmn:sequenceFlow sourceRef="G" targetRef="Elsewhere"><bpmn:conditionExpression/>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow sourceRef="G"><bpmn:conditionExpression>${</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:scriptTask id="S"><bpmn:script><![CDATA[if x < 1: y = "&"]]></bpmn:script>
    </bpmn:scriptTask>
    <foreign:task xmlns:foreign="urn:other" id="X"/>
    <bpmn:subProcess id="Sub" triggeredByEvent="true"><bpmn:laneSet><bpmn:lane/></bpmn:laneSet>
    </bpmn:subProcess>
    <bpmn:boundaryEvent id="B"/>""")
    diagnostics = lint(text)
    assert diagnostics
    assert [d.line for d in diagnostics] == sorted(d.line or 0 for d in diagnostics)
    assert lint_bpmn(etree.fromstring(f'<definitions xmlns="{BPMN}"/>'.encode()), file="x") == []
    assert (
        lint_bpmn(
            etree.fromstring(b"<not-bpmn><process isExecutable='true'/></not-bpmn>"), file="x"
        )
        == []
    )


def test_diagnostics_are_ordered_by_line() -> None:
    text = bpmn(
        CLEAN
        + """
    <bpmn:task id="Lonely"/>
    <bpmn:userTask id="Ask" name="Ask"/>"""
    )
    lines = [d.line or 0 for d in lint(text)]
    assert lines == sorted(lines)
    assert len(lines) >= 3


# --- the corpus -------------------------------------------------------------------------------


@pytest.mark.slow
def test_corpus_lints_without_raising() -> None:
    if not CORPUS.is_dir():
        pytest.skip(f"BPMN corpus not found at {CORPUS}")
    files = sorted(p for p in CORPUS.rglob("*") if p.name.endswith((".bpmn", ".bpmn20.xml")))
    assert files
    for path in files:
        root = etree.parse(str(path)).getroot()
        for diagnostic in lint_bpmn(root, file=path.name):
            assert diagnostic.file == path.name
            assert diagnostic.element_id, diagnostic
            assert diagnostic.line is not None, diagnostic
            assert diagnostic.line > 0, diagnostic


# --- loop-no-exit ----------------------------------------------------------------------------

LOOP_BODY = """
    <bpmn:startEvent id="Start" name="Start"/>
    <bpmn:scriptTask id="Count" name="Count"><bpmn:script>n = n + 1</bpmn:script></bpmn:scriptTask>
    <bpmn:exclusiveGateway id="Again" name="Again?"/>
    <bpmn:sequenceFlow id="F1" sourceRef="Start" targetRef="Count"/>
    <bpmn:sequenceFlow id="F2" sourceRef="Count" targetRef="Again"/>
    <bpmn:sequenceFlow id="F3" sourceRef="Again" targetRef="Count"/>
"""


def test_a_loop_with_no_wait_state_and_no_exit_warns() -> None:
    [diagnostic] = expect(bpmn(LOOP_BODY), "loop-no-exit", WARNING, "Count")
    assert 'script task "Count"' in diagnostic.message
    assert 'exclusive gateway "Again?"' in diagnostic.message


def test_a_self_loop_warns() -> None:
    body = """
    <bpmn:startEvent id="Start" name="Start"/>
    <bpmn:exclusiveGateway id="Spin" name="Spin"/>
    <bpmn:sequenceFlow id="F1" sourceRef="Start" targetRef="Spin"/>
    <bpmn:sequenceFlow id="F2" sourceRef="Spin" targetRef="Spin"/>
"""
    expect(bpmn(body), "loop-no-exit", WARNING, "Spin")


@pytest.mark.parametrize(
    "extra",
    [
        # a way out of the loop (even one whose condition may never hold)
        """<bpmn:endEvent id="End" name="End"/>
        <bpmn:sequenceFlow id="F4" sourceRef="Again" targetRef="End">
          <bpmn:conditionExpression>n &gt; 3</bpmn:conditionExpression>
        </bpmn:sequenceFlow>""",
        # a boundary event on an element of the loop
        """<bpmn:boundaryEvent id="Stop" name="Stop" attachedToRef="Count">
          <bpmn:errorEventDefinition/></bpmn:boundaryEvent>""",
    ],
)
def test_a_loop_with_a_way_out_is_quiet(extra: str) -> None:
    assert found(bpmn(LOOP_BODY + extra), "loop-no-exit") == []


def test_a_loop_through_a_wait_state_is_quiet() -> None:
    body = LOOP_BODY.replace(
        '<bpmn:exclusiveGateway id="Again" name="Again?"/>',
        '<bpmn:userTask id="Again" name="Again?" camunda:candidateGroups="officers"/>',
    )
    assert found(bpmn(body), "loop-no-exit") == []


def test_a_long_chain_is_walked_without_recursion() -> None:
    nodes = "".join(
        f'<bpmn:scriptTask id="T{i}" name="T{i}"><bpmn:script>x = 1</bpmn:script>'
        f'</bpmn:scriptTask><bpmn:sequenceFlow id="F{i}" sourceRef="T{i}" '
        f'targetRef="T{i + 1}"/>'
        for i in range(20_000)
    )
    body = f"""<bpmn:startEvent id="Start" name="Start"/>
    <bpmn:sequenceFlow id="FS" sourceRef="Start" targetRef="T0"/>{nodes}
    <bpmn:scriptTask id="T20000" name="Last"><bpmn:script>x = 1</bpmn:script></bpmn:scriptTask>
    <bpmn:sequenceFlow id="FB" sourceRef="T20000" targetRef="T0"/>"""
    [diagnostic] = [d for d in lint(bpmn(body)) if d.rule == "loop-no-exit"]
    assert diagnostic.severity == WARNING
    assert "and 19,996 more" in diagnostic.message


# --- unsupported -----------------------------------------------------------------------------

CONDITION = (
    "<bpmn:conditionalEventDefinition><bpmn:condition>x &gt; 5</bpmn:condition>"
    "</bpmn:conditionalEventDefinition>"
)
SIGNAL = '<bpmn:signalEventDefinition signalRef="Alarm"/>'


def with_globals(text: str, elements: str) -> str:
    """``text`` with ``elements`` at the top of ``<definitions>``, before the process."""
    return text.replace("\n  <bpmn:process ", f"\n  {elements}\n  <bpmn:process ", 1)


@pytest.mark.parametrize(
    ("extra", "element_id", "severity", "message"),
    [
        (
            '<bpmn:eventBasedGateway id="Wait" name="Wait" instantiate="true"/>',
            "Wait",
            ERROR,
            'event based gateway "Wait" instantiates the process (instantiate="true") but '
            "leads to no message event or receive task, which bankflow cannot run",
        ),
        (
            '<bpmn:intermediateCatchEvent id="Go" name="Go">'
            "<bpmn:eventDefinitionRef>Def</bpmn:eventDefinitionRef>"
            "</bpmn:intermediateCatchEvent>",
            "Go",
            ERROR,
            'intermediate catch event "Go" refers to a global event definition '
            "(eventDefinitionRef), which bankflow does not support yet",
        ),
        (
            f'<bpmn:startEvent id="Big" name="Big">{CONDITION}</bpmn:startEvent>',
            "Big",
            ERROR,
            'start event "Big" is a conditional start event of a process, which bankflow '
            "does not support: start the process by a call, a message, a signal or a timer",
        ),
        (
            '<bpmn:receiveTask id="Wait" name="Wait" instantiate="true"/>',
            "Wait",
            ERROR,
            'receive task "Wait" instantiates the process (instantiate="true") but names '
            "no message (messageRef), which bankflow cannot run",
        ),
        (
            '<bpmn:task id="Twice" name="Twice" startQuantity="2"/>',
            "Twice",
            ERROR,
            'task "Twice" has startQuantity=2, which bankflow does not support yet',
        ),
        (
            '<bpmn:task id="Twice" name="Twice" completionQuantity="2"/>',
            "Twice",
            ERROR,
            'task "Twice" has completionQuantity=2, which bankflow does not support yet',
        ),
        (
            '<bpmn:task id="Each" name="Each"><bpmn:multiInstanceLoopCharacteristics '
            'behavior="One" oneBehaviorEventRef="Def"><bpmn:loopCardinality>2'
            "</bpmn:loopCardinality></bpmn:multiInstanceLoopCharacteristics></bpmn:task>",
            "Each",
            ERROR,
            'task "Each" has the multi-instance behavior "One", which bankflow does not '
            "support yet (it throws no events from instances): leave the default, All",
        ),
    ],
)
def test_unsupported_construct_is_named(
    extra: str, element_id: str, severity: Severity, message: str
) -> None:
    (diagnostic,) = expect(bpmn(CLEAN + extra), "unsupported", severity, element_id)
    assert message in diagnostic.message


INSTANTIATING = """
    <bpmn:eventBasedGateway id="Either" name="Either" instantiate="true"/>
    <bpmn:intermediateCatchEvent id="Online" name="Online">
      <bpmn:messageEventDefinition messageRef="M1"/></bpmn:intermediateCatchEvent>
    <bpmn:receiveTask id="Branch" name="Branch" messageRef="M2"/>
    <bpmn:intermediateCatchEvent id="Never" name="Never">
      <bpmn:timerEventDefinition><bpmn:timeDuration>PT1H</bpmn:timeDuration>
      </bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>
    <bpmn:receiveTask id="Letter" name="Letter" messageRef="M1" instantiate="true"/>
    <bpmn:userTask id="Check" name="Check" camunda:candidateGroups="officers"/>
    <bpmn:endEvent id="Done" name="Done"/>
    <bpmn:sequenceFlow id="G1" sourceRef="Either" targetRef="Online"/>
    <bpmn:sequenceFlow id="G2" sourceRef="Either" targetRef="Branch"/>
    <bpmn:sequenceFlow id="G3" sourceRef="Either" targetRef="Never"/>
    <bpmn:sequenceFlow id="G4" sourceRef="Online" targetRef="Check"/>
    <bpmn:sequenceFlow id="G5" sourceRef="Branch" targetRef="Check"/>
    <bpmn:sequenceFlow id="G6" sourceRef="Never" targetRef="Check"/>
    <bpmn:sequenceFlow id="G7" sourceRef="Letter" targetRef="Check"/>
    <bpmn:sequenceFlow id="G8" sourceRef="Check" targetRef="Done"/>
"""


@pytest.mark.parametrize("behavior", ["None", "One", "Complex"])
def test_a_multi_instance_behavior_that_throws_nothing_is_not_refused(behavior: str) -> None:
    """Without its event (noneBehaviorEventRef, ...) a behavior changes nothing: the
    activity runs as with the default, All (``I/test_bpmn_gateways_starts.py``)."""
    text = bpmn(
        CLEAN.replace(
            'camunda:candidateGroups="officers"/>',
            'camunda:candidateGroups="officers"><bpmn:multiInstanceLoopCharacteristics '
            f'behavior="{behavior}"><bpmn:loopCardinality>2</bpmn:loopCardinality>'
            "</bpmn:multiInstanceLoopCharacteristics></bpmn:userTask>",
        )
    )
    assert found(text, "unsupported") == []


def test_a_complex_gateway_is_not_refused() -> None:
    """It runs (``I/test_bpmn_gateways_starts.py``); its activation condition is compiled
    when the process is built, like every expression SpiffWorkflow evaluates."""
    text = bpmn(
        CLEAN.replace('targetRef="End"', 'targetRef="Route"')
        + '<bpmn:complexGateway id="Route" name="Route"><bpmn:activationCondition>'
        "activationCount &gt;= 1</bpmn:activationCondition></bpmn:complexGateway>"
        + '<bpmn:sequenceFlow id="F3" sourceRef="Route" targetRef="End"/>'
    )
    assert found(text, "unsupported") == []


def test_instantiating_receive_tasks_and_event_gateways_start_the_process() -> None:
    """They start the process on their message: no start event is needed, nothing is
    refused; a timer after the gateway can never start an instance and warns."""
    text = bpmn(INSTANTIATING)
    [never] = expect(text, "unsupported", WARNING, "Never")
    assert "where a timer never fires" in never.message
    assert found(text, "start-event-required") == []


@pytest.mark.parametrize(
    ("change", "element_id", "reason"),
    [
        (
            (
                '<bpmn:sequenceFlow id="G8"',
                '<bpmn:sequenceFlow id="G9" sourceRef="Check" '
                'targetRef="Letter"/><bpmn:sequenceFlow id="G8"',
            ),
            "Letter",
            "has an incoming sequence flow",
        ),
        (('messageRef="M1" instantiate', "instantiate"), "Letter", "names no message"),
        (
            (
                'name="Either" instantiate="true"',
                'name="Either" instantiate="true" eventGatewayType="Parallel"',
            ),
            "Either",
            'has eventGatewayType="Parallel"',
        ),
        (
            ('<bpmn:messageEventDefinition messageRef="M1"/>', "<bpmn:signalEventDefinition/>"),
            "Either",
            'leads to "Online": only message events and receive tasks start a process',
        ),
        (
            (
                '<bpmn:sequenceFlow id="G8"',
                '<bpmn:sequenceFlow id="G9" sourceRef="Check" '
                'targetRef="Branch"/><bpmn:sequenceFlow id="G8"',
            ),
            "Either",
            'leads to "Branch", which other sequence flows also reach',
        ),
    ],
    ids=["incoming-flow", "no-message", "parallel", "signal-after-gateway", "joined-target"],
)
def test_an_instantiating_element_that_cannot_start_the_process_is_refused(
    change: tuple[str, str], element_id: str, reason: str
) -> None:
    text = bpmn(INSTANTIATING.replace(*change))
    refused = [d for d in lint(text) if d.rule == "unsupported" and d.severity == ERROR]
    assert [d.element_id for d in refused] == [element_id]
    assert reason in refused[0].message


# --- link-event ------------------------------------------------------------------------------


def _link(kind: str, element_id: str, name: str | None) -> str:
    tag = "intermediateThrowEvent" if kind == "throw" else "intermediateCatchEvent"
    named = "" if name is None else f' name="{name}"'
    return (
        f'<bpmn:{tag} id="{element_id}" name="{element_id}">'
        f"<bpmn:linkEventDefinition{named}/></bpmn:{tag}>"
    )


def test_link_events_with_their_catch_are_quiet() -> None:
    # Two throws may lead to one catch; a scope may reuse a name another scope uses.
    text = bpmn(
        CLEAN
        + _link("throw", "GoTo", "B")
        + _link("throw", "AlsoGoTo", "B")
        + _link("catch", "Arrive", "B")
        + '<bpmn:subProcess id="Sub" name="Sub">'
        + _link("throw", "SubGoTo", "B")
        + _link("catch", "SubArrive", "B")
        + "</bpmn:subProcess>"
    )
    assert found(text, "link-event") == []
    assert found(text, "unsupported") == []


def test_link_throw_without_a_catch_in_its_scope() -> None:
    # The only catch of the name is in another scope (a sub-process).
    text = bpmn(
        CLEAN
        + _link("throw", "GoTo", "B")
        + '<bpmn:subProcess id="Sub" name="Sub">'
        + _link("catch", "Arrive", "B")
        + "</bpmn:subProcess>"
    )
    (diagnostic,) = expect(text, "link-event", ERROR, "GoTo")
    assert diagnostic.file == "loan.bpmn"
    assert diagnostic.message.startswith(
        "intermediate throw event \"GoTo\" throws link 'B', which no link catch event in "
        'process "Loan" catches'
    )


def test_two_link_catches_of_one_name_in_a_scope() -> None:
    text = bpmn(
        CLEAN
        + _link("throw", "GoTo", "B")
        + _link("catch", "Arrive", "B")
        + _link("catch", "ArriveAgain", "B")
    )
    (diagnostic,) = expect(text, "link-event", ERROR, "ArriveAgain")
    assert "catches link 'B', as intermediate catch event \"Arrive\"" in diagnostic.message


def test_link_event_without_a_name() -> None:
    text = bpmn(CLEAN + _link("throw", "GoTo", None) + _link("catch", "Arrive", " "))
    throw, catch = expect(text, "link-event", ERROR, "GoTo", "Arrive")
    assert "is a link event without a link name" in throw.message
    assert "is a link event without a link name" in catch.message


def test_unsupported_call_of_a_global_task() -> None:
    call = '<bpmn:callActivity id="Call" name="Check" calledElement="Shared"/>'
    text = with_globals(bpmn(CLEAN + call), '<bpmn:globalScriptTask id="Shared" name="Shared"/>')
    (diagnostic,) = expect(text, "unsupported", ERROR, "Call")
    assert 'call activity "Check" calls the global task Shared' in diagnostic.message
    assert found(bpmn(CLEAN + call), "unsupported") == []  # a process of that id: fine


@pytest.mark.parametrize(
    "extra",
    [
        # what bankflow runs: defaults written out, and a signal thrown in the same instance
        '<bpmn:task id="T" name="T" startQuantity="1" completionQuantity="1"/>',
        '<bpmn:receiveTask id="R" name="R" instantiate="false"/>',
        '<bpmn:task id="M" name="M"><bpmn:multiInstanceLoopCharacteristics behavior="All">'
        "<bpmn:loopCardinality>2</bpmn:loopCardinality>"
        "</bpmn:multiInstanceLoopCharacteristics></bpmn:task>",
        f'<bpmn:intermediateThrowEvent id="Raise" name="Raise">{SIGNAL}'
        f'</bpmn:intermediateThrowEvent><bpmn:boundaryEvent id="B" name="B" '
        f'attachedToRef="Approve">{SIGNAL}</bpmn:boundaryEvent>'
        f'<bpmn:subProcess id="S" name="S"><bpmn:intermediateCatchEvent id="C" name="C">'
        f"{SIGNAL}</bpmn:intermediateCatchEvent></bpmn:subProcess>",
        f'<bpmn:subProcess id="OnAlarm" name="On alarm" triggeredByEvent="true">'
        f'<bpmn:startEvent id="A" name="A">{SIGNAL}</bpmn:startEvent></bpmn:subProcess>'
        f'<bpmn:endEvent id="Raise" name="Raise">{SIGNAL}</bpmn:endEvent>',
        # signals from ``signals.broadcast`` or another instance: no thrower needed here
        f'<bpmn:startEvent id="Alarmed" name="Alarmed">{SIGNAL}</bpmn:startEvent>',
        f'<bpmn:intermediateCatchEvent id="C" name="C">{SIGNAL}</bpmn:intermediateCatchEvent>',
        f'<bpmn:boundaryEvent id="B" name="B" attachedToRef="Approve">{SIGNAL}'
        "</bpmn:boundaryEvent>",
        f'<bpmn:subProcess id="OnAlarm" name="On alarm" triggeredByEvent="true">'
        f'<bpmn:startEvent id="A" name="A">{SIGNAL}</bpmn:startEvent></bpmn:subProcess>',
        '<bpmn:subProcess id="Inner" name="Inner"><bpmn:startEvent id="IS" name="IS"/>'
        '<bpmn:subProcess id="OnAlarm" name="On alarm" triggeredByEvent="true">'
        f'<bpmn:startEvent id="Alarmed" name="Alarmed">{SIGNAL}</bpmn:startEvent>'
        "</bpmn:subProcess></bpmn:subProcess>",
        '<bpmn:startEvent id="Msg" name="Msg"><bpmn:messageEventDefinition/></bpmn:startEvent>',
        # conditional events, checked again after every step
        f'<bpmn:intermediateCatchEvent id="Big" name="Big">{CONDITION}'
        "</bpmn:intermediateCatchEvent>",
        f'<bpmn:boundaryEvent id="Big" name="Big" attachedToRef="Approve">{CONDITION}'
        "</bpmn:boundaryEvent>",
        '<bpmn:subProcess id="OnBig" name="On big" triggeredByEvent="true">'
        f'<bpmn:startEvent id="Big" name="Big">{CONDITION}</bpmn:startEvent>'
        "</bpmn:subProcess>",
        # the message start of an event sub-process, interrupting or not
        '<bpmn:subProcess id="OnCancel" name="On cancel" triggeredByEvent="true">'
        '<bpmn:startEvent id="Cancel" name="Cancel">'
        '<bpmn:messageEventDefinition messageRef="M"/></bpmn:startEvent>'
        '<bpmn:startEvent id="Remind" name="Remind" isInterrupting="false">'
        '<bpmn:messageEventDefinition messageRef="M"/></bpmn:startEvent>'
        "</bpmn:subProcess>",
    ],
)
def test_unsupported_quiet_on_what_bankflow_runs(extra: str) -> None:
    assert found(bpmn(CLEAN + extra), "unsupported") == []


def test_a_signal_catch_needs_no_thrower_in_its_file() -> None:
    """A signal may come from a called process, another process or ``signals.broadcast``."""
    catch = f'<bpmn:intermediateCatchEvent id="C" name="C">{SIGNAL}</bpmn:intermediateCatchEvent>'
    call = '<bpmn:callActivity id="Call" name="Call" calledElement="Child"/>'
    child = (
        '<bpmn:process id="Child" isExecutable="true"><bpmn:startEvent id="CS" name="CS"/>'
        f'<bpmn:endEvent id="CE" name="CE">{SIGNAL}</bpmn:endEvent></bpmn:process>'
    )
    text = bpmn(CLEAN + catch + call).replace("</bpmn:definitions>", child + "</bpmn:definitions>")
    assert found(text, "unsupported") == []
    text = bpmn(CLEAN + catch).replace("</bpmn:definitions>", child + "</bpmn:definitions>")
    assert found(text, "unsupported") == []  # another process, not called: another instance


# --- parallel-write --------------------------------------------------------------------------


def _parallel(left: str, right: str, *, after: str = "") -> str:
    return bpmn(f"""
    <bpmn:startEvent id="Start" name="Start"/>
    <bpmn:parallelGateway id="Split" name="Split"/>
    <bpmn:scriptTask id="Left" name="Left"><bpmn:script>{left}</bpmn:script></bpmn:scriptTask>
    <bpmn:scriptTask id="Right" name="Right"><bpmn:script>{right}</bpmn:script></bpmn:scriptTask>
    <bpmn:parallelGateway id="Join" name="Join"/>
    <bpmn:scriptTask id="After" name="After"><bpmn:script>{after or "z = 1"}</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:endEvent id="End" name="End"/>
    <bpmn:sequenceFlow id="F1" sourceRef="Start" targetRef="Split"/>
    <bpmn:sequenceFlow id="F2" sourceRef="Split" targetRef="Left"/>
    <bpmn:sequenceFlow id="F3" sourceRef="Split" targetRef="Right"/>
    <bpmn:sequenceFlow id="F4" sourceRef="Left" targetRef="Join"/>
    <bpmn:sequenceFlow id="F5" sourceRef="Right" targetRef="Join"/>
    <bpmn:sequenceFlow id="F6" sourceRef="Join" targetRef="After"/>
    <bpmn:sequenceFlow id="F7" sourceRef="After" targetRef="End"/>
""")


def test_two_parallel_branches_writing_one_variable_warn() -> None:
    [diagnostic] = expect(
        _parallel("items = items + [1]", "items = items + [2]"),
        "parallel-write",
        WARNING,
        "Split",
    )
    assert '"items"' in diagnostic.message
    assert 'script task "Left"' in diagnostic.message
    assert 'script task "Right"' in diagnostic.message


@pytest.mark.parametrize("kind", ["inclusiveGateway", "complexGateway"])
def test_branches_of_inclusive_and_complex_splits_writing_one_variable_warn(kind: str) -> None:
    text = _parallel("x = 1", "x = 2").replace(
        '<bpmn:parallelGateway id="Split" name="Split"/>', f'<bpmn:{kind} id="Split" name="Split"/>'
    )
    [diagnostic] = expect(text, "parallel-write", WARNING, "Split")
    assert "which branch writes last" in diagnostic.message


def test_parallel_branches_with_their_own_variables_are_quiet() -> None:
    assert found(_parallel("a = 1", "b = 2", after="a = a + b"), "parallel-write") == []


def test_a_form_field_and_a_script_on_two_branches_warn() -> None:
    text = _parallel("x = 1", "y = 2").replace(
        '<bpmn:scriptTask id="Right" name="Right"><bpmn:script>y = 2</bpmn:script>'
        "</bpmn:scriptTask>",
        '<bpmn:userTask id="Right" name="Right" camunda:candidateGroups="officers">'
        "<bpmn:extensionElements><camunda:formData>"
        '<camunda:formField id="x" type="long"/></camunda:formData></bpmn:extensionElements>'
        "</bpmn:userTask>",
    )
    expect(text, "parallel-write", WARNING, "Split")


# --- compensation -----------------------------------------------------------------------------

COMPENSATED = """
    <bpmn:startEvent id="Start" name="Booking requested"/>
    <bpmn:serviceTask id="Book" name="Book hotel" camunda:class="Book">{loop}</bpmn:serviceTask>
    <bpmn:boundaryEvent id="Comp" name="Undo booking" attachedToRef="Book">
      <bpmn:compensateEventDefinition/>
    </bpmn:boundaryEvent>
    <bpmn:serviceTask id="Undo" name="Cancel" isForCompensation="true" camunda:class="Undo"/>
    <bpmn:endEvent id="End" name="Undone">
      <bpmn:compensateEventDefinition{ref}/>
    </bpmn:endEvent>
    <bpmn:sequenceFlow id="F1" sourceRef="Start" targetRef="Book"/>
    <bpmn:sequenceFlow id="F2" sourceRef="Book" targetRef="End"/>
    {extra}
    <bpmn:association id="A1" sourceRef="Comp" targetRef="Undo"/>
"""


def compensated(*, loop: str = "", ref: str = "", extra: str = "") -> str:
    return bpmn(COMPENSATED.format(loop=loop, ref=ref, extra=extra))


def test_compensation_boundary_handler_and_throw_are_not_refused() -> None:
    """What bankflow runs (tests/integration/test_compensation.py): no error, and the
    handler is not reported as disconnected."""
    looping = compensated(loop="<bpmn:multiInstanceLoopCharacteristics/>")
    no_wait = compensated(ref=' waitForCompletion="false"')
    for text in (compensated(), compensated(ref=' activityRef="Book"'), looping, no_wait):
        assert [d for d in lint(text) if d.severity == ERROR] == []


@pytest.mark.parametrize(
    ("text", "rule", "element_id", "message"),
    [
        (
            compensated().replace(
                '<bpmn:serviceTask id="Undo" name="Cancel" isForCompensation="true" '
                'camunda:class="Undo"/>',
                '<bpmn:serviceTask id="Undo" name="Cancel" isForCompensation="true" '
                'camunda:class="Undo"><bpmn:standardLoopCharacteristics/></bpmn:serviceTask>',
            ),
            "unsupported",
            "Undo",
            "is a loop or multi-instance compensation handler",
        ),
        (
            compensated(ref=' activityRef="Nothing"'),
            "compensation",
            "End",
            "compensates 'Nothing', which is no activity of process \"Loan\" with a "
            "compensation boundary event",
        ),
        (
            compensated().replace(
                '<bpmn:association id="A1" sourceRef="Comp" targetRef="Undo"/>', ""
            ),
            "compensation",
            "Comp",
            "has no compensation handler",
        ),
        (
            compensated().replace(' isForCompensation="true"', ""),
            "compensation",
            "Undo",
            'is not marked isForCompensation="true"',
        ),
        (
            compensated().replace(
                '<bpmn:serviceTask id="Undo" name="Cancel" isForCompensation="true" '
                'camunda:class="Undo"/>',
                '<bpmn:transaction id="Undo" name="Cancel" isForCompensation="true"/>',
            ),
            "unsupported",
            "Undo",
            "is a compensation handler that is a transaction or an ad-hoc sub-process",
        ),
        (
            compensated(extra='<bpmn:sequenceFlow id="F3" sourceRef="Undo" targetRef="End"/>'),
            "compensation",
            "Undo",
            "is a compensation handler with sequence flows",
        ),
    ],
    ids=[
        "loop-handler",
        "activity-ref",
        "no-handler",
        "not-for-compensation",
        "transaction-handler",
        "flows",
    ],
)
def test_compensation_problems_are_named(
    text: str, rule: str, element_id: str, message: str
) -> None:
    (diagnostic,) = expect(text, rule, ERROR, element_id)
    assert message in diagnostic.message


EVENT_SUB_PROCESS = """
    <bpmn:startEvent id="Start" name="Start"/>
    <bpmn:subProcess id="Sub" name="Book">
      <bpmn:startEvent id="SubStart" name="Start"/>
      <bpmn:serviceTask id="Book" name="Book hotel" camunda:delegateExpression="${book}"/>
      <bpmn:boundaryEvent id="Comp" name="Undo booking" attachedToRef="Book">
        <bpmn:compensateEventDefinition/>
      </bpmn:boundaryEvent>
      <bpmn:serviceTask id="Undo" name="Cancel hotel" isForCompensation="true"
        camunda:delegateExpression="${undo}"/>
      <bpmn:endEvent id="SubEnd" name="Booked"/>
      <bpmn:sequenceFlow id="S1" sourceRef="SubStart" targetRef="Book"/>
      <bpmn:sequenceFlow id="S2" sourceRef="Book" targetRef="SubEnd"/>
      <bpmn:subProcess id="OnUndo" name="On undo" triggeredByEvent="true">
        <bpmn:startEvent id="Undoing" name="Undo">
          <bpmn:compensateEventDefinition/></bpmn:startEvent>
        <bpmn:endEvent id="UndoEnd" name="Undone">
          <bpmn:compensateEventDefinition/>
        </bpmn:endEvent>
        <bpmn:sequenceFlow id="U1" sourceRef="Undoing" targetRef="UndoEnd"/>
      </bpmn:subProcess>
      <bpmn:association id="A1" sourceRef="Comp" targetRef="Undo"/>
    </bpmn:subProcess>
    <bpmn:endEvent id="End" name="Undone"><bpmn:compensateEventDefinition/></bpmn:endEvent>
    <bpmn:sequenceFlow id="F1" sourceRef="Start" targetRef="Sub"/>
    <bpmn:sequenceFlow id="F2" sourceRef="Sub" targetRef="End"/>
"""


def test_compensation_event_sub_processes_and_loops() -> None:
    """A compensation event sub-process in a sub-process runs (and its throw event
    compensates that sub-process), also in a loop sub-process; one of a process is
    refused."""
    assert [d for d in lint(bpmn(EVENT_SUB_PROCESS)) if d.severity == ERROR] == []
    at_process_level = bpmn(
        EVENT_SUB_PROCESS.replace('<bpmn:subProcess id="Sub" name="Book">', "").replace(
            '<bpmn:association id="A1" sourceRef="Comp" targetRef="Undo"/>\n    </bpmn:subProcess>',
            '<bpmn:association id="A1" sourceRef="Comp" targetRef="Undo"/>',
        )
    )
    diagnostics = {
        d.element_id: d.message for d in lint(at_process_level) if d.rule == "unsupported"
    }
    assert set(diagnostics) == {"Undoing"}
    assert (
        "starts a compensation event sub-process that is not directly in" in diagnostics["Undoing"]
    )
    looping = EVENT_SUB_PROCESS.replace(
        '<bpmn:subProcess id="Sub" name="Book">',
        '<bpmn:subProcess id="Sub" name="Book"><bpmn:standardLoopCharacteristics/>',
    )
    assert [d for d in lint(bpmn(looping)) if d.severity == ERROR] == []


def test_in_a_transaction_only_a_compensation_event_sub_process_is_refused() -> None:
    """Its compensation boundary events run when it is cancelled (or compensated later)."""
    text = bpmn(
        EVENT_SUB_PROCESS.replace(
            '<bpmn:subProcess id="Sub"', '<bpmn:transaction id="Sub"'
        ).replace(
            '</bpmn:subProcess>\n    <bpmn:endEvent id="End"',
            '</bpmn:transaction>\n    <bpmn:endEvent id="End"',
        )
    )
    errors = {d.element_id: d.message for d in lint(text) if d.severity == ERROR}
    assert set(errors) == {"Undoing"}
    assert "starts a compensation event sub-process that is not directly in" in errors["Undoing"]
