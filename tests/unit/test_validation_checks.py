"""Checks that turn a live failure into a located diagnostic (issue 11): timer values,
dangling references, an exclusive gateway that can find no way out; each with its
expected (rule, element id, line, severity)."""

from __future__ import annotations

from pathlib import Path

import pytest
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition as Spiff
from test_lint import CLEAN, ERROR, WARNING, bpmn, found, line_of, lint

from bankflow.definitions._bundle import prepare
from bankflow.definitions._timers import timer_problem

# --- timer-definition ----------------------------------------------------------------------


def timer(kind: str, value: str) -> str:
    return bpmn(
        CLEAN.replace(
            '<bpmn:sequenceFlow id="F2" sourceRef="Approve" targetRef="End"/>',
            f"""<bpmn:intermediateCatchEvent id="Wait" name="Wait a day">
      <bpmn:timerEventDefinition id="TimerDef">
        <bpmn:{kind}>{value}</bpmn:{kind}>
      </bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="F2" sourceRef="Approve" targetRef="Wait"/>
    <bpmn:sequenceFlow id="F3" sourceRef="Wait" targetRef="End"/>""",
        )
    )


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("timeDuration", "P24H"),
        ("timeDuration", "PT"),
        ("timeDuration", "P1DT"),
        ("timeDuration", "tomorrow"),
        ("timeDuration", '"P24H"'),
        ("timeDuration", "${'P24H'}"),
        ("timeDuration", "R3/PT1H"),
        ("timeDate", "2026-13-01T09:00:00Z"),
        ("timeDate", "PT1H"),
        ("timeCycle", "R/P"),
        ("timeCycle", "PT1H"),
    ],
)
def test_a_timer_value_that_is_no_iso_8601_value_is_an_error(kind: str, value: str) -> None:
    text = timer(kind, value)
    assert found(text, "timer-definition") == [(ERROR, "Wait", line_of(text, "Wait"))]


def test_p24h_names_the_timer_and_suggests_pt24h() -> None:
    [diagnostic] = [d for d in lint(timer("timeDuration", "P24H")) if d.rule == "timer-definition"]
    assert 'intermediate catch event "Wait a day"' in diagnostic.message
    assert "did you mean PT24H?" in diagnostic.message


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("timeDuration", "PT48H"),
        ("timeDuration", "P14D"),
        ("timeDuration", "PT1.5H"),
        ("timeDuration", '"PT48H"'),
        ("timeDuration", "${reminderDate}"),
        ("timeDuration", "#{delay}"),
        ("timeDuration", "${'PT2H'}"),
        ("timeDate", "2026-12-01T09:00:00Z"),
        ("timeDate", "${due}"),
        ("timeCycle", "R3/PT1H"),
        ("timeCycle", "R/PT24H"),
        ("timeCycle", "R/2026-12-01T09:00:00Z/P1D"),
        ("timeCycle", "0 0 9 * * ?"),  # cron: warns at build that it never fires
        ("timeDuration", "hours_left * 2"),  # an expression: checked when armed
    ],
)
def test_iso_values_and_expressions_stay_valid(kind: str, value: str) -> None:
    assert found(timer(kind, value), "timer-definition") == []


def test_a_bare_name_is_a_variable_in_spiffworkflows_python_dialect() -> None:
    spiff = ' xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"'
    text = timer("timeDuration", "wait_for").replace(' id="Defs"', f' id="Defs"{spiff}')
    assert found(text, "timer-definition") == []


@pytest.mark.parametrize(
    "value",
    ["PT24H", "P2D", "P1Y2M3DT4H5M6S", "P2W", "PT1.5H", "PT", "P24H", "P1DT", "P1W2D", "P1.5H"],
)
def test_durations_are_judged_as_spiffworkflow_reads_them(value: str) -> None:
    try:
        Spiff.parse_iso_duration(value)
        spiff_reads = True
    except Exception:
        spiff_reads = False
    assert (timer_problem("timeDuration", value) is None) == spiff_reads


def test_a_fraction_before_the_last_number_is_refused() -> None:
    # SpiffWorkflow reads P1.5DT1H as one hour: it silently drops the 1.5 days.
    assert Spiff.parse_iso_duration("P1.5DT1H") == {"hours": 1}
    assert timer_problem("timeDuration", "P1.5DT1H") is not None


