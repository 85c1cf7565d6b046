"""Processes started by an instantiating receive task or event-based gateway, and the
complex gateway, on both backends (issue 10): constructs validate refused before.

As in ``test_bpmn_semantics.py`` (whose helpers these tests reuse), service tasks record
what ran in ``steps.trace``, every step opens a fresh Engine on the stored state, and each
test asserts the exact order of what ran (the trace, and the history where it says more).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from test_bpmn_semantics import T0, TAIL, Steps, flows, history, process, service

from bankflow import CorrelationError, InstanceStatus

CS = ["cs"]
MESSAGES = (
    '<bpmn:message id="app_msg" name="application_submitted"/>'
    '<bpmn:message id="branch_msg" name="branch_application"/>'
)
SPIFF = 'xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"'


@pytest.fixture
def steps(db_url: str, tmp_path: Path) -> Steps:
    return Steps(db_url, tmp_path)


def with_messages(source: str) -> str:
    return source.replace(TAIL, MESSAGES + TAIL)


def check(element_id: str = "check") -> str:
    return f'<bpmn:userTask id="{element_id}" camunda:candidateGroups="cs"/>'


def web_form(message: str = "app_msg") -> str:
    """A process that throws ``application_submitted`` (with ``amount``) and ends."""
    return with_messages(
        process(
            "web_form",
            '<bpmn:startEvent id="opened"/>'
            f'<bpmn:endEvent id="submit"><bpmn:messageEventDefinition messageRef="{message}">'
            "<bpmn:extensionElements><spiffworkflow:messagePayload>"
            '{"amount": amount}</spiffworkflow:messagePayload></bpmn:extensionElements>'
            "</bpmn:messageEventDefinition></bpmn:endEvent>" + flows("opened>submit"),
        ).replace('targetNamespace="t"', f'targetNamespace="t" {SPIFF}')
    )


def no_refusal(steps: Steps, key: str) -> None:
    with steps.engine() as engine:
        report = engine.definitions.validate(steps.tmp_path / f"{key}.bpmn")
    assert [d for d in report.diagnostics if d.severity == "error"] == []
    assert [d for d in report.diagnostics if d.rule == "unsupported"] == []


def start_by(steps: Steps, how: str, name: str, business_key: str) -> str:
    """Start an instance with message ``name``: correlated by hand, or thrown by a
    ``web_form`` instance (whose job delivers it). Returns the started instance's id."""
    with steps.engine() as engine:
        if how == "correlate":
            [started] = engine.messages.correlate(
                name, business_key=business_key, data={"amount": 5}
            )
            return started.id
        engine.instances.start("web_form", business_key=business_key, data={"amount": 5})
    with steps.engine() as engine:
        [outcome] = engine.jobs.run_due().outcomes
        assert (outcome.kind, outcome.result) == ("message", "started")
        [started] = [i for i in engine.instances.list() if i.process_key != "web_form"]
        return started.id


# -- 1. an instantiating receive task ---------------------------------------------------------

RECEIVE = with_messages(
    process(
        "applications",
        '<bpmn:receiveTask id="application_in" name="Application in" messageRef="app_msg" '
        'instantiate="true"/>'
        + service("a")
        + check()
        + service("finish")
        + '<bpmn:endEvent id="end"/>'
        + flows("application_in>a", "a>check", "check>finish", "finish>end"),
    )
)


