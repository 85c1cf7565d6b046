"""BPMN events bankflow refused or warned about before issue 10, on both backends: the
message start of an event sub-process (interrupting or not, a message correlated by hand
or thrown by another instance), link events, and an escalation thrown in a called process
reaching the caller (a boundary event on the call activity, an event sub-process).

As in ``test_bpmn_semantics.py`` (whose helpers these tests reuse), service tasks record
what ran in ``steps.trace``, every step opens a fresh Engine on the stored state, and each
test asserts the exact order of what ran (the trace, and the history where it says more).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from test_bpmn_semantics import ESCALATION, TAIL, Steps, flows, history, process, service

from bankflow import CorrelationError, DefinitionError, InstanceStatus

CS = ["cs"]


@pytest.fixture
def steps(db_url: str, tmp_path: Path) -> Steps:
    return Steps(db_url, tmp_path)


def with_message(source: str) -> str:
    """``source`` with the message ``cancel_requested`` declared."""
    return source.replace(TAIL, '<bpmn:message id="cancel_msg" name="cancel_requested"/>' + TAIL)


def subscriptions(url: str) -> list[tuple[str, str | None, str]]:
    """(message name, business key, element id) of every subscription row."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text(
                    "SELECT message_name, business_key, element_id FROM bf_subscription "
                    "ORDER BY message_name, business_key, element_id"
                )
            )
            return [(r[0], r[1], r[2]) for r in rows]
    finally:
        engine.dispose()


# -- 1. the message start of an event sub-process --------------------------------------------

MESSAGE = '<bpmn:messageEventDefinition messageRef="cancel_msg"/>'


def message_event_sub_process(key: str, *, interrupting: bool, nested: bool = False) -> str:
    """Someone works on the case, then ``finish`` runs; a ``cancel_requested`` message
    starts the event sub-process ``on_cancel`` (it runs ``handle``). ``nested``: all of it
    inside a sub-process followed by ``normal``."""
    flag = "true" if interrupting else "false"
    scope = (
        '<bpmn:startEvent id="scope_start"/>'
        '<bpmn:userTask id="work" camunda:candidateGroups="cs"/>'
        + service("finish")
        + '<bpmn:endEvent id="scope_end"/>'
        + flows("scope_start>work", "work>finish", "finish>scope_end")
        + '<bpmn:subProcess id="on_cancel" triggeredByEvent="true">'
        + f'<bpmn:startEvent id="cancelled" isInterrupting="{flag}">{MESSAGE}</bpmn:startEvent>'
        + service("handle")
        + '<bpmn:endEvent id="handled"/>'
        + flows("cancelled>handle", "handle>handled")
        + "</bpmn:subProcess>"
    )
    if nested:
        scope = (
            f'<bpmn:startEvent id="start"/><bpmn:subProcess id="sub">{scope}</bpmn:subProcess>'
            + service("normal")
            + '<bpmn:endEvent id="end"/>'
            + flows("start>sub", "sub>normal", "normal>end")
        )
    return with_message(process(key, scope))


def start_work(steps: Steps, key: str, business_key: str) -> tuple[str, str]:
    """Start with ``business_key``: the event sub-process waits for its message."""
    with steps.engine() as engine:
        started = engine.instances.start(key, business_key=business_key, data={"amount": 5})
        [work] = started.tasks
        assert work.element_id == "work"
    assert subscriptions(steps.url) == [("cancel_requested", business_key, "cancelled")]
    assert steps.trace == []
    return started.id, work.id


@pytest.mark.parametrize("nested", [False, True], ids=["in-the-process", "in-a-sub-process"])
def test_an_interrupting_message_event_sub_process_cancels_the_work(
    steps: Steps, nested: bool
) -> None:
    key = "cancellable"
    steps.deploy(key, message_event_sub_process(key, interrupting=True, nested=nested))
    with steps.engine() as engine:
        report = engine.definitions.validate(steps.tmp_path / f"{key}.bpmn")
        assert [d for d in report.diagnostics if d.rule == "unsupported"] == []
    instance_id, _ = start_work(steps, key, "C-1")
    with steps.engine() as engine:
        [delivered] = engine.messages.correlate(
            "cancel_requested", business_key="C-1", data={"reason": "customer"}
        )
        assert delivered.id == instance_id
    assert steps.trace == (["handle", "normal"] if nested else ["handle"])
    with steps.engine() as engine:
        done = engine.instances.get(instance_id)
        assert (done.status, done.failure, done.tasks) == (InstanceStatus.COMPLETED, None, ())
        assert done.data == {"amount": 5, "reason": "customer"}
        assert history(engine, instance_id) == [
            ("instance_started", None),
            ("task_created", "work"),
            ("message_received", "cancelled"),
            ("task_cancelled", "work"),
            ("end_event_reached", "handled"),
            *([("end_event_reached", "end")] if nested else []),
            ("instance_completed", None),
        ]
        with pytest.raises(CorrelationError, match="no instance is waiting"):
            engine.messages.correlate("cancel_requested", business_key="C-1")
    assert subscriptions(steps.url) == []
    assert steps.trace == (["handle", "normal"] if nested else ["handle"])