@pytest.mark.parametrize(
    "value", ["R3/PT1H", "R/PT24H", "R/2026-12-01T09:00:00Z/P1D", "R2/P1D/2026-12-01T00:00:00Z"]
)
def test_cycles_spiffworkflow_reads_are_valid(value: str) -> None:
    Spiff.parse_iso_recurring_interval(value)
    assert timer_problem("timeCycle", value) is None


# --- reference -----------------------------------------------------------------------------


def test_a_target_ref_typo_is_an_error_on_the_flow_with_a_suggestion() -> None:
    text = bpmn(CLEAN.replace('targetRef="End"', 'targetRef="Edn"'))
    assert found(text, "reference") == [(ERROR, "F2", line_of(text, "F2"))]
    [diagnostic] = [d for d in lint(text) if d.rule == "reference"]
    assert 'sequence flow F2: targetRef="Edn" names no element: did you mean "End"?' in (
        diagnostic.message
    )


def test_a_source_ref_to_nothing_close_has_no_suggestion() -> None:
    text = bpmn(CLEAN.replace('sourceRef="Start"', 'sourceRef="Somewhere_else"'))
    assert found(text, "reference") == [(ERROR, "F1", line_of(text, "F1"))]
    [diagnostic] = [d for d in lint(text) if d.rule == "reference"]
    assert "did you mean" not in diagnostic.message


def test_a_flow_into_another_sub_process_is_an_error() -> None:
    sub = """
    <bpmn:subProcess id="Sub" name="Checks">
      <bpmn:startEvent id="SubStart" name="Checks start"/>
    </bpmn:subProcess>
    <bpmn:sequenceFlow id="F9" sourceRef="Approve" targetRef="SubStart"/>"""
    text = bpmn(CLEAN + sub)
    assert (ERROR, "F9", line_of(text, "F9")) in found(text, "reference")


def test_a_default_that_names_no_outgoing_flow_is_an_error() -> None:
    text = bpmn(
        CLEAN.replace('<bpmn:userTask id="Approve"', '<bpmn:userTask default="F3" id="Approve"')
    )
    assert found(text, "reference") == [(ERROR, "Approve", line_of(text, "Approve"))]
    text = bpmn(
        CLEAN.replace('<bpmn:userTask id="Approve"', '<bpmn:userTask default="F1" id="Approve"')
    )
    [diagnostic] = [d for d in lint(text) if d.rule == "reference"]
    assert "does not leave it" in diagnostic.message


def test_a_boundary_event_attached_to_nothing_is_an_error() -> None:
    boundary = """
    <bpmn:boundaryEvent id="Late" name="Late" attachedToRef="Aprove">
      <bpmn:timerEventDefinition><bpmn:timeDuration>PT1H</bpmn:timeDuration></bpmn:timerEventDefinition>
    </bpmn:boundaryEvent>
    <bpmn:sequenceFlow id="F4" sourceRef="Late" targetRef="End"/>"""
    text = bpmn(CLEAN + boundary)
    assert found(text, "reference") == [(ERROR, "Late", line_of(text, "Late"))]
    assert any('did you mean "Approve"?' in d.message for d in lint(text))


@pytest.mark.parametrize(
    ("definition", "declared", "attribute"),
    [
        ("messageEventDefinition", "message", "messageRef"),
        ("errorEventDefinition", "error", "errorRef"),
        ("escalationEventDefinition", "escalation", "escalationRef"),
        ("signalEventDefinition", "signal", "signalRef"),
    ],
)
def test_an_event_definition_naming_nothing_is_an_error(
    definition: str, declared: str, attribute: str
) -> None:
    end = f"""<bpmn:endEvent id="End" name="Loan decided">
      <bpmn:{definition} id="Def" {attribute}="Paid_typo"/>
    </bpmn:endEvent>"""
    text = bpmn(CLEAN.replace('<bpmn:endEvent id="End" name="Loan decided"/>', end)).replace(
        "  <bpmn:process", f'  <bpmn:{declared} id="Paid" name="paid"/>\n  <bpmn:process'
    )
    assert found(text, "reference") == [(ERROR, "End", line_of(text, "End"))]
    [diagnostic] = [d for d in lint(text) if d.rule == "reference"]
    assert f'{attribute}="Paid_typo" names no {declared} of this file' in diagnostic.message
    assert 'did you mean "Paid"?' in diagnostic.message
    assert found(text.replace("Paid_typo", "Paid"), "reference") == []