@pytest.mark.parametrize("how", ["correlate", "thrown"])
def test_an_instantiating_receive_task_starts_the_process_on_its_message(
    steps: Steps, how: str
) -> None:
    steps.deploy("applications", RECEIVE)
    no_refusal(steps, "applications")
    if how == "thrown":
        steps.deploy("web_form", web_form())
    instance_id = start_by(steps, how, "application_submitted", "A-1")
    assert steps.trace == ["a"]
    with steps.engine() as engine:
        started = engine.instances.get(instance_id)
        assert (started.process_key, started.business_key) == ("applications", "A-1")
        assert started.data == {"amount": 5}
        [work] = started.tasks
        assert work.element_id == "check"
        # The receive task completed as the first step: its id is in history.
        assert history(engine, instance_id) == [
            ("instance_started", None),
            ("message_received", "application_in"),
            ("task_created", "check"),
        ]
    with steps.engine() as engine:
        done = engine.tasks.complete(work.id, user="ann", groups=CS)
        assert (done.status, done.failure) == (InstanceStatus.COMPLETED, None)
        assert history(engine, instance_id)[-3:] == [
            ("task_completed", "check"),
            ("end_event_reached", "end"),
            ("instance_completed", None),
        ]
    assert steps.trace == ["a", "finish"]
    with steps.engine() as engine:
        # Each message starts its own instance; a started instance waits for none.
        [second] = engine.messages.correlate("application_submitted", business_key="A-2")
        assert second.id != instance_id
    assert steps.trace == ["a", "finish", "a"]


# -- 2. an instantiating event-based gateway --------------------------------------------------

EITHER = with_messages(
    process(
        "either",
        '<bpmn:eventBasedGateway id="either_way" instantiate="true"/>'
        '<bpmn:intermediateCatchEvent id="online"><bpmn:messageEventDefinition '
        'messageRef="app_msg"/></bpmn:intermediateCatchEvent>'
        '<bpmn:receiveTask id="at_branch" messageRef="branch_msg"/>'
        '<bpmn:intermediateCatchEvent id="never"><bpmn:timerEventDefinition>'
        "<bpmn:timeDuration>PT1H</bpmn:timeDuration></bpmn:timerEventDefinition>"
        "</bpmn:intermediateCatchEvent>"
        + service("a")
        + service("b")
        + service("remind")
        + check()
        + service("finish")
        + '<bpmn:endEvent id="end"/>'
        + flows(
            "either_way>online",
            "either_way>at_branch",
            "either_way>never",
            "online>a",
            "at_branch>b",
            "never>remind",
            "a>check",
            "b>check",
            "remind>check",
            "check>finish",
            "finish>end",
        ),
    )
)


@pytest.mark.parametrize(
    ("how", "name", "element_id", "ran"),
    [
        ("correlate", "application_submitted", "online", "a"),
        ("correlate", "branch_application", "at_branch", "b"),
        ("thrown", "application_submitted", "online", "a"),
    ],
    ids=["message-event", "receive-task", "thrown"],
)
def test_an_instantiating_event_gateway_starts_on_whichever_message_comes(
    steps: Steps, how: str, name: str, element_id: str, ran: str
) -> None:
    steps.deploy("either", EITHER)
    with steps.engine() as engine:
        report = engine.definitions.validate(steps.tmp_path / "either.bpmn")
    assert [
        (d.rule, d.severity, d.element_id)
        for d in report.diagnostics
        if d.rule in ("unsupported", "start-event-required")
    ] == [("unsupported", "warning", "never")]
    if how == "thrown":
        steps.deploy("web_form", web_form())
    instance_id = start_by(steps, how, name, "E-1")
    assert steps.trace == [ran]
    with steps.engine() as engine:
        started = engine.instances.get(instance_id)
        [work] = started.tasks
        assert (started.process_key, started.data, work.element_id) == (
            "either",
            {"amount": 5},
            "check",
        )
        assert history(engine, instance_id) == [
            ("instance_started", None),
            ("message_received", element_id),
            ("task_created", "check"),
        ]
        # The other message does not reach this instance (the gateway chose): it would
        # start another one; no timer job was made for the timer branch.
        assert engine.jobs.list() == []
    with steps.engine() as engine:
        done = engine.tasks.complete(work.id, user="ann", groups=CS)
        assert (done.status, done.failure) == (InstanceStatus.COMPLETED, None)
    steps.clock.set(T0 + timedelta(hours=2))
    with steps.engine() as engine:
        assert engine.jobs.run_due().outcomes == ()
        assert history(engine, instance_id)[-3:] == [
            ("task_completed", "check"),
            ("end_event_reached", "end"),
            ("instance_completed", None),
        ]
    assert steps.trace == [ran, "finish"]


