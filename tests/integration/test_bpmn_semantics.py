"""BPMN semantics SpiffWorkflow gets subtly wrong, on both backends (issue 10, "no silent
wrong results"): an error nobody catches, error and escalation event sub-processes, an
interrupting escalation boundary event on a sub-process, a timer start event inside an
event sub-process.

Service tasks record what ran in ``trace`` (a handler per element, named by its
``camunda:delegateExpression``), so each test asserts the exact order of what ran. Every
step opens a fresh Engine on the stored state, and time only moves with the test's clock.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bankflow import Engine, FixedClock, InstanceStatus

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="t">
  <bpmn:error id="rejected_error" name="Rejected" errorCode="REJECTED"/>
  <bpmn:escalation id="big_escalation" name="Too big" escalationCode="TOO_BIG"/>
"""
TAIL = "</bpmn:definitions>\n"
ERROR = '<bpmn:errorEventDefinition errorRef="rejected_error"/>'
ESCALATION = '<bpmn:escalationEventDefinition escalationRef="big_escalation"/>'
RECORDERS = ("a", "b", "inner", "handle", "before", "after", "normal", "remind", "finish")


def service(element_id: str) -> str:
    """A service task whose handler appends its id to the test's trace."""
    return f'<bpmn:serviceTask id="{element_id}" camunda:delegateExpression="${{{element_id}}}"/>'


def flows(*pairs: str) -> str:
    """Sequence flows from "source>target" pairs."""
    found = []
    for pair in pairs:
        source, target = pair.split(">")
        found.append(
            f'<bpmn:sequenceFlow id="{source}_to_{target}" sourceRef="{source}" '
            f'targetRef="{target}"/>'
        )
    return "".join(found)


def process(process_id: str, body: str) -> str:
    return f'{HEAD}<bpmn:process id="{process_id}" isExecutable="true">{body}</bpmn:process>{TAIL}'


class Steps:
    """Deploys inline BPMN, then opens a fresh Engine (nothing cached) for every step."""

    def __init__(self, url: str, tmp_path: Path) -> None:
        self.url = url
        self.tmp_path = tmp_path
        self.clock = FixedClock(T0)
        self.trace: list[str] = []

    def deploy(self, key: str, source: str) -> None:
        path = self.tmp_path / f"{key}.bpmn"
        path.write_text(source)
        with self.engine() as engine:
            engine.definitions.deploy(path)

    def engine(self) -> Engine:
        engine = Engine(self.url, migrate=True, clock=self.clock, cache_size=0)
        for name in RECORDERS:
            engine.services.register(name, self._recorder(name))
        return engine

    def _recorder(self, name: str) -> Any:
        def record(data: dict[str, Any]) -> dict[str, Any]:
            self.trace.append(name)
            return {}

        return record


@pytest.fixture
def steps(db_url: str, tmp_path: Path) -> Steps:
    return Steps(db_url, tmp_path)


def history(engine: Engine, instance_id: str) -> list[tuple[str, str | None]]:
    return [(e.type, e.element_id) for e in engine.history.for_instance(instance_id)]


# -- 1. an error nobody catches fails the instance -------------------------------------------

UNCAUGHT_ERROR = process(
    "uncaught_error",
    '<bpmn:startEvent id="start"/>'
    + service("a")
    + f'<bpmn:endEvent id="reject" name="Rejected">{ERROR}</bpmn:endEvent>'
    + service("b")
    + flows("start>a", "a>reject"),
)

UNCAUGHT_IN_SUB_PROCESS = process(
    "uncaught_in_sub_process",
    '<bpmn:startEvent id="start"/><bpmn:subProcess id="sub"><bpmn:startEvent id="sub_start"/>'
    + service("inner")
    + f'<bpmn:endEvent id="sub_reject">{ERROR}</bpmn:endEvent>'
    + flows("sub_start>inner", "inner>sub_reject")
    + "</bpmn:subProcess>"
    + service("b")
    + '<bpmn:endEvent id="end"/>'
    + flows("start>sub", "sub>b", "b>end"),
)


