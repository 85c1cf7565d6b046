"""Signals on both backends (issue 10): ``engine.signals.broadcast`` reaches every instance
waiting for the signal (intermediate catch events, signal boundary events interrupting and
not, signal-start event sub-processes interrupting and not) and starts every process with
a signal start event; a signal an instance throws (intermediate throw event, end event)
travels to the others as ``signal`` jobs run by ``engine.jobs.run_due()``.

Script tasks append their id to the instance's ``trace`` variable, so each test asserts
the exact order of what ran, and the history events in the order they were written. Every
step opens a fresh Engine on the stored state (no cache).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from bankflow import Engine, FixedClock, InstanceStatus, InvalidData
from bankflow.runtime import Signals

HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="t">
  <bpmn:signal id="sig_rates" name="rates_changed"/>
  <bpmn:signal id="sig_halt" name="halt"/>
  <bpmn:signal id="sig_remind" name="remind"/>
"""
TAIL = "</bpmn:definitions>\n"
TABLES = ("bf_instance", "bf_task", "bf_event", "bf_job", "bf_subscription")


def signal(ref: str) -> str:
    return f'<bpmn:signalEventDefinition signalRef="{ref}"/>'


def script(element_id: str) -> str:
    """A script task that appends its id to ``trace``."""
    return (
        f'<bpmn:scriptTask id="{element_id}" name="{element_id}" scriptFormat="python">'
        f'<bpmn:script>trace = trace + ["{element_id}"]</bpmn:script></bpmn:scriptTask>'
    )


def user(element_id: str) -> str:
    return f'<bpmn:userTask id="{element_id}" name="{element_id}" camunda:candidateGroups="ops"/>'


def service(element_id: str) -> str:
    """A service task whose handler appends its id to the test's trace (parallel
    branches each have their own copy of the data, so a variable cannot show their
    order)."""
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


# Waits at an intermediate catch event for "rates_changed", then asks for a review.
WAITER = process(
    "waiter",
    '<bpmn:startEvent id="start"/>'
    + script("before")
    + f'<bpmn:intermediateCatchEvent id="rates">{signal("sig_rates")}'
    + "</bpmn:intermediateCatchEvent>"
    + script("after")
    + user("review")
    + '<bpmn:endEvent id="end"/>'
    + flows("start>before", "before>rates", "rates>after", "after>review", "review>end"),
)

# Waits for "halt" only: never reached by "rates_changed".
BYSTANDER = process(
    "bystander",
    '<bpmn:startEvent id="start"/>'
    + f'<bpmn:intermediateCatchEvent id="halted">{signal("sig_halt")}'
    + '</bpmn:intermediateCatchEvent><bpmn:endEvent id="end"/>'
    + flows("start>halted", "halted>end"),
)

# A signal start event: every "rates_changed" starts one.
REPRICER = process(
    "repricer",
    f'<bpmn:startEvent id="rates_in">{signal("sig_rates")}</bpmn:startEvent>'
    + '<bpmn:scriptTask id="recompute" name="recompute" scriptFormat="python">'
    + '<bpmn:script>trace = ["recompute"]</bpmn:script></bpmn:scriptTask>'
    + '<bpmn:endEvent id="end"/>'
    + flows("rates_in>recompute", "recompute>end"),
)

# A loan review with a signal boundary event of each kind on its user task.
REVIEW = process(
    "review",
    '<bpmn:startEvent id="start"/>'
    + user("work")
    + '<bpmn:endEvent id="done"/>'
    + f'<bpmn:boundaryEvent id="halted" attachedToRef="work">{signal("sig_halt")}'
    + "</bpmn:boundaryEvent>"
    + service("stopped")
    + '<bpmn:endEvent id="stopped_end"/>'
    + '<bpmn:boundaryEvent id="reminded" attachedToRef="work" cancelActivity="false">'
    + f"{signal('sig_remind')}</bpmn:boundaryEvent>"
    + service("remind")
    + '<bpmn:endEvent id="remind_end"/>'
    + flows(
        "start>work",
        "work>done",
        "halted>stopped",
        "stopped>stopped_end",
        "reminded>remind",
        "remind>remind_end",
    ),
)