def test_a_non_interrupting_message_event_sub_process_runs_each_time_beside_the_work(
    steps: Steps,
) -> None:
    steps.deploy("watched", message_event_sub_process("watched", interrupting=False))
    instance_id, work = start_work(steps, "watched", "C-2")
    for round_ in (1, 2):
        with steps.engine() as engine:
            [running] = engine.messages.correlate(
                "cancel_requested", business_key="C-2", data={"round": round_}
            )
            assert running.status == InstanceStatus.RUNNING
            assert [t.id for t in running.tasks] == [work]
        assert steps.trace == ["handle"] * round_
        # The event sub-process waits again while its scope runs.
        assert subscriptions(steps.url) == [("cancel_requested", "C-2", "cancelled")]
    with steps.engine() as engine:
        done = engine.tasks.complete(work, user="ann", groups=CS)
        assert (done.status, done.failure) == (InstanceStatus.COMPLETED, None)
        assert history(engine, instance_id) == [
            ("instance_started", None),
            ("task_created", "work"),
            ("message_received", "cancelled"),
            ("end_event_reached", "handled"),
            ("message_received", "cancelled"),
            ("end_event_reached", "handled"),
            ("task_completed", "work"),
            ("end_event_reached", "scope_end"),
            ("instance_completed", None),
        ]
    assert subscriptions(steps.url) == []
    assert steps.trace == ["handle", "handle", "finish"]


@pytest.mark.parametrize("interrupting", [True, False], ids=["interrupting", "non-interrupting"])
def test_work_done_before_the_message_ends_the_wait(steps: Steps, interrupting: bool) -> None:
    steps.deploy("cancellable", message_event_sub_process("cancellable", interrupting=interrupting))
    instance_id, work = start_work(steps, "cancellable", "C-3")
    with steps.engine() as engine:
        done = engine.tasks.complete(work, user="ann", groups=CS)
        assert done.status == InstanceStatus.COMPLETED
    assert subscriptions(steps.url) == []
    with steps.engine() as engine:
        with pytest.raises(CorrelationError, match="no instance is waiting"):
            engine.messages.correlate("cancel_requested", business_key="C-3")
        assert history(engine, instance_id)[-3:] == [
            ("task_completed", "work"),
            ("end_event_reached", "scope_end"),
            ("instance_completed", None),
        ]
    assert steps.trace == ["finish"]


def test_the_message_that_starts_an_instance_does_not_start_its_event_sub_process(
    steps: Steps,
) -> None:
    """A process started by the message its non-interrupting event sub-process also
    catches: the starting message starts the instance only; the next one the event
    sub-process."""
    source = message_event_sub_process("updates", interrupting=False).replace(
        '<bpmn:startEvent id="scope_start"/>',
        f'<bpmn:startEvent id="scope_start">{MESSAGE}</bpmn:startEvent>',
    )
    steps.deploy("updates", source)
    with steps.engine() as engine:
        [started] = engine.messages.correlate(
            "cancel_requested", business_key="C-6", data={"amount": 5}
        )
        [work] = started.tasks
        assert work.element_id == "work"
    assert subscriptions(steps.url) == [("cancel_requested", "C-6", "cancelled")]
    assert steps.trace == []
    with steps.engine() as engine:
        [again] = engine.messages.correlate("cancel_requested", business_key="C-6")
        assert again.id == started.id
    assert steps.trace == ["handle"]
    with steps.engine() as engine:
        done = engine.tasks.complete(work.id, user="ann", groups=CS)
        assert done.status == InstanceStatus.COMPLETED
        assert history(engine, started.id) == [
            ("instance_started", None),
            ("message_received", "scope_start"),
            ("task_created", "work"),
            ("message_received", "cancelled"),
            ("end_event_reached", "handled"),
            ("task_completed", "work"),
            ("end_event_reached", "scope_end"),
            ("instance_completed", None),
        ]
    assert steps.trace == ["handle", "finish"]