@pytest.mark.parametrize(
    ("key", "source", "thrower", "ran"),
    [
        ("uncaught_error", UNCAUGHT_ERROR, "reject", ["a"]),
        ("uncaught_in_sub_process", UNCAUGHT_IN_SUB_PROCESS, "sub_reject", ["inner"]),
    ],
    ids=["top-level", "sub-process"],
)
def test_an_error_nobody_catches_fails_the_instance(
    steps: Steps, key: str, source: str, thrower: str, ran: list[str]
) -> None:
    steps.deploy(key, source)
    with steps.engine() as engine:
        started = engine.instances.start(key, business_key="E-1")
    assert steps.trace == ran
    with steps.engine() as engine:
        failed = engine.instances.get(started.id)
        assert failed.status == InstanceStatus.FAILED
        assert failed.failure is not None
        assert (failed.failure.element_id, failed.failure.error_type) == (
            thrower,
            "UncaughtBpmnError",
        )
        assert "'REJECTED'" in failed.failure.message
        assert "Rejected" in failed.failure.message
        assert history(engine, started.id) == [
            ("instance_started", None),
            ("end_event_reached", thrower),
            ("instance_failed", thrower),
        ]
        [incident] = engine.incidents.list()
        assert (incident.instance_id, incident.element_id) == (started.id, thrower)
        assert engine.jobs.list(instance_id=started.id) == []
    assert steps.trace == ran  # nothing ran after the error


ERROR_BOUNDARY = process(
    "error_boundary",
    '<bpmn:startEvent id="start"/><bpmn:subProcess id="sub"><bpmn:startEvent id="sub_start"/>'
    + service("inner")
    + f'<bpmn:endEvent id="sub_reject">{ERROR}</bpmn:endEvent>'
    + flows("sub_start>inner", "inner>sub_reject")
    + "</bpmn:subProcess>"
    + f'<bpmn:boundaryEvent id="on_reject" attachedToRef="sub">{ERROR}</bpmn:boundaryEvent>'
    + service("normal")
    + service("handle")
    + '<bpmn:endEvent id="end"/><bpmn:endEvent id="handled"/>'
    + flows("start>sub", "sub>normal", "normal>end", "on_reject>handle", "handle>handled"),
)


def test_an_error_caught_by_a_boundary_event_takes_the_catching_path(steps: Steps) -> None:
    steps.deploy("error_boundary", ERROR_BOUNDARY)
    with steps.engine() as engine:
        started = engine.instances.start("error_boundary")
    with steps.engine() as engine:
        done = engine.instances.get(started.id)
        assert (done.status, done.failure) == (InstanceStatus.COMPLETED, None)
        assert history(engine, started.id) == [
            ("instance_started", None),
            ("end_event_reached", "sub_reject"),
            ("end_event_reached", "handled"),
            ("instance_completed", None),
        ]
        assert engine.incidents.list() == []
    assert steps.trace == ["inner", "handle"]


def event_sub_process(key: str, definition: str, *, interrupting: bool, nested: bool) -> str:
    """Two people work in parallel; when ``prepare`` is done, ``a`` runs and an end event
    throws ``definition``, which the start event of the event sub-process catches (it then
    runs ``handle``). ``nested``: all of it inside a sub-process followed by ``normal``."""
    flag = "true" if interrupting else "false"
    scope = (
        '<bpmn:startEvent id="scope_start"/><bpmn:parallelGateway id="fork"/>'
        '<bpmn:userTask id="work" camunda:candidateGroups="cs"/><bpmn:endEvent id="worked"/>'
        '<bpmn:userTask id="prepare" camunda:candidateGroups="cs"/>'
        + service("a")
        + f'<bpmn:endEvent id="raise">{definition}</bpmn:endEvent>'
        + flows("scope_start>fork", "fork>work", "work>worked", "fork>prepare")
        + flows("prepare>a", "a>raise")
        + '<bpmn:subProcess id="on_event" triggeredByEvent="true">'
        + f'<bpmn:startEvent id="caught" isInterrupting="{flag}">{definition}</bpmn:startEvent>'
        + service("handle")
        + '<bpmn:endEvent id="handled"/>'
        + flows("caught>handle", "handle>handled")
        + "</bpmn:subProcess>"
    )
    if not nested:
        return process(key, scope)
    return process(
        key,
        f'<bpmn:startEvent id="start"/><bpmn:subProcess id="sub">{scope}</bpmn:subProcess>'
        + service("normal")
        + '<bpmn:endEvent id="end"/>'
        + flows("start>sub", "sub>normal", "normal>end"),
    )