def guarded(interrupting: str) -> str:
    """Work in progress, with an event sub-process started by "halt"."""
    return process(
        "guarded",
        '<bpmn:startEvent id="start"/>'
        + user("work")
        + service("worked")
        + '<bpmn:endEvent id="end"/>'
        + flows("start>work", "work>worked", "worked>end")
        + '<bpmn:subProcess id="on_halt" triggeredByEvent="true">'
        + f'<bpmn:startEvent id="halt_in" isInterrupting="{interrupting}">{signal("sig_halt")}'
        + "</bpmn:startEvent>"
        + service("handle")
        + '<bpmn:endEvent id="handled"/>'
        + flows("halt_in>handle", "handle>handled")
        + "</bpmn:subProcess>",
    )


def thrower(kind: str) -> str:
    """Throws "rates_changed" from an intermediate throw event or an end event."""
    if kind == "intermediate":
        body = (
            f'<bpmn:intermediateThrowEvent id="publish">{signal("sig_rates")}'
            + "</bpmn:intermediateThrowEvent>"
            + script("published")
            + '<bpmn:endEvent id="end"/>'
            + flows("start>announce", "announce>publish", "publish>published", "published>end")
        )
    else:
        body = f'<bpmn:endEvent id="publish">{signal("sig_rates")}</bpmn:endEvent>' + flows(
            "start>announce", "announce>publish"
        )
    return process("thrower", '<bpmn:startEvent id="start"/>' + script("announce") + body)


# Throws "rates_changed" from a signal end event on one branch and catches it on the other.
SELF_SIGNAL = process(
    "self_signal",
    '<bpmn:startEvent id="start"/><bpmn:parallelGateway id="split"/>'
    + f'<bpmn:intermediateCatchEvent id="rates">{signal("sig_rates")}'
    + "</bpmn:intermediateCatchEvent>"
    + service("caught")
    + '<bpmn:endEvent id="end"/>'
    + service("throwing")
    + f'<bpmn:endEvent id="publish">{signal("sig_rates")}</bpmn:endEvent>'
    + flows(
        "start>split",
        "split>rates",
        "rates>caught",
        "caught>end",
        "split>throwing",
        "throwing>publish",
    ),
)


def deploy(url: str, tmp_path: Path, **files: str) -> None:
    folder = tmp_path / "bpmn"
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / f"{name}.bpmn").write_text(text)
    with Engine(url, migrate=True) as engine:
        engine.definitions.deploy(folder)


def fresh(url: str) -> Engine:
    return Engine(url, cache_size=0)


def recording(engine: Engine, trace: list[str], *names: str) -> Engine:
    """``engine`` with a handler per name that appends the name to ``trace``."""
    for name in names:
        engine.services.register(name, lambda _data, name=name: trace.append(name))
    return engine


def history(url: str, instance_id: str) -> list[tuple[str, str | None, str | None]]:
    with fresh(url) as engine:
        return [(e.type, e.element_id, e.actor) for e in engine.history.for_instance(instance_id)]