def test_the_other_message_of_an_instantiating_gateway_starts_another_instance(
    steps: Steps,
) -> None:
    steps.deploy("either", EITHER)
    with steps.engine() as engine:
        [first] = engine.messages.correlate("application_submitted", business_key="E-2")
    with steps.engine() as engine:
        [second] = engine.messages.correlate("branch_application", business_key="E-3")
        assert second.id != first.id
        assert [i.business_key for i in engine.instances.list(process_key="either")] in (
            ["E-2", "E-3"],
            ["E-3", "E-2"],
        )
        with pytest.raises(CorrelationError, match="no instance is waiting"):
            engine.messages.correlate("nobody_sends_this", business_key="E-2")
    assert steps.trace == ["a", "b"]


# -- 3. the complex gateway -------------------------------------------------------------------


def condition(text: str) -> str:
    return (
        '<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">'
        f"{text}</bpmn:conditionExpression>"
    )


def complex_gateway(element_id: str, activation: str | None = None, default: str = "") -> str:
    inner = (
        f'<bpmn:activationCondition xsi:type="bpmn:tFormalExpression">{activation}'
        "</bpmn:activationCondition>"
        if activation is not None
        else ""
    )
    extra = f' default="{default}"' if default else ""
    return f'<bpmn:complexGateway id="{element_id}"{extra}>{inner}</bpmn:complexGateway>'


def with_xsi(source: str) -> str:
    return source.replace(
        'targetNamespace="t"',
        'targetNamespace="t" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"',
    )


def two_of_three(activation: str) -> str:
    """Three approvals in parallel; the complex gateway ``enough`` goes on to ``after``
    when ``activation`` holds of the approvals in."""
    return with_xsi(
        process(
            "approvals",
            '<bpmn:startEvent id="start"/><bpmn:parallelGateway id="ask"/>'
            + check("approve_1")
            + check("approve_2")
            + check("approve_3")
            + complex_gateway("enough", activation)
            + service("after")
            + '<bpmn:endEvent id="end"/>'
            + flows(
                "start>ask",
                "ask>approve_1",
                "ask>approve_2",
                "ask>approve_3",
                "approve_1>enough",
                "approve_2>enough",
                "approve_3>enough",
                "enough>after",
                "after>end",
            ),
        )
    )


def approve(steps: Steps, instance_id: str, element_id: str) -> InstanceStatus:
    """Complete the one waiting task ``element_id``, which writes ``<element_id>`` and
    ``last``."""
    with steps.engine() as engine:
        [task] = [t for t in engine.instances.get(instance_id).tasks if t.element_id == element_id]
        data = {element_id: True, "last": element_id}
        return engine.tasks.complete(task.id, user="ann", groups=CS, data=data).status