def start_and_complete_prepare(steps: Steps, key: str) -> tuple[str, str]:
    """Start, then complete ``prepare``: returns the instance id and the work task id."""
    with steps.engine() as engine:
        started = engine.instances.start(key)
        tasks = {t.element_id: t.id for t in started.tasks}
        assert sorted(tasks) == ["prepare", "work"]  # the event sub-process waits
        assert engine.jobs.list() == []
    assert steps.trace == []
    with steps.engine() as engine:
        engine.tasks.complete(tasks["prepare"], user="ann", groups=["cs"])
    return started.id, tasks["work"]


@pytest.mark.parametrize("nested", [False, True], ids=["in-the-process", "in-a-sub-process"])
def test_an_error_event_sub_process_catches_the_error_and_interrupts(
    steps: Steps, nested: bool
) -> None:
    steps.deploy("on_error", event_sub_process("on_error", ERROR, interrupting=True, nested=nested))
    instance_id, _ = start_and_complete_prepare(steps, "on_error")
    with steps.engine() as engine:
        done = engine.instances.get(instance_id)
        assert (done.status, done.failure, done.tasks) == (InstanceStatus.COMPLETED, None, ())
        events = history(engine, instance_id)
        assert sorted(events[1:3]) == [("task_created", "prepare"), ("task_created", "work")]
        # The error end event is reached, the work it interrupts is cancelled, then the
        # event sub-process ends (and the process, when the scope was a sub-process).
        assert [events[0], *events[3:]] == [
            ("instance_started", None),
            ("task_completed", "prepare"),
            ("end_event_reached", "raise"),
            ("task_cancelled", "work"),
            ("end_event_reached", "handled"),
            *([("end_event_reached", "end")] if nested else []),
            ("instance_completed", None),
        ]
        assert engine.incidents.list() == []
    assert steps.trace == (["a", "handle", "normal"] if nested else ["a", "handle"])


def test_a_non_interrupting_escalation_event_sub_process_runs_beside_the_work(
    steps: Steps,
) -> None:
    source = event_sub_process("on_escalation", ESCALATION, interrupting=False, nested=True)
    steps.deploy("on_escalation", source)
    instance_id, work = start_and_complete_prepare(steps, "on_escalation")
    assert steps.trace == ["a", "handle"]
    with steps.engine() as engine:
        running = engine.instances.get(instance_id)
        assert [t.id for t in running.tasks] == [work]
        done = engine.tasks.complete(work, user="ann", groups=["cs"])
        assert done.status == InstanceStatus.COMPLETED
    assert steps.trace == ["a", "handle", "normal"]


UNCAUGHT_ESCALATION = process(
    "uncaught_escalation",
    '<bpmn:startEvent id="start"/>'
    + service("a")
    + f'<bpmn:intermediateThrowEvent id="escalate">{ESCALATION}</bpmn:intermediateThrowEvent>'
    + service("b")
    + f'<bpmn:endEvent id="escalated">{ESCALATION}</bpmn:endEvent>'
    + flows("start>a", "a>escalate", "escalate>b", "b>escalated"),
)