def rows(url: str, query: str) -> list[tuple[object, ...]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return [tuple(r) for r in connection.execute(sa.text(query))]
    finally:
        engine.dispose()


def table_counts(url: str) -> dict[str, int]:
    return {t: rows(url, f"SELECT count(*) FROM {t}")[0][0] for t in TABLES}  # type: ignore[misc]


def signal_subscriptions(url: str) -> list[tuple[object, ...]]:
    return rows(
        url,
        "SELECT message_name, element_id, instance_id FROM bf_subscription "
        "WHERE kind = 'signal' ORDER BY message_name, element_id, instance_id",
    )


def start(url: str, key: str) -> str:
    with fresh(url) as engine:
        return engine.instances.start(key, data={"trace": []}).id


# -- broadcast: catch events in other instances, signal starts -------------------------------


def test_broadcast_reaches_every_waiting_instance_and_starts_signal_processes(
    db_url: str, tmp_path: Path
) -> None:
    deploy(db_url, tmp_path, waiter=WAITER, bystander=BYSTANDER, repricer=REPRICER)
    first, second, bystander = start(db_url, "waiter"), start(db_url, "waiter"), None
    with fresh(db_url) as engine:
        bystander = engine.instances.start("bystander").id
    # Waiting is in the index: broadcast finds the two waiters without opening anyone.
    assert signal_subscriptions(db_url) == sorted(
        [
            ("halt", "halted", bystander),
            ("rates_changed", "rates", first),
            ("rates_changed", "rates", second),
        ]
    )
    with fresh(db_url) as engine:
        result = engine.signals.broadcast("rates_changed", data={"rate": 4.5}, user="treasury")
    assert result.name == "rates_changed"
    assert [i.id for i in result.reached] == [first, second]
    assert [i.process_key for i in result.started] == ["repricer"]
    started = result.started[0]
    assert started.status == InstanceStatus.COMPLETED
    assert started.data == {"rate": 4.5, "trace": ["recompute"]}
    with fresh(db_url) as engine:
        for instance_id in (first, second):
            instance = engine.instances.get(instance_id)
            assert instance.data["trace"] == ["before", "after"]
            assert instance.data["rate"] == 4.5
            assert [t.element_id for t in instance.tasks] == ["review"]
        assert engine.instances.get(bystander).status == InstanceStatus.RUNNING
    for instance_id in (first, second):
        assert history(db_url, instance_id) == [
            ("instance_started", None, None),
            ("data_changed", "before", None),
            ("signal_received", "rates", "treasury"),
            ("data_changed", "after", None),
            ("task_created", "review", None),
        ]
    assert history(db_url, started.id) == [
        ("instance_started", None, "treasury"),
        ("signal_received", None, "treasury"),
        ("data_changed", "recompute", None),
        ("end_event_reached", "end", None),
        ("instance_completed", None, None),
    ]
    assert history(db_url, bystander) == [("instance_started", None, None)]
    assert signal_subscriptions(db_url) == [("halt", "halted", bystander)]
    # Once caught, a second broadcast reaches nobody waiting and starts a new repricer.
    with fresh(db_url) as engine:
        again = engine.signals.broadcast("rates_changed")
    assert again.reached == ()
    assert [i.process_key for i in again.started] == ["repricer"]


def test_broadcast_to_nobody_changes_nothing(db_url: str, tmp_path: Path) -> None:
    deploy(db_url, tmp_path, waiter=WAITER)
    waiting = start(db_url, "waiter")
    before = table_counts(db_url)
    with fresh(db_url) as engine:
        result = engine.signals.broadcast("halt", data={"why": "audit"})
    assert (result.name, result.reached, result.started) == ("halt", (), ())
    assert table_counts(db_url) == before
    assert history(db_url, waiting) == [
        ("instance_started", None, None),
        ("data_changed", "before", None),
    ]


@pytest.mark.parametrize(
    ("name", "data", "user"),
    [("", None, None), ("a\x00b", None, None), ("ok", {"x": float("nan")}, None), ("ok", None, "")],
)
def test_broadcast_checks_its_inputs(
    engine: Engine, name: str, data: dict[str, object] | None, user: str | None
) -> None:
    with pytest.raises(InvalidData):
        engine.signals.broadcast(name, data=data, user=user)


# -- boundary events -----------------------------------------------------------------------


def test_signal_boundary_events_interrupting_and_not(db_url: str, tmp_path: Path) -> None:
    trace: list[str] = []
    deploy(db_url, tmp_path, review=REVIEW)
    instance_id = start(db_url, "review")
    assert signal_subscriptions(db_url) == [
        ("halt", "halted", instance_id),
        ("remind", "reminded", instance_id),
    ]
    with recording(fresh(db_url), trace, "remind", "stopped") as engine:
        result = engine.signals.broadcast("remind")
    assert [i.id for i in result.reached] == [instance_id]
    assert trace == ["remind"]
    with fresh(db_url) as engine:
        reminded = engine.instances.get(instance_id)
    assert reminded.status == InstanceStatus.RUNNING
    assert [t.element_id for t in reminded.tasks] == ["work"]
    # A non-interrupting boundary event waits again while its activity runs (as in
    # Camunda): a second "remind" reminds again.
    assert signal_subscriptions(db_url) == [
        ("halt", "halted", instance_id),
        ("remind", "reminded", instance_id),
    ]
    with recording(fresh(db_url), trace, "remind", "stopped") as engine:
        assert [i.id for i in engine.signals.broadcast("remind").reached] == [instance_id]
    assert trace == ["remind", "remind"]
    with recording(fresh(db_url), trace, "remind", "stopped") as engine:
        result = engine.signals.broadcast("halt", user="ops-lead")
    [halted] = result.reached
    assert halted.status == InstanceStatus.COMPLETED
    assert trace == ["remind", "remind", "stopped"]
    assert halted.tasks == ()
    assert history(db_url, instance_id) == [
        ("instance_started", None, None),
        ("task_created", "work", None),
        ("signal_received", "reminded", None),
        ("end_event_reached", "remind_end", None),
        ("signal_received", "reminded", None),
        ("end_event_reached", "remind_end", None),
        ("signal_received", "halted", "ops-lead"),
        ("task_cancelled", "work", "ops-lead"),
        ("end_event_reached", "stopped_end", None),
        ("instance_completed", None, None),
    ]
    assert signal_subscriptions(db_url) == []


# -- event sub-processes -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("interrupting", "trace", "after"),
    [
        ("true", ["handle"], []),
        ("false", ["handle", "worked"], ["work"]),
    ],
)
def test_signal_event_sub_process_from_another_instance(
    db_url: str, tmp_path: Path, interrupting: str, trace: list[str], after: list[str]
) -> None:
    ran: list[str] = []
    deploy(db_url, tmp_path, guarded=guarded(interrupting))
    instance_id = start(db_url, "guarded")
    assert signal_subscriptions(db_url) == [("halt", "halt_in", instance_id)]
    with recording(fresh(db_url), ran, "handle", "worked") as engine:
        [reached] = engine.signals.broadcast("halt", data={"reason": "fraud"}).reached
    assert ran == ["handle"]
    assert [t.element_id for t in reached.tasks] == after
    if after:  # non-interrupting: the work goes on and finishes the instance
        with recording(fresh(db_url), ran, "handle", "worked") as engine:
            [work] = reached.tasks
            reached = engine.tasks.complete(work.id, user="u", groups=["ops"], data={})
    assert reached.status == InstanceStatus.COMPLETED
    assert ran == trace
    events = [e[:2] for e in history(db_url, instance_id)]
    if after:
        assert events == [
            ("instance_started", None),
            ("task_created", "work"),
            ("signal_received", "halt_in"),
            ("end_event_reached", "handled"),
            ("task_completed", "work"),
            ("end_event_reached", "end"),
            ("instance_completed", None),
        ]
    else:
        assert events == [
            ("instance_started", None),
            ("task_created", "work"),
            ("signal_received", "halt_in"),
            ("task_cancelled", "work"),
            ("end_event_reached", "handled"),
            ("instance_completed", None),
        ]