CANCEL_DESK = with_message(
    process(
        "desk",
        '<bpmn:startEvent id="desk_start"/>'
        + service("a")
        + f'<bpmn:intermediateThrowEvent id="ask">{MESSAGE}</bpmn:intermediateThrowEvent>'
        + service("b")
        + '<bpmn:endEvent id="desk_end"/>'
        + flows("desk_start>a", "a>ask", "ask>b", "b>desk_end"),
    )
)


def test_a_message_thrown_by_another_instance_starts_the_event_sub_process(
    steps: Steps,
) -> None:
    steps.deploy("cancellable", message_event_sub_process("cancellable", interrupting=True))
    steps.deploy("desk", CANCEL_DESK)
    instance_id, _ = start_work(steps, "cancellable", "C-4")
    with steps.engine() as engine:
        decoy = engine.instances.start("cancellable", business_key="C-5")
        sender = engine.instances.start("desk", business_key="C-4")
        assert sender.status == InstanceStatus.COMPLETED
    assert steps.trace == ["a", "b"]
    with steps.engine() as engine:
        [outcome] = engine.jobs.run_due().outcomes
        assert (outcome.kind, outcome.result, outcome.message) == (
            "message",
            "delivered",
            instance_id,
        )
    assert steps.trace == ["a", "b", "handle"]
    with steps.engine() as engine:
        done = engine.instances.get(instance_id)
        assert (done.status, done.tasks) == (InstanceStatus.COMPLETED, ())
        assert history(engine, instance_id) == [
            ("instance_started", None),
            ("task_created", "work"),
            ("message_received", "cancelled"),
            ("task_cancelled", "work"),
            ("end_event_reached", "handled"),
            ("instance_completed", None),
        ]
        assert engine.instances.get(decoy.id).status == InstanceStatus.RUNNING
    assert subscriptions(steps.url) == [("cancel_requested", "C-5", "cancelled")]


# -- 2. link events --------------------------------------------------------------------------


def link(kind: str, element_id: str, name: str) -> str:
    tag = "intermediateThrowEvent" if kind == "throw" else "intermediateCatchEvent"
    return f'<bpmn:{tag} id="{element_id}"><bpmn:linkEventDefinition name="{name}"/></bpmn:{tag}>'


# The process and its sub-process both use the link name "next": each throw goes on at
# the catch of its own scope. The path waits for a person between the two links.
LINKED = process(
    "linked",
    '<bpmn:startEvent id="start"/>'
    + service("a")
    + link("throw", "to_review", "next")
    + link("catch", "at_review", "next")
    + '<bpmn:userTask id="review" camunda:candidateGroups="cs"/>'
    + '<bpmn:subProcess id="sub"><bpmn:startEvent id="sub_start"/>'
    + service("inner")
    + link("throw", "sub_jump", "next")
    + link("catch", "sub_land", "next")
    + service("before")
    + '<bpmn:endEvent id="sub_end"/>'
    + flows("sub_start>inner", "inner>sub_jump", "sub_land>before", "before>sub_end")
    + "</bpmn:subProcess>"
    + service("b")
    + '<bpmn:endEvent id="end"/>'
    + flows("start>a", "a>to_review", "at_review>review", "review>sub", "sub>b", "b>end"),
)


def test_a_link_throw_event_goes_on_at_the_catch_of_its_scope(steps: Steps) -> None:
    steps.deploy("linked", LINKED)
    with steps.engine() as engine:
        report = engine.definitions.validate(steps.tmp_path / "linked.bpmn")
        assert [d for d in report.diagnostics if d.rule in ("unsupported", "link-event")] == []
        ids = {e.element_id for e in engine.definitions.elements("linked")}
        assert {"to_review", "at_review", "sub_jump", "sub_land"} <= ids
        started = engine.instances.start("linked")
        assert [t.element_id for t in started.tasks] == ["review"]
    assert steps.trace == ["a"]
    with steps.engine() as engine:
        done = engine.tasks.complete(started.tasks[0].id, user="ann", groups=CS)
        assert (done.status, done.failure) == (InstanceStatus.COMPLETED, None)
        assert history(engine, started.id) == [
            ("instance_started", None),
            ("task_created", "review"),
            ("task_completed", "review"),
            ("end_event_reached", "sub_end"),
            ("end_event_reached", "end"),
            ("instance_completed", None),
        ]
    assert steps.trace == ["a", "inner", "before", "b"]