def test_an_escalation_nobody_catches_is_not_an_error(steps: Steps) -> None:
    steps.deploy("uncaught_escalation", UNCAUGHT_ESCALATION)
    with steps.engine() as engine:
        started = engine.instances.start("uncaught_escalation")
    with steps.engine() as engine:
        done = engine.instances.get(started.id)
        assert (done.status, done.failure) == (InstanceStatus.COMPLETED, None)
        assert history(engine, started.id) == [
            ("instance_started", None),
            ("end_event_reached", "escalated"),
            ("instance_completed", None),
        ]
        assert engine.incidents.list() == []
    assert steps.trace == ["a", "b"]


# -- 2. an interrupting escalation boundary event cancels the sub-process at once -------------


def escalation_in_sub_process(key: str, *, interrupting: bool, thrower: str) -> str:
    """A sub-process with two branches: a person reviews; another prepares, then ``before``
    runs and the escalation is thrown (an intermediate throw event followed by ``after``,
    or an escalation end event). An escalation boundary event on the sub-process catches it
    and leads to ``handle``; the sub-process's normal way out leads to ``normal``."""
    if thrower == "throw":
        raising = (
            f'<bpmn:intermediateThrowEvent id="raise">{ESCALATION}</bpmn:intermediateThrowEvent>'
            + service("after")
            + '<bpmn:endEvent id="after_end"/>'
            + flows("raise>after", "after>after_end")
        )
    else:
        raising = f'<bpmn:endEvent id="raise">{ESCALATION}</bpmn:endEvent>'
    cancel = "true" if interrupting else "false"
    return process(
        key,
        '<bpmn:startEvent id="start"/><bpmn:subProcess id="sub">'
        '<bpmn:startEvent id="sub_start"/><bpmn:parallelGateway id="fork"/>'
        '<bpmn:userTask id="review" camunda:candidateGroups="cs"/>'
        '<bpmn:userTask id="prepare" camunda:candidateGroups="cs"/>'
        + service("before")
        + raising
        + '<bpmn:endEvent id="reviewed"/>'
        + flows(
            "sub_start>fork", "fork>review", "review>reviewed", "fork>prepare", "prepare>before"
        )
        + '<bpmn:sequenceFlow id="to_raise" sourceRef="before" targetRef="raise"/>'
        + "</bpmn:subProcess>"
        + f'<bpmn:boundaryEvent id="escalated" attachedToRef="sub" cancelActivity="{cancel}">'
        + f"{ESCALATION}</bpmn:boundaryEvent>"
        + service("normal")
        + service("handle")
        + '<bpmn:endEvent id="end"/><bpmn:endEvent id="handled"/>'
        + flows("start>sub", "sub>normal", "normal>end", "escalated>handle", "handle>handled"),
    )


def start_and_prepare(steps: Steps, key: str) -> tuple[str, str]:
    """Start, then complete ``prepare``: returns the instance id and the review task id."""
    with steps.engine() as engine:
        started = engine.instances.start(key)
    tasks = {t.element_id: t.id for t in started.tasks}
    assert sorted(tasks) == ["prepare", "review"]
    with steps.engine() as engine:
        engine.tasks.complete(tasks["prepare"], user="ann", groups=["cs"])
    return started.id, tasks["review"]


@pytest.mark.parametrize("thrower", ["throw", "end"])
def test_an_interrupting_escalation_boundary_event_cancels_the_sub_process(
    steps: Steps, thrower: str
) -> None:
    steps.deploy(
        "interrupted", escalation_in_sub_process("interrupted", interrupting=True, thrower=thrower)
    )
    instance_id, _ = start_and_prepare(steps, "interrupted")
    # The branch that threw goes no further ("after" never runs), the review is cancelled,
    # and the boundary path is taken instead of the sub-process's normal way out.
    assert steps.trace == ["before", "handle"]
    with steps.engine() as engine:
        done = engine.instances.get(instance_id)
        assert (done.status, done.failure, done.tasks) == (InstanceStatus.COMPLETED, None, ())
        events = history(engine, instance_id)
        assert sorted(events[1:3]) == [("task_created", "prepare"), ("task_created", "review")]
        assert [events[0], *events[3:]] == [
            ("instance_started", None),
            ("task_completed", "prepare"),
            *([("end_event_reached", "raise")] if thrower == "end" else []),
            ("task_cancelled", "review"),
            ("end_event_reached", "handled"),
            ("instance_completed", None),
        ]
    assert steps.trace == ["before", "handle"]