def test_an_interrupting_signal_event_sub_process_starts_once(db_url: str, tmp_path: Path) -> None:
    """Once started it replaced the process's work: a second signal finds nobody waiting
    (it used to reach the instance again, recorded as received, and do nothing)."""
    handled_by_hand = guarded("true").replace(service("handle"), user("handle"))
    deploy(db_url, tmp_path, guarded=handled_by_hand)
    instance_id = start(db_url, "guarded")
    with fresh(db_url) as engine:
        [reached] = engine.signals.broadcast("halt").reached
    assert [t.element_id for t in reached.tasks] == ["handle"]
    assert signal_subscriptions(db_url) == []
    with fresh(db_url) as engine:
        assert engine.signals.broadcast("halt").reached == ()
        [handle] = engine.instances.get(instance_id).tasks
        done = engine.tasks.complete(handle.id, user="u", groups=["ops"])
    assert done.status == InstanceStatus.COMPLETED, done.failure
    assert [e[:2] for e in history(db_url, instance_id)] == [
        ("instance_started", None),
        ("task_created", "work"),
        ("signal_received", "halt_in"),
        ("task_cancelled", "work"),
        ("task_created", "handle"),
        ("task_completed", "handle"),
        ("end_event_reached", "handled"),
        ("instance_completed", None),
    ]