# Two throws lead to one catch: each arriving token passes it.
TWO_THROWS = process(
    "two_throws",
    '<bpmn:startEvent id="start"/><bpmn:parallelGateway id="fork"/>'
    + service("a")
    + service("b")
    + link("throw", "from_a", "join")
    + link("throw", "from_b", "join")
    + link("catch", "joined", "join")
    + service("after")
    + '<bpmn:endEvent id="end"/>'
    + flows("start>fork", "fork>a", "fork>b", "a>from_a", "b>from_b", "joined>after")
    + flows("after>end"),
)


def test_every_link_throw_of_a_name_reaches_its_catch(steps: Steps) -> None:
    steps.deploy("two_throws", TWO_THROWS)
    with steps.engine() as engine:
        started = engine.instances.start("two_throws")
        assert (started.status, started.failure) == (InstanceStatus.COMPLETED, None)
    assert steps.trace == ["a", "b", "after", "after"]


def test_a_link_throw_without_its_catch_is_refused_by_name(steps: Steps) -> None:
    source = LINKED.replace(link("catch", "at_review", "next"), link("catch", "at_review", "x"))
    path = steps.tmp_path / "broken.bpmn"
    path.write_text(source)
    with steps.engine() as engine:
        report = engine.definitions.validate(path)
        [error] = [d for d in report.diagnostics if d.rule == "link-event"]
        assert (error.file, error.element_id) == (str(path), "to_review")
        assert error.line == source[: source.index('id="to_review"')].count("\n") + 1
        with pytest.raises(DefinitionError, match="link 'next'"):
            engine.definitions.deploy(path)
        assert engine.definitions.list() == []


# -- 3. an escalation thrown in a called process ---------------------------------------------


def called(key: str, *, thrower: str) -> str:
    """The called process waits for the message ``prepared``, ``before`` runs, the
    escalation is thrown (an intermediate throw event followed by ``after``, or an
    escalation end event)."""
    if thrower == "throw":
        raising = (
            f'<bpmn:intermediateThrowEvent id="raise">{ESCALATION}</bpmn:intermediateThrowEvent>'
            + service("after")
            + '<bpmn:endEvent id="called_end"/>'
            + flows("raise>after", "after>called_end")
        )
    else:
        raising = f'<bpmn:endEvent id="raise">{ESCALATION}</bpmn:endEvent>'
    return process(
        key,
        '<bpmn:startEvent id="called_start"/>'
        '<bpmn:intermediateCatchEvent id="prepare"><bpmn:messageEventDefinition '
        'messageRef="prepared_msg"/></bpmn:intermediateCatchEvent>'
        + service("before")
        + raising
        + flows("called_start>prepare", "prepare>before", "before>raise"),
    ).replace(TAIL, '<bpmn:message id="prepared_msg" name="prepared"/>' + TAIL)


def caller(key: str, *, catcher: str, interrupting: bool) -> str:
    """Calls ``called`` and then runs ``normal``; an escalation boundary event on the call
    activity (``catcher="boundary"``) or an escalation event sub-process (``"event"``)
    catches the escalation and runs ``handle``."""
    flag = "true" if interrupting else "false"
    body = (
        '<bpmn:startEvent id="start"/><bpmn:callActivity id="call" calledElement="called"/>'
        + service("normal")
        + '<bpmn:endEvent id="end"/>'
        + flows("start>call", "call>normal", "normal>end")
    )
    if catcher == "boundary":
        body += (
            f'<bpmn:boundaryEvent id="escalated" attachedToRef="call" cancelActivity="{flag}">'
            + f"{ESCALATION}</bpmn:boundaryEvent>"
            + service("handle")
            + '<bpmn:endEvent id="handled"/>'
            + flows("escalated>handle", "handle>handled")
        )
    else:
        body += (
            '<bpmn:subProcess id="on_escalation" triggeredByEvent="true">'
            + f'<bpmn:startEvent id="escalated" isInterrupting="{flag}">{ESCALATION}'
            + "</bpmn:startEvent>"
            + service("handle")
            + '<bpmn:endEvent id="handled"/>'
            + flows("escalated>handle", "handle>handled")
            + "</bpmn:subProcess>"
        )
    return process(key, body)