@pytest.mark.parametrize("thrower", ["throw", "end"])
def test_a_non_interrupting_escalation_boundary_event_lets_the_sub_process_go_on(
    steps: Steps, thrower: str
) -> None:
    steps.deploy(
        "goes_on", escalation_in_sub_process("goes_on", interrupting=False, thrower=thrower)
    )
    instance_id, review = start_and_prepare(steps, "goes_on")
    # The throwing branch and the boundary path are two tokens that both run.
    assert steps.trace[0] == "before"
    assert sorted(steps.trace[1:]) == (["after", "handle"] if thrower == "throw" else ["handle"])
    with steps.engine() as engine:
        running = engine.instances.get(instance_id)
        assert running.status == InstanceStatus.RUNNING
        assert [t.id for t in running.tasks] == [review]
    del steps.trace[:]
    with steps.engine() as engine:
        done = engine.tasks.complete(review, user="ann", groups=["cs"])
        assert done.status == InstanceStatus.COMPLETED
        assert history(engine, instance_id)[-4:] == [
            ("task_completed", "review"),
            ("end_event_reached", "reviewed"),
            ("end_event_reached", "end"),
            ("instance_completed", None),
        ]
    assert steps.trace == ["normal"]


# -- 3. a timer start event inside an event sub-process -------------------------------------


def timer_event_sub_process(key: str, *, interrupting: bool) -> str:
    """Someone works on the case; after an hour the event sub-process ``remind`` runs."""
    flag = "true" if interrupting else "false"
    return process(
        key,
        '<bpmn:startEvent id="start"/><bpmn:userTask id="work" camunda:candidateGroups="cs"/>'
        + service("finish")
        + '<bpmn:endEvent id="end"/>'
        + flows("start>work", "work>finish", "finish>end")
        + '<bpmn:subProcess id="watch" triggeredByEvent="true">'
        + f'<bpmn:startEvent id="late" isInterrupting="{flag}"><bpmn:timerEventDefinition>'
        + "<bpmn:timeDuration>PT1H</bpmn:timeDuration></bpmn:timerEventDefinition>"
        + "</bpmn:startEvent>"
        + service("remind")
        + '<bpmn:endEvent id="reminded"/>'
        + flows("late>remind", "remind>reminded")
        + "</bpmn:subProcess>",
    )


def start_watched(steps: Steps, key: str) -> tuple[str, str]:
    """Start; the event sub-process's timer is a job of this instance, not a start job."""
    with steps.engine() as engine:
        started = engine.instances.start(key)
        [work] = started.tasks
        assert work.element_id == "work"
        assert [(j.kind, j.element_id, j.due_at) for j in engine.jobs.list()] == [
            ("timer", "late", T0 + timedelta(hours=1))
        ]
        [late] = [e for e in engine.definitions.elements(key) if e.element_id == "late"]
        assert late.trigger is None
    steps.clock.set(T0 + timedelta(minutes=59))
    with steps.engine() as engine:
        assert engine.jobs.run_due().outcomes == ()
    return started.id, work.id


@pytest.mark.parametrize("interrupting", [True, False], ids=["interrupting", "non-interrupting"])
def test_deploy_makes_no_start_job_for_a_timer_start_in_an_event_sub_process(
    steps: Steps, interrupting: bool
) -> None:
    steps.deploy("watched", timer_event_sub_process("watched", interrupting=interrupting))
    with steps.engine() as engine:
        assert engine.jobs.list() == []
        # A worker long after finds nothing to start.
        assert engine.jobs.run_due(now=T0 + timedelta(days=3)).outcomes == ()
        assert engine.instances.list() == []