# A case with a reminder event sub-process inside its sub-process (non-interrupting).
NESTED = process(
    "nested",
    '<bpmn:startEvent id="start"/><bpmn:subProcess id="case"><bpmn:startEvent id="c_start"/>'
    + user("work")
    + '<bpmn:endEvent id="c_end"/>'
    + flows("c_start>work", "work>c_end")
    + '<bpmn:subProcess id="on_remind" triggeredByEvent="true">'
    + f'<bpmn:startEvent id="remind_in" isInterrupting="false">{signal("sig_remind")}'
    + "</bpmn:startEvent>"
    + service("remind")
    + '<bpmn:endEvent id="reminded"/>'
    + flows("remind_in>remind", "remind>reminded")
    + "</bpmn:subProcess></bpmn:subProcess>"
    + service("closed")
    + '<bpmn:endEvent id="end"/>'
    + flows("start>case", "case>closed", "closed>end"),
)


def test_a_signal_event_sub_process_inside_a_sub_process(db_url: str, tmp_path: Path) -> None:
    """Waits while its sub-process runs and starts on every signal (it never started:
    SpiffWorkflow only started the event sub-processes of the process itself)."""
    ran: list[str] = []
    deploy(db_url, tmp_path, nested=NESTED)
    instance_id = start(db_url, "nested")
    for _ in range(2):
        assert signal_subscriptions(db_url) == [("remind", "remind_in", instance_id)]
        with recording(fresh(db_url), ran, "remind", "closed") as engine:
            [reached] = engine.signals.broadcast("remind").reached
        assert [t.element_id for t in reached.tasks] == ["work"]
    assert ran == ["remind", "remind"]
    with recording(fresh(db_url), ran, "remind", "closed") as engine:
        [work] = reached.tasks
        done = engine.tasks.complete(work.id, user="u", groups=["ops"])
    assert done.status == InstanceStatus.COMPLETED
    assert ran == ["remind", "remind", "closed"]
    assert signal_subscriptions(db_url) == []
    assert [e[:2] for e in history(db_url, instance_id)] == [
        ("instance_started", None),
        ("task_created", "work"),
        ("signal_received", "remind_in"),
        ("end_event_reached", "reminded"),
        ("signal_received", "remind_in"),
        ("end_event_reached", "reminded"),
        ("task_completed", "work"),
        ("end_event_reached", "c_end"),
        ("end_event_reached", "end"),
        ("instance_completed", None),
    ]


# Started by "halt"; its own event sub-process also listens for "halt".
HALTED = process(
    "halted_case",
    f'<bpmn:startEvent id="halt_start">{signal("sig_halt")}</bpmn:startEvent>'
    + user("work")
    + '<bpmn:endEvent id="end"/>'
    + flows("halt_start>work", "work>end")
    + '<bpmn:subProcess id="on_halt" triggeredByEvent="true">'
    + f'<bpmn:startEvent id="halt_again" isInterrupting="false">{signal("sig_halt")}'
    + "</bpmn:startEvent>"
    + service("handle")
    + '<bpmn:endEvent id="handled"/>'
    + flows("halt_again>handle", "handle>handled")
    + "</bpmn:subProcess>",
)