# What ran after the message ``prepared`` arrived. Interrupting: the called process goes no
# further than the throw ("after" never runs) and the caller's normal way out is not taken.
# Non-interrupting: both go on; SpiffWorkflow runs the called process on before the
# caller's catching path, so "handle" comes after what the called process ran next.
ESCALATION_CASES = [
    ("boundary", True, "throw", ["before", "handle"]),
    ("boundary", True, "end", ["before", "handle"]),
    ("boundary", False, "throw", ["before", "after", "normal", "handle"]),
    ("boundary", False, "end", ["before", "normal", "handle"]),
    ("event", True, "throw", ["before", "handle"]),
    ("event", True, "end", ["before", "handle"]),
    ("event", False, "throw", ["before", "after", "handle", "normal"]),
    ("event", False, "end", ["before", "handle", "normal"]),
]


# The end events each case reaches, in order: the called process's escalation end event
# ("raise") or its normal end after the throw event, the handler's and the caller's end.
ESCALATION_ENDS = {
    ("boundary", True, "throw"): ["handled"],
    ("boundary", True, "end"): ["raise", "handled"],
    ("boundary", False, "throw"): ["called_end", "end", "handled"],
    ("boundary", False, "end"): ["raise", "end", "handled"],
    ("event", True, "throw"): ["handled"],
    ("event", True, "end"): ["raise", "handled"],
    ("event", False, "throw"): ["called_end", "handled", "end"],
    ("event", False, "end"): ["raise", "handled", "end"],
}


@pytest.mark.parametrize(
    ("catcher", "interrupting", "thrower", "ran"),
    ESCALATION_CASES,
    ids=[
        f"{c}-{'interrupting' if i else 'non-interrupting'}-{t}" for c, i, t, _ in ESCALATION_CASES
    ],
)
def test_an_escalation_thrown_in_a_called_process_reaches_the_caller(
    steps: Steps, catcher: str, interrupting: bool, thrower: str, ran: list[str]
) -> None:
    steps.deploy("called", called("called", thrower=thrower))
    steps.deploy("caller", caller("caller", catcher=catcher, interrupting=interrupting))
    with steps.engine() as engine:
        started = engine.instances.start("caller", business_key="E-1")
        assert (started.status, started.tasks) == (InstanceStatus.RUNNING, ())
    assert subscriptions(steps.url) == [("prepared", "E-1", "prepare")]
    assert steps.trace == []
    with steps.engine() as engine:
        engine.messages.correlate("prepared", business_key="E-1")
    assert steps.trace == ran
    with steps.engine() as engine:
        done = engine.instances.get(started.id)
        assert (done.status, done.failure, done.tasks) == (InstanceStatus.COMPLETED, None, ())
        assert history(engine, started.id) == [
            ("instance_started", None),
            ("message_received", "prepare"),
            *[("end_event_reached", e) for e in ESCALATION_ENDS[catcher, interrupting, thrower]],
            ("instance_completed", None),
        ]
        assert engine.incidents.list() == []
    assert steps.trace == ran


def escalating_twice(key: str) -> str:
    """Waits for the message ``prepared``, then ``a``, an escalation, ``b``, the same
    escalation again, ``normal``."""
    return process(
        key,
        '<bpmn:startEvent id="thrower_start"/>'
        '<bpmn:intermediateCatchEvent id="prepare"><bpmn:messageEventDefinition '
        'messageRef="prepared_msg"/></bpmn:intermediateCatchEvent>'
        + service("a")
        + f'<bpmn:intermediateThrowEvent id="first">{ESCALATION}</bpmn:intermediateThrowEvent>'
        + service("b")
        + f'<bpmn:intermediateThrowEvent id="second">{ESCALATION}</bpmn:intermediateThrowEvent>'
        + service("normal")
        + '<bpmn:endEvent id="thrower_end"/>'
        + flows("thrower_start>prepare", "prepare>a", "a>first", "first>b", "b>second")
        + flows("second>normal", "normal>thrower_end"),
    ).replace(TAIL, '<bpmn:message id="prepared_msg" name="prepared"/>' + TAIL)


ON_ESCALATION = (
    '<bpmn:subProcess id="on_escalation" triggeredByEvent="true">'
    f'<bpmn:startEvent id="escalated" isInterrupting="false">{ESCALATION}</bpmn:startEvent>'
    + service("handle")
    + '<bpmn:endEvent id="handled"/>'
    + flows("escalated>handle", "handle>handled")
    + "</bpmn:subProcess>"
)