@pytest.mark.parametrize(
    "activation",
    [
        "activationCount &gt;= 2",
        "activationCount + len(activationCounts) &gt;= 4",
        "'approve_1_to_enough' in activationCounts and activationCount &gt;= 2",
    ],
    ids=["count", "per-flow", "per-flow-id"],
)
def test_a_complex_join_fires_when_its_activation_condition_holds_then_absorbs_the_rest(
    steps: Steps, activation: str
) -> None:
    steps.deploy("approvals", two_of_three(activation))
    no_refusal(steps, "approvals")
    with steps.engine() as engine:
        started = engine.instances.start("approvals", business_key="C-1")
    assert approve(steps, started.id, "approve_2") == InstanceStatus.RUNNING
    assert steps.trace == []
    # The second approval in: the gateway fires, ``after`` runs once.
    assert approve(steps, started.id, "approve_1") == InstanceStatus.RUNNING
    assert steps.trace == ["after"]
    with steps.engine() as engine:
        [last] = engine.instances.get(started.id).tasks
        assert last.element_id == "approve_3"
    # The third arrives later and is absorbed: nothing runs again.
    assert approve(steps, started.id, "approve_3") == InstanceStatus.COMPLETED
    assert steps.trace == ["after"]
    with steps.engine() as engine:
        # One set of process variables: the absorbed branch's write is kept too.
        assert engine.instances.get(started.id).data == {
            "approve_1": True,
            "approve_2": True,
            "approve_3": True,
            "last": "approve_3",
        }
        assert history(engine, started.id) == [
            ("instance_started", None),
            ("task_created", "approve_1"),
            ("task_created", "approve_2"),
            ("task_created", "approve_3"),
            ("task_completed", "approve_2"),
            ("task_completed", "approve_1"),
            ("end_event_reached", "end"),
            ("task_completed", "approve_3"),
            ("instance_completed", None),
        ]


def test_a_complex_join_reads_process_variables(steps: Steps) -> None:
    """``activationCount &gt;= needed``: one approval is enough for a small amount."""
    steps.deploy("approvals", two_of_three("activationCount &gt;= needed"))
    with steps.engine() as engine:
        started = engine.instances.start("approvals", business_key="C-2", data={"needed": 1})
    assert approve(steps, started.id, "approve_3") == InstanceStatus.RUNNING
    assert steps.trace == ["after"]
    assert approve(steps, started.id, "approve_1") == InstanceStatus.RUNNING
    assert approve(steps, started.id, "approve_2") == InstanceStatus.COMPLETED
    assert steps.trace == ["after"]


def choose_and_join(activation: str | None) -> str:
    """A complex split (``amount`` decides: ``a`` when over 100, ``b`` when over 1000, the
    default ``finish`` when neither) and a complex join before ``after``."""
    return with_xsi(
        process(
            "routing",
            '<bpmn:startEvent id="start"/>'
            + complex_gateway("route", default="route_to_finish")
            + service("a")
            + service("b")
            + service("finish")
            + complex_gateway("join", activation)
            + service("after")
            + '<bpmn:endEvent id="end"/>'
            + flows("start>route", "a>join", "b>join", "finish>join", "join>after", "after>end")
            + '<bpmn:sequenceFlow id="route_to_a" sourceRef="route" targetRef="a">'
            + condition("amount &gt; 100")
            + "</bpmn:sequenceFlow>"
            + '<bpmn:sequenceFlow id="route_to_b" sourceRef="route" targetRef="b">'
            + condition("amount &gt; 1000")
            + "</bpmn:sequenceFlow>"
            + '<bpmn:sequenceFlow id="route_to_finish" sourceRef="route" targetRef="finish"/>',
        )
    )


@pytest.mark.parametrize(
    ("amount", "ran"),
    [(5000, ["a", "b", "after"]), (500, ["a", "after"]), (5, ["finish", "after"])],
    ids=["both-true", "one-true", "none-true-default"],
)
@pytest.mark.parametrize(
    "activation", [None, "activationCount &gt;= 1"], ids=["inclusive", "first"]
)
def test_a_complex_split_takes_every_true_flow_and_the_join_runs_after_once(
    steps: Steps, amount: int, ran: list[str], activation: str | None
) -> None:
    steps.deploy("routing", choose_and_join(activation))
    no_refusal(steps, "routing")
    with steps.engine() as engine:
        done = engine.instances.start("routing", business_key="R-1", data={"amount": amount})
        assert (done.status, done.failure) == (InstanceStatus.COMPLETED, None)
    assert steps.trace == ran
    with steps.engine() as engine:
        assert history(engine, done.id) == [
            ("instance_started", None),
            ("gateway_taken", "route"),
            ("end_event_reached", "end"),
            ("instance_completed", None),
        ]