def test_the_signal_that_starts_an_instance_starts_only_its_start_event(
    db_url: str, tmp_path: Path
) -> None:
    """As for messages (and Camunda): the new instance's event sub-process waits for the
    next signal."""
    ran: list[str] = []
    deploy(db_url, tmp_path, halted=HALTED)
    with recording(fresh(db_url), ran, "handle") as engine:
        [first] = engine.signals.broadcast("halt").started
    assert ran == []
    assert [t.element_id for t in first.tasks] == ["work"]
    assert signal_subscriptions(db_url) == [("halt", "halt_again", first.id)]
    with recording(fresh(db_url), ran, "handle") as engine:
        result = engine.signals.broadcast("halt")
    assert [i.id for i in result.reached] == [first.id]
    assert ran == ["handle"]
    [second] = result.started
    assert [e[:2] for e in history(db_url, first.id)] == [
        ("instance_started", None),
        ("signal_received", None),
        ("task_created", "work"),
        ("signal_received", "halt_again"),
        ("end_event_reached", "handled"),
    ]
    assert [e[:2] for e in history(db_url, second.id)][:2] == [
        ("instance_started", None),
        ("signal_received", None),
    ]


# Waits for "halt" or 48 hours, whichever comes first.
RACE = process(
    "race",
    '<bpmn:startEvent id="start"/><bpmn:eventBasedGateway id="first"/>'
    + f'<bpmn:intermediateCatchEvent id="halted">{signal("sig_halt")}'
    + "</bpmn:intermediateCatchEvent>"
    + '<bpmn:intermediateCatchEvent id="timeout"><bpmn:timerEventDefinition>'
    + "<bpmn:timeDuration>PT48H</bpmn:timeDuration></bpmn:timerEventDefinition>"
    + "</bpmn:intermediateCatchEvent>"
    + script("stop")
    + script("expire")
    + '<bpmn:endEvent id="end"/><bpmn:endEvent id="end2"/>'
    + flows(
        "start>first",
        "first>halted",
        "first>timeout",
        "halted>stop",
        "stop>end",
        "timeout>expire",
        "expire>end2",
    ),
)


def test_a_signal_after_an_event_based_gateway_wins_the_race(db_url: str, tmp_path: Path) -> None:
    deploy(db_url, tmp_path, race=RACE)
    instance_id = start(db_url, "race")
    assert signal_subscriptions(db_url) == [("halt", "halted", instance_id)]
    with fresh(db_url) as engine:
        assert [(j.kind, j.element_id) for j in engine.jobs.list()] == [("timer", "timeout")]
        [reached] = engine.signals.broadcast("halt", data={"by": "ops"}).reached
    assert reached.status == InstanceStatus.COMPLETED
    assert (reached.data["trace"], reached.data["by"]) == (["stop"], "ops")
    assert signal_subscriptions(db_url) == []
    with fresh(db_url) as engine:
        assert engine.jobs.list() == []
    assert [e[:2] for e in history(db_url, instance_id)] == [
        ("instance_started", None),
        ("signal_received", "halted"),
        ("gateway_taken", "first"),
        ("data_changed", "stop"),
        ("end_event_reached", "end"),
        ("instance_completed", None),
    ]