@pytest.mark.parametrize(
    ("called_process", "ran"),
    [
        (False, ["a", "handle", "b", "handle", "normal"]),
        (True, ["a", "b", "normal", "handle", "handle"]),
    ],
    ids=["in-the-process", "from-a-called-process"],
)
def test_a_non_interrupting_escalation_event_sub_process_runs_for_each_escalation(
    steps: Steps, called_process: bool, ran: list[str]
) -> None:
    if called_process:
        steps.deploy("thrower", escalating_twice("thrower"))
        source = process(
            "watcher",
            '<bpmn:startEvent id="start"/><bpmn:callActivity id="call" calledElement="thrower"/>'
            '<bpmn:endEvent id="end"/>' + flows("start>call", "call>end") + ON_ESCALATION,
        )
    else:
        source = escalating_twice("watcher").replace(
            "</bpmn:process>", ON_ESCALATION + "</bpmn:process>"
        )
    steps.deploy("watcher", source)
    with steps.engine() as engine:
        started = engine.instances.start("watcher", business_key="E-2")
    assert steps.trace == []
    with steps.engine() as engine:
        engine.messages.correlate("prepared", business_key="E-2")
    assert steps.trace == ran
    with steps.engine() as engine:
        done = engine.instances.get(started.id)
        assert (done.status, done.failure) == (InstanceStatus.COMPLETED, None)
        # Each escalation's handler ends; the thrower ends before or after them.
        handled = [("end_event_reached", "handled")] * 2
        thrower_end = [("end_event_reached", "thrower_end")]
        assert history(engine, started.id) == [
            ("instance_started", None),
            ("message_received", "prepare"),
            *(
                [*thrower_end, *handled, ("end_event_reached", "end")]
                if called_process
                else [*handled, *thrower_end]
            ),
            ("instance_completed", None),
        ]


def test_a_message_event_sub_process_of_a_called_process_interrupts_it(steps: Steps) -> None:
    """The called process waits for ``prepared``; ``cancel_requested`` starts its event
    sub-process, which ends it, and the caller goes on."""
    called_source = with_message(
        process(
            "called",
            '<bpmn:startEvent id="called_start"/>'
            '<bpmn:intermediateCatchEvent id="prepare"><bpmn:messageEventDefinition '
            'messageRef="prepared_msg"/></bpmn:intermediateCatchEvent>'
            + service("a")
            + '<bpmn:endEvent id="called_end"/>'
            + flows("called_start>prepare", "prepare>a", "a>called_end")
            + '<bpmn:subProcess id="on_cancel" triggeredByEvent="true">'
            + f'<bpmn:startEvent id="cancelled">{MESSAGE}</bpmn:startEvent>'
            + service("handle")
            + '<bpmn:endEvent id="handled"/>'
            + flows("cancelled>handle", "handle>handled")
            + "</bpmn:subProcess>",
        ).replace(TAIL, '<bpmn:message id="prepared_msg" name="prepared"/>' + TAIL)
    )
    steps.deploy("called", called_source)
    steps.deploy(
        "caller",
        process(
            "caller",
            '<bpmn:startEvent id="start"/><bpmn:callActivity id="call" calledElement="called"/>'
            + service("normal")
            + '<bpmn:endEvent id="end"/>'
            + flows("start>call", "call>normal", "normal>end"),
        ),
    )
    with steps.engine() as engine:
        started = engine.instances.start("caller", business_key="C-7")
    assert subscriptions(steps.url) == [
        ("cancel_requested", "C-7", "cancelled"),
        ("prepared", "C-7", "prepare"),
    ]
    with steps.engine() as engine:
        engine.messages.correlate("cancel_requested", business_key="C-7")
    assert steps.trace == ["handle", "normal"]
    with steps.engine() as engine:
        done = engine.instances.get(started.id)
        assert (done.status, done.failure) == (InstanceStatus.COMPLETED, None)
        assert history(engine, started.id) == [
            ("instance_started", None),
            ("message_received", "cancelled"),
            ("end_event_reached", "handled"),
            ("end_event_reached", "end"),
            ("instance_completed", None),
        ]
        with pytest.raises(CorrelationError, match="no instance is waiting"):
            engine.messages.correlate("prepared", business_key="C-7")
    assert subscriptions(steps.url) == []