def test_an_interrupting_timer_event_sub_process_cancels_the_work(steps: Steps) -> None:
    steps.deploy("watched", timer_event_sub_process("watched", interrupting=True))
    instance_id, _ = start_watched(steps, "watched")
    steps.clock.set(T0 + timedelta(hours=1))
    with steps.engine() as engine:
        run = engine.jobs.run_due()
        assert [(o.result, o.kind, o.element_id) for o in run.outcomes] == [
            ("fired", "timer", "late")
        ]
    with steps.engine() as engine:
        done = engine.instances.get(instance_id)
        assert (done.status, done.failure, done.tasks) == (InstanceStatus.COMPLETED, None, ())
        assert history(engine, instance_id) == [
            ("instance_started", None),
            ("task_created", "work"),
            ("timer_fired", "late"),
            ("task_cancelled", "work"),
            ("end_event_reached", "reminded"),
            ("instance_completed", None),
        ]
        assert [i.id for i in engine.instances.list()] == [instance_id]
        assert engine.jobs.list() == []
    assert steps.trace == ["remind"]


def test_a_non_interrupting_timer_event_sub_process_runs_beside_the_work(steps: Steps) -> None:
    steps.deploy("watched", timer_event_sub_process("watched", interrupting=False))
    instance_id, work = start_watched(steps, "watched")
    steps.clock.set(T0 + timedelta(hours=1))
    with steps.engine() as engine:
        run = engine.jobs.run_due()
        assert [(o.result, o.kind, o.element_id) for o in run.outcomes] == [
            ("fired", "timer", "late")
        ]
    assert steps.trace == ["remind"]
    with steps.engine() as engine:
        running = engine.instances.get(instance_id)
        assert [t.id for t in running.tasks] == [work]
        done = engine.tasks.complete(work, user="ann", groups=["cs"])
        assert done.status == InstanceStatus.COMPLETED
        assert history(engine, instance_id) == [
            ("instance_started", None),
            ("task_created", "work"),
            ("timer_fired", "late"),
            ("end_event_reached", "reminded"),
            ("task_completed", "work"),
            ("end_event_reached", "end"),
            ("instance_completed", None),
        ]
        assert [i.id for i in engine.instances.list()] == [instance_id]
    assert steps.trace == ["remind", "finish"]


@pytest.mark.parametrize("interrupting", [True, False], ids=["interrupting", "non-interrupting"])
def test_work_done_before_the_timer_ends_the_event_sub_process_wait(
    steps: Steps, interrupting: bool
) -> None:
    steps.deploy("watched", timer_event_sub_process("watched", interrupting=interrupting))
    instance_id, work = start_watched(steps, "watched")
    with steps.engine() as engine:
        done = engine.tasks.complete(work, user="ann", groups=["cs"])
        assert done.status == InstanceStatus.COMPLETED
        assert engine.jobs.list() == []
    with steps.engine() as engine:
        assert engine.jobs.run_due(now=T0 + timedelta(days=1)).outcomes == ()
        assert history(engine, instance_id)[-3:] == [
            ("task_completed", "work"),
            ("end_event_reached", "end"),
            ("instance_completed", None),
        ]
    assert steps.trace == ["finish"]


def timer_started_and_watched(key: str) -> str:
    """A process started by its own timer start event at 10:00, with the timer event
    sub-process of ``timer_event_sub_process``."""
    watched = timer_event_sub_process(key, interrupting=True)
    return watched.replace(
        '<bpmn:startEvent id="start"/>',
        '<bpmn:startEvent id="start"><bpmn:timerEventDefinition>'
        "<bpmn:timeDate>2026-12-01T10:00:00Z</bpmn:timeDate></bpmn:timerEventDefinition>"
        "</bpmn:startEvent>",
    )