# -- thrown by an instance -----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["intermediate", "end"])
def test_thrown_signal_reaches_other_instances_and_starts_processes(
    db_url: str, tmp_path: Path, kind: str
) -> None:
    deploy(db_url, tmp_path, waiter=WAITER, thrower=thrower(kind), repricer=REPRICER)
    waiting = start(db_url, "waiter")
    throwing = start(db_url, "thrower")
    with fresh(db_url) as engine:
        sender = engine.instances.get(throwing)
        assert sender.status == InstanceStatus.COMPLETED
        assert sender.data["trace"] == (
            ["announce", "published"] if kind == "intermediate" else ["announce"]
        )
        # Nothing reached the others yet: the signal is a job.
        assert engine.instances.get(waiting).data["trace"] == ["before"]
        assert [(j.kind, j.topic, j.element_id) for j in engine.jobs.list()] == [
            ("signal", "rates_changed", "publish")
        ]
        run = engine.jobs.run_due()
    # First the thrown signal is split, one job per target; those run in any order.
    outcomes = [(o.kind, o.result, o.process_key) for o in run.outcomes]
    assert outcomes[0] == ("signal", "broadcast", "thrower")
    assert sorted(outcomes[1:]) == [
        ("signal", "delivered", "waiter"),
        ("signal", "started", "repricer"),
    ]
    with fresh(db_url) as engine:
        receiver = engine.instances.get(waiting)
        assert receiver.data["trace"] == ["before", "after"]
        assert [t.element_id for t in receiver.tasks] == ["review"]
        [repriced] = [i for i in engine.instances.list() if i.process_key == "repricer"]
        assert repriced.status == InstanceStatus.COMPLETED
        assert engine.jobs.list() == []
    assert history(db_url, waiting) == [
        ("instance_started", None, None),
        ("data_changed", "before", None),
        ("signal_received", "rates", None),
        ("data_changed", "after", None),
        ("task_created", "review", None),
    ]
    # Run again: nothing is delivered twice.
    with fresh(db_url) as engine:
        assert engine.jobs.run_due().outcomes == ()


def test_signal_end_event_is_caught_in_its_own_instance(db_url: str, tmp_path: Path) -> None:
    """SpiffWorkflow 3.2 parsed a signal end event as a none end event: the catch on the
    other branch waited forever."""
    trace: list[str] = []
    deploy(db_url, tmp_path, self_signal=SELF_SIGNAL)
    with recording(fresh(db_url), trace, "caught", "throwing") as engine:
        instance_id = engine.instances.start("self_signal").id
    assert trace == ["throwing", "caught"]
    with fresh(db_url) as engine:
        assert engine.instances.get(instance_id).status == InstanceStatus.COMPLETED
        # Its own catch had it; the job finds nobody else waiting.
        run = engine.jobs.run_due()
    assert [(o.kind, o.result) for o in run.outcomes] == [("signal", "broadcast")]
    assert signal_subscriptions(db_url) == []


def test_the_signals_example_of_the_jobs_doc_runs_as_printed(
    repo_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """docs/jobs.md, "Signals": the example runs verbatim (SQLite, in a fresh folder) and
    prints what the page says it prints."""
    section = (repo_root / "docs" / "jobs.md").read_text().split("\n## Signals\n", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    printed = section.split("```text\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "docs/jobs.md", "exec"), {"__name__": "docs_example"})
    assert capsys.readouterr().out == printed


def test_a_signal_job_that_keeps_failing_is_an_incident_of_its_own(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A thrown signal that cannot be split (here: a bug) is retried, then becomes an
    incident of kind ``signal``; the thrower, which has moved on, is not failed. Retrying
    the incident sends it again."""
    deploy(db_url, tmp_path, waiter=WAITER, thrower=thrower("end"))
    waiting = start(db_url, "waiter")
    throwing = start(db_url, "thrower")

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(Signals, "fan_out", broken)
    clock = FixedClock(datetime.now(UTC))
    results = []
    with Engine(db_url, clock=clock, cache_size=0) as engine:
        for _ in range(3):
            results += [o.result for o in engine.jobs.run_due().outcomes]
            clock.set(clock.now() + timedelta(hours=1))
        [incident] = engine.incidents.list()
    assert results == ["retry", "retry", "incident"]
    assert (incident.kind, incident.instance_id, incident.element_id) == (
        "signal",
        throwing,
        "publish",
    )
    assert "disk on fire" in incident.message
    monkeypatch.undo()
    with fresh(db_url) as engine:
        assert engine.instances.get(throwing).status == InstanceStatus.COMPLETED
        engine.incidents.retry(incident.id)
        run = engine.jobs.run_due()
        assert [o.result for o in run.outcomes] == ["broadcast", "delivered"]
        assert engine.instances.get(waiting).data["trace"] == ["before", "after"]
        assert engine.incidents.list() == []