def test_an_activation_condition_the_sandbox_refuses_is_an_error_at_validate(
    steps: Steps,
) -> None:
    path = steps.tmp_path / "approvals.bpmn"
    path.write_text(two_of_three("__import__('os').system('id')"))
    with steps.engine() as engine:
        report = engine.definitions.validate(path)
    [error] = [d for d in report.diagnostics if d.rule == "expression-parse"]
    assert (error.element_id, error.severity) == ("enough", "error")
    assert "the activation condition of enough" in error.message


# -- 4. a multi-instance behavior that throws nothing -----------------------------------------


@pytest.mark.parametrize("behavior", ["None", "One", "Complex"])
def test_a_multi_instance_behavior_without_its_event_runs_as_all(
    steps: Steps, behavior: str
) -> None:
    """BPMN's behaviors differ only in the events instances throw; with none named, the
    activity runs as with All: every instance, then one token on."""
    source = process(
        "reviews",
        '<bpmn:startEvent id="start"/>'
        '<bpmn:serviceTask id="a" camunda:delegateExpression="${a}">'
        f'<bpmn:multiInstanceLoopCharacteristics isSequential="true" behavior="{behavior}">'
        "<bpmn:loopCardinality>2</bpmn:loopCardinality>"
        "</bpmn:multiInstanceLoopCharacteristics></bpmn:serviceTask>"
        '<bpmn:userTask id="check" camunda:candidateGroups="cs">'
        f'<bpmn:multiInstanceLoopCharacteristics behavior="{behavior}">'
        "<bpmn:loopCardinality>2</bpmn:loopCardinality>"
        "</bpmn:multiInstanceLoopCharacteristics></bpmn:userTask>"
        + service("after")
        + '<bpmn:endEvent id="end"/>'
        + flows("start>a", "a>check", "check>after", "after>end"),
    )
    steps.deploy("reviews", source)
    no_refusal(steps, "reviews")
    with steps.engine() as engine:
        started = engine.instances.start("reviews", business_key="M-1")
        first, second = started.tasks
    assert steps.trace == ["a", "a"]
    with steps.engine() as engine:
        assert engine.tasks.complete(first.id, user="ann", groups=CS).status == (
            InstanceStatus.RUNNING
        )
    assert steps.trace == ["a", "a"]
    with steps.engine() as engine:
        done = engine.tasks.complete(second.id, user="bob", groups=CS)
        assert (done.status, done.failure) == (InstanceStatus.COMPLETED, None)
        assert history(engine, started.id) == [
            ("instance_started", None),
            ("task_created", "check"),
            ("task_created", "check"),
            ("task_completed", "check"),
            ("task_completed", "check"),
            ("end_event_reached", "end"),
            ("instance_completed", None),
        ]
    assert steps.trace == ["a", "a", "after"]