def test_the_process_timer_start_does_not_fire_the_event_sub_process_timer(steps: Steps) -> None:
    steps.deploy("timed", timer_started_and_watched("timed"))
    with steps.engine() as engine:
        assert [(j.kind, j.element_id) for j in engine.jobs.list()] == [("start_timer", "start")]
    steps.clock.set(T0 + timedelta(hours=1))
    with steps.engine() as engine:
        run = engine.jobs.run_due()
        assert [(o.result, o.kind, o.element_id) for o in run.outcomes] == [
            ("started", "start_timer", "start")
        ]
    with steps.engine() as engine:
        [listed] = engine.instances.list()
        started = engine.instances.get(listed.id)
        assert [t.element_id for t in started.tasks] == ["work"]
        assert history(engine, started.id) == [("instance_started", None), ("task_created", "work")]
        # The event sub-process's timer runs from the instance's start, an hour later.
        assert [(j.kind, j.element_id, j.due_at) for j in engine.jobs.list()] == [
            ("timer", "late", T0 + timedelta(hours=2))
        ]
    assert steps.trace == []


def test_a_timer_started_process_started_by_hand_begins_at_once(steps: Steps) -> None:
    steps.deploy("timed", timer_started_and_watched("timed"))
    with steps.engine() as engine:
        started = engine.instances.start("timed")
        assert [t.element_id for t in started.tasks] == ["work"]
        assert [
            (j.kind, j.element_id, j.due_at) for j in engine.jobs.list(instance_id=started.id)
        ] == [("timer", "late", T0 + timedelta(hours=1))]
    assert steps.trace == []


SIGNAL_EVENT_SUBPROCESS = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="t">
  <bpmn:signal id="stop_sig" name="stop"/>
  <bpmn:process id="sig_esp" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="split"/>
    <bpmn:parallelGateway id="split"/>
    <bpmn:sequenceFlow id="f2" sourceRef="split" targetRef="work"/>
    <bpmn:userTask id="work" name="Work" camunda:candidateGroups="ops"/>
    <bpmn:sequenceFlow id="f3" sourceRef="work" targetRef="end"/>
    <bpmn:endEvent id="end"/>
    <bpmn:sequenceFlow id="f4" sourceRef="split" targetRef="review"/>
    <bpmn:userTask id="review" name="Review" camunda:candidateGroups="ops"/>
    <bpmn:sequenceFlow id="f5" sourceRef="review" targetRef="throw"/>
    <bpmn:intermediateThrowEvent id="throw">
      <bpmn:signalEventDefinition signalRef="stop_sig"/>
    </bpmn:intermediateThrowEvent>
    <bpmn:sequenceFlow id="f6" sourceRef="throw" targetRef="end2"/>
    <bpmn:endEvent id="end2"/>
    <bpmn:subProcess id="esp" triggeredByEvent="true">
      <bpmn:startEvent id="esp_start" isInterrupting="{interrupting}">
        <bpmn:signalEventDefinition signalRef="stop_sig"/>
      </bpmn:startEvent>
      <bpmn:sequenceFlow id="e1" sourceRef="esp_start" targetRef="handle"/>
      <bpmn:userTask id="handle" name="Handle" camunda:candidateGroups="ops"/>
      <bpmn:sequenceFlow id="e2" sourceRef="handle" targetRef="esp_end"/>
      <bpmn:endEvent id="esp_end"/>
    </bpmn:subProcess>
  </bpmn:process>
</bpmn:definitions>
"""


@pytest.mark.parametrize(
    ("interrupting", "left"), [("true", ["handle"]), ("false", ["handle", "work"])]
)
def test_a_signal_event_sub_process_interrupts_only_when_it_says_so(
    db_url: str, tmp_path: Path, interrupting: str, left: list[str]
) -> None:
    """An interrupting signal start ran its handler beside the work it must cancel."""
    path = tmp_path / "sig_esp.bpmn"
    path.write_text(SIGNAL_EVENT_SUBPROCESS.format(interrupting=interrupting))
    with Engine(db_url, migrate=True) as engine:
        engine.definitions.deploy(path)
        instance = engine.instances.start("sig_esp")
    with Engine(db_url, cache_size=0) as engine:
        [review] = [t for t in instance.tasks if t.element_id == "review"]
        after = engine.tasks.complete(review.id, user="u", groups=["ops"], data={})
    assert after.status == InstanceStatus.RUNNING
    assert sorted(t.element_id for t in after.tasks) == left