# --- exclusive-gateway-default -------------------------------------------------------------

GATEWAY = """
    <bpmn:startEvent id="Start" name="Loan requested"/>
    <bpmn:exclusiveGateway id="Decide" name="Amount?"{default}/>
    <bpmn:endEvent id="Small" name="Small loan"/>
    <bpmn:endEvent id="Large" name="Large loan"/>
    <bpmn:sequenceFlow id="F0" sourceRef="Start" targetRef="Decide"/>
    <bpmn:sequenceFlow id="FS" name="small" sourceRef="Decide" targetRef="Small">
      <bpmn:conditionExpression>${{amount &lt; 1000}}</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="FL" name="large" sourceRef="Decide" targetRef="Large">
      <bpmn:conditionExpression>${{amount &gt; 5000}}</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
"""


def test_an_exclusive_gateway_with_only_conditions_and_no_default_warns() -> None:
    text = bpmn(GATEWAY.format(default=""))
    assert found(text, "exclusive-gateway-default") == [
        (WARNING, "Decide", line_of(text, "Decide"))
    ]
    assert found(text, "conditional-flows") == []  # one warning, not two


def test_an_exclusive_gateway_with_a_default_or_a_bare_flow_does_not() -> None:
    assert found(bpmn(GATEWAY.format(default=' default="FL"')), "exclusive-gateway-default") == []
    bare = GATEWAY.format(default="").replace(
        "<bpmn:conditionExpression>${amount &gt; 5000}</bpmn:conditionExpression>", ""
    )
    assert found(bpmn(bare), "exclusive-gateway-default") == []


# --- service-handler -------------------------------------------------------------------------


def test_an_external_task_does_not_warn_that_no_handler_is_registered(tmp_path: Path) -> None:
    tasks = """
    <bpmn:serviceTask id="Screen" name="Screen" camunda:type="external" camunda:topic="kyc"/>
    <bpmn:serviceTask id="Score" name="Score" camunda:class="bank.Score"/>
    <bpmn:sequenceFlow id="F3" sourceRef="Screen" targetRef="Score"/>"""
    path = tmp_path / "loan.bpmn"
    path.write_text(bpmn(CLEAN + tasks), encoding="utf-8")
    bundle = prepare([path], services=frozenset())
    text = path.read_text()
    assert [
        (d.rule, d.element_id, d.line, d.severity)
        for d in bundle.diagnostics
        if d.rule == "service-handler"
    ] == [("service-handler", "Score", line_of(text, "Score"), WARNING)]


@pytest.mark.parametrize(
    ("small", "large"),
    [
        ("${amount &lt; 1000}", "${amount &gt;= 1000}"),
        ("${approved}", "${!approved}"),
        ("approved == True", "approved == False"),
        ("amount &lt; 1000", "1000 &lt;= amount"),
        ("${risk == 'red'}", "${risk != 'red'}"),
    ],
)
def test_a_yes_no_decision_always_has_a_way_out_and_does_not_warn(small: str, large: str) -> None:
    text = bpmn(
        GATEWAY.format(default="")
        .replace("${amount &lt; 1000}", small)
        .replace("${amount &gt; 5000}", large)
    )
    assert found(text, "exclusive-gateway-default") == []


def test_conditions_in_a_language_bankflow_does_not_read_are_left_to_that_rule() -> None:
    text = bpmn(
        GATEWAY.format(default="")
        .replace("${amount &lt; 1000}", "return order.isSmall();")
        .replace("${amount &gt; 5000}", "return order.isLarge();")
    )
    assert found(text, "exclusive-gateway-default") == []


def test_a_receive_task_in_a_sub_process_is_reported_once_at_its_own_line() -> None:
    sub = """
    <bpmn:subProcess id="Sub" name="Wait for the customer">
      <bpmn:receiveTask id="Docs" name="Documents" messageRef="Dcos"/>
    </bpmn:subProcess>"""
    text = bpmn(CLEAN + sub).replace(
        "  <bpmn:process", '  <bpmn:message id="Docs_msg" name="docs"/>\n  <bpmn:process'
    )
    assert found(text, "reference") == [(ERROR, "Docs", line_of(text, "Docs"))]