def test_a_complex_join_in_a_loop_fires_once_per_round(steps: Steps) -> None:
    """The first of two reviews moves on each round; the late one of round 1 is absorbed
    by round 1's firing, never counted for round 2."""
    source = with_xsi(
        process(
            "rounds",
            '<bpmn:startEvent id="start"/><bpmn:exclusiveGateway id="round"/>'
            '<bpmn:parallelGateway id="ask"/>'
            + check("review_1")
            + check("review_2")
            + complex_gateway("first_in", "activationCount &gt;= 1")
            + service("after")
            + '<bpmn:scriptTask id="count"><bpmn:script>rounds = rounds + 1</bpmn:script>'
            "</bpmn:scriptTask>"
            + '<bpmn:exclusiveGateway id="again" default="again_to_end"/>'
            + '<bpmn:endEvent id="end"/>'
            + flows(
                "start>round",
                "round>ask",
                "ask>review_1",
                "ask>review_2",
                "review_1>first_in",
                "review_2>first_in",
                "first_in>after",
                "after>count",
                "count>again",
                "again>end",
            )
            + '<bpmn:sequenceFlow id="again_to_round" sourceRef="again" targetRef="round">'
            + condition("rounds &lt; 2")
            + "</bpmn:sequenceFlow>",
        )
    )
    steps.deploy("rounds", source)
    no_refusal(steps, "rounds")
    with steps.engine() as engine:
        started = engine.instances.start("rounds", business_key="L-1", data={"rounds": 0})
        assert (started.status, started.failure) == (InstanceStatus.RUNNING, None)
        round_1 = {t.element_id: t.id for t in started.tasks}

    def waiting() -> list[str]:
        with steps.engine() as engine:
            return sorted(t.element_id for t in engine.instances.get(started.id).tasks)

    assert waiting() == ["review_1", "review_2"]
    assert approve(steps, started.id, "review_1") == InstanceStatus.RUNNING
    assert steps.trace == ["after"]
    # Round 2 asks again; round 1's second review is still open.
    assert waiting() == ["review_1", "review_2", "review_2"]
    with steps.engine() as engine:
        engine.tasks.complete(round_1["review_2"], user="ann", groups=CS)
    assert steps.trace == ["after"]  # absorbed: round 1 already went on
    assert waiting() == ["review_1", "review_2"]
    assert approve(steps, started.id, "review_2") == InstanceStatus.RUNNING
    assert steps.trace == ["after", "after"]
    assert approve(steps, started.id, "review_1") == InstanceStatus.COMPLETED
    assert steps.trace == ["after", "after"]
    with steps.engine() as engine:
        done = engine.instances.get(started.id)
        assert done.data["rounds"] == 2
        assert [e for e in history(engine, started.id) if e[0] != "task_created"] == [
            ("instance_started", None),
            ("task_completed", "review_1"),
            ("data_changed", "count"),
            ("gateway_taken", "again"),
            ("task_completed", "review_2"),
            ("task_completed", "review_2"),
            ("data_changed", "count"),
            ("gateway_taken", "again"),
            ("end_event_reached", "end"),
            ("task_completed", "review_1"),
            ("instance_completed", None),
        ]


def test_a_complex_join_without_activation_condition_waits_for_every_branch_taken(
    steps: Steps,
) -> None:
    """As an inclusive join: the split took two of three flows, the join waits for both
    (the data each branch wrote is the process's after it)."""
    source = with_xsi(
        process(
            "two_reviews",
            '<bpmn:startEvent id="start"/>'
            + complex_gateway("route")
            + check("review_1")
            + check("review_2")
            + check("review_3")
            + complex_gateway("join")
            + service("after")
            + '<bpmn:endEvent id="end"/>'
            + flows("start>route", "review_1>join", "review_2>join", "review_3>join", "join>after")
            + flows("after>end")
            + "".join(
                f'<bpmn:sequenceFlow id="to_{n}" sourceRef="route" targetRef="review_{n}">'
                + condition(f"amount &gt; {limit}")
                + "</bpmn:sequenceFlow>"
                for n, limit in ((1, 10), (2, 100), (3, 1000))
            ),
        )
    )
    steps.deploy("two_reviews", source)
    with steps.engine() as engine:
        started = engine.instances.start("two_reviews", business_key="J-1", data={"amount": 500})
        assert (started.status, started.failure) == (InstanceStatus.RUNNING, None)
        assert sorted(t.element_id for t in started.tasks) == ["review_1", "review_2"]
    with steps.engine() as engine:
        [task] = [t for t in engine.instances.get(started.id).tasks if t.element_id == "review_2"]
        engine.tasks.complete(task.id, user="ann", groups=CS, data={"second": "ok"})
    assert steps.trace == []
    with steps.engine() as engine:
        [task] = engine.instances.get(started.id).tasks
        done = engine.tasks.complete(task.id, user="bob", groups=CS, data={"first": "ok"})
        assert (done.status, done.data) == (
            InstanceStatus.COMPLETED,
            {"amount": 500, "first": "ok", "second": "ok"},
        )
    assert steps.trace == ["after"]
