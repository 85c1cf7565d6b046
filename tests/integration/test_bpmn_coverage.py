"""Coverage of docs/bpmn-coverage.md, processes, tasks and events (issue 10, item 4): each
supported row driven on SQLite and on PostgreSQL, a fresh Engine for every step, with the
exact order of what ran asserted.

What ran is read from two places: the instance variable ``trace`` that script tasks append
their id to, and ``steps.ran``, the ids of service tasks in the order their handlers were
called (kept by the test, so it also shows work inside called processes, cancelled scopes
and parallel branches, whatever the instance's data semantics). Human tasks, messages and
timers are read from the instance's history. Gateways, sequence flows and multi-instance
activities are in test_bpmn_coverage_flows.py.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bankflow import AccessDenied, BpmnError, DefinitionError, InstanceStatus, NotFound, Severity
from bpmn_builders import (
    CANCEL,
    ERROR,
    ESCALATION,
    GROUPS,
    SIGNAL,
    T0,
    TERMINATE,
    Steps,
    boundary,
    catch,
    definitions,
    end,
    flow_id,
    flows,
    gateway,
    message_definition,
    process,
    script,
    service,
    start,
    sub_process,
    throw,
    timer_duration,
    user,
)

RECORDERS = ("a", "b", "c", "inside", "inside_after", "handle", "normal")


@pytest.fixture
def steps(db_url: str, tmp_path: Path) -> Steps:
    return Steps(db_url, tmp_path, recorders=RECORDERS)


def started(steps: Steps, key: str, **kwargs: Any) -> str:
    """Start ``key`` (``trace`` empty unless given) on a fresh Engine; returns its id."""
    kwargs.setdefault("data", {"trace": []})
    with steps.engine() as engine:
        return engine.instances.start(key, **kwargs).id


def stored(steps: Steps, instance_id: str) -> Any:
    with steps.engine() as engine:
        return engine.instances.get(instance_id)


# -- tasks ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "between",
    ['<bpmn:task id="between"/>', '<bpmn:intermediateThrowEvent id="between"/>'],
    ids=["none-task", "none-intermediate-throw"],
)
def test_script_tasks_run_in_flow_order_and_none_elements_pass_through(
    steps: Steps, between: str
) -> None:
    steps.deploy(
        "plain",
        definitions(
            process(
                "plain",
                start(),
                script("first"),
                between,
                script("second"),
                user("review"),
                script("third"),
                end(),
                flows(
                    "start>first",
                    "first>between",
                    "between>second",
                    "second>review",
                    "review>third",
                    "third>end",
                ),
            )
        ),
    )
    instance_id = started(steps, "plain")
    waiting = stored(steps, instance_id)
    assert (waiting.status, waiting.data["trace"]) == (InstanceStatus.RUNNING, ["first", "second"])
    assert [t.element_id for t in waiting.tasks] == ["review"]
    done = steps.complete(instance_id, "review")
    assert (done.status, done.data) == (
        InstanceStatus.COMPLETED,
        {"trace": ["first", "second", "third"]},
    )
    assert steps.history(instance_id) == [
        ("instance_started", None),
        ("data_changed", "first"),
        ("data_changed", "second"),
        ("task_created", "review"),
        ("task_completed", "review"),
        ("data_changed", "third"),
        ("end_event_reached", "end"),
        ("instance_completed", None),
    ]


def test_service_handlers_run_in_flow_order_and_their_results_reach_the_next_step(
    steps: Steps,
) -> None:
    steps.deploy(
        "served",
        definitions(
            process(
                "served",
                start(),
                script("before"),
                service("a"),
                service("b"),
                script("after", "trace = trace + ['after']\nseen = score"),
                end(),
                flows("start>before", "before>a", "a>b", "b>after", "after>end"),
            )
        ),
    )
    seen_by_a: list[Any] = []

    def scoring(data: dict[str, Any]) -> dict[str, Any]:
        steps.ran.append("a")
        seen_by_a.append(list(data["trace"]))
        return {"score": 7}

    with steps.engine() as engine:
        engine.services.register("a", scoring)
        instance = engine.instances.start("served", data={"trace": []})
    assert steps.ran == ["a", "b"]
    assert seen_by_a == [["before"]]  # a ran after the script before it, with its data
    assert (instance.status, instance.data) == (
        InstanceStatus.COMPLETED,
        {"trace": ["before", "after"], "score": 7, "seen": 7},
    )
    assert stored(steps, instance.id).data == instance.data


def test_a_manual_task_waits_in_the_inbox_like_a_user_task(steps: Steps) -> None:
    steps.deploy(
        "manual",
        definitions(
            process(
                "manual",
                start(),
                script("before"),
                user("sign", tag="manualTask"),
                script("after"),
                end(),
                flows("start>before", "before>sign", "sign>after", "after>end"),
            )
        ),
    )
    instance_id = started(steps, "manual")
    with steps.engine() as engine:
        [task] = engine.tasks.query(groups=GROUPS)
        assert (task.instance_id, task.element_id, task.candidate_groups) == (
            instance_id,
            "sign",
            ("ops",),
        )
        assert engine.tasks.query(groups=["other"]) == []
        with pytest.raises(AccessDenied):
            engine.tasks.complete(task.id, user="bob", groups=["other"])
    with steps.engine() as engine:
        assert engine.tasks.claim(task.id, user="ann", groups=GROUPS).assignee == "ann"
    assert stored(steps, instance_id).data == {"trace": ["before"]}
    done = steps.complete(instance_id, "sign")
    assert (done.status, done.data) == (InstanceStatus.COMPLETED, {"trace": ["before", "after"]})
    assert steps.history(instance_id) == [
        ("instance_started", None),
        ("data_changed", "before"),
        ("task_created", "sign"),
        ("task_claimed", "sign"),
        ("task_completed", "sign"),
        ("data_changed", "after"),
        ("end_event_reached", "end"),
        ("instance_completed", None),
    ]


# -- processes ------------------------------------------------------------------------------


def test_a_process_without_start_event_starts_at_every_element_without_incoming_flow(
    steps: Steps,
) -> None:
    steps.deploy(
        "startless",
        definitions(
            process(
                "startless",
                service("a"),
                service("b"),
                gateway("parallel", "join"),
                user("review"),
                service("c"),
                end(),
                flows("a>join", "b>join", "join>review", "review>c", "c>end"),
            )
        ),
    )
    instance_id = started(steps, "startless")
    assert sorted(steps.ran) == ["a", "b"]  # both ran, once each, before the join
    assert [t.element_id for t in stored(steps, instance_id).tasks] == ["review"]
    done = steps.complete(instance_id, "review")
    assert done.status == InstanceStatus.COMPLETED
    assert steps.ran[2:] == ["c"]
    assert steps.history(instance_id) == [
        ("instance_started", None),
        ("task_created", "review"),
        ("task_completed", "review"),
        ("end_event_reached", "end"),
        ("instance_completed", None),
    ]


# -- call activities --------------------------------------------------------------------------

CALL = '<bpmn:callActivity id="call" calledElement="child"/>'
OK_MESSAGE = '<bpmn:message id="ok_message" name="ok"/>'


def test_a_call_activity_runs_the_called_process_between_its_neighbours(steps: Steps) -> None:
    """The child sees the parent's data (``amount``), waits for a message on an Engine of
    its own, and its results (``result``, the message's ``approved``) come back."""
    child = process(
        "child",
        start(),
        script("child_first", "trace = trace + ['child_first']\nresult = amount * 2"),
        catch("wait", message_definition("ok_message")),
        script("child_last"),
        end(),
        flows("start>child_first", "child_first>wait", "wait>child_last", "child_last>end"),
    )
    parent = process(
        "parent",
        start(),
        script("before"),
        CALL,
        script("after", "trace = trace + ['after']\ntotal = result + 1"),
        end(),
        flows("start>before", "before>call", "call>after", "after>end"),
    )
    steps.deploy("called", definitions(parent, child, extra=OK_MESSAGE))
    instance_id = started(steps, "parent", business_key="P-1", data={"trace": [], "amount": 21})
    waiting = stored(steps, instance_id)
    assert (waiting.status, waiting.tasks) == (InstanceStatus.RUNNING, ())
    assert waiting.data == {"trace": ["before"], "amount": 21}  # the child's data is its own
    with steps.engine() as engine:
        # The called process runs inside the caller's instance, not as an instance of its own.
        assert [(i.id, i.process_key) for i in engine.instances.list()] == [(instance_id, "parent")]
        [after] = engine.messages.correlate("ok", business_key="P-1", data={"approved": True})
    assert after.id == instance_id
    assert (after.status, after.data) == (
        InstanceStatus.COMPLETED,
        {
            "trace": ["before", "child_first", "child_last", "after"],
            "amount": 21,
            "result": 42,
            "approved": True,
            "total": 43,
        },
    )
    assert steps.history(instance_id) == [
        ("instance_started", None),
        ("data_changed", "before"),
        ("data_changed", "child_first"),
        ("message_received", "wait"),
        ("data_changed", "child_last"),
        ("end_event_reached", "end"),
        ("data_changed", "after"),
        ("end_event_reached", "end"),
        ("instance_completed", None),
    ]


def test_an_error_thrown_in_a_called_process_takes_the_error_boundary_of_the_call_activity(
    steps: Steps,
) -> None:
    child = process(
        "child",
        start(),
        service("b"),
        catch("wait", timer_duration("PT1H")),
        service("c"),
        end("reject", ERROR),
        flows("start>b", "b>wait", "wait>c", "c>reject"),
    )
    parent = process(
        "parent",
        start(),
        service("a"),
        CALL,
        boundary("rejected", "call", ERROR),
        service("normal"),
        service("handle"),
        end(),
        end("handled"),
        flows("start>a", "a>call", "call>normal", "normal>end", "rejected>handle"),
        flows("handle>handled"),
    )
    steps.deploy("called", definitions(parent, child))
    instance_id = started(steps, "parent")
    assert steps.ran == ["a", "b"]
    with steps.engine() as engine:
        assert [(j.kind, j.element_id, j.due_at) for j in engine.jobs.list()] == [
            ("timer", "wait", T0 + timedelta(hours=1))
        ]
    steps.clock.set(T0 + timedelta(hours=1))
    with steps.engine() as engine:
        outcomes = engine.jobs.run_due().outcomes
        assert [(o.kind, o.result, o.element_id) for o in outcomes] == [("timer", "fired", "wait")]
    assert steps.ran == ["a", "b", "c", "handle"]  # "normal" never ran
    with steps.engine() as engine:
        done = engine.instances.get(instance_id)
        assert (done.status, done.failure, done.tasks) == (InstanceStatus.COMPLETED, None, ())
        assert engine.incidents.list() == []
        assert engine.jobs.list() == []
    assert steps.history(instance_id) == [
        ("instance_started", None),
        ("timer_fired", "wait"),
        ("end_event_reached", "reject"),
        ("end_event_reached", "handled"),
        ("instance_completed", None),
    ]


def test_a_user_task_in_a_called_process_is_for_the_groups_it_names(steps: Steps) -> None:
    """It had no candidate groups (its element was looked up in the calling process), so
    nobody could complete it (fixed in a60ee72)."""
    child = process(
        "child",
        start(),
        script("child_first"),
        user("review"),
        script("child_last"),
        end(),
        flows("start>child_first", "child_first>review", "review>child_last", "child_last>end"),
    )
    parent = process(
        "parent",
        start(),
        script("before"),
        CALL,
        script("after"),
        end(),
        flows("start>before", "before>call", "call>after", "after>end"),
    )
    steps.deploy("called", definitions(parent, child))
    instance_id = started(steps, "parent")
    with steps.engine() as engine:
        [task] = engine.instances.get(instance_id).tasks
        assert engine.tasks.data(task.id)["trace"] == ["before", "child_first"]
        assert (task.element_id, task.candidate_groups) == ("review", ("ops",))
        assert [t.id for t in engine.tasks.query(groups=GROUPS)] == [task.id]
    done = steps.complete(instance_id, "review")
    assert (done.status, done.data["trace"]) == (
        InstanceStatus.COMPLETED,
        ["before", "child_first", "child_last", "after"],
    )


# -- event sub-processes and transactions ----------------------------------------------------


@pytest.mark.parametrize("nested", [False, True], ids=["in-the-process", "in-a-sub-process"])
def test_an_interrupting_escalation_event_sub_process_cancels_the_rest_of_its_scope(
    steps: Steps, nested: bool
) -> None:
    """``work`` and ``prepare`` wait side by side; after ``prepare``, ``a`` runs and an
    escalation end event throws; the interrupting event sub-process runs ``handle`` and
    ``work`` is cancelled."""
    scope = (
        start("scope_start"),
        gateway("parallel", "fork"),
        user("work"),
        end("worked"),
        user("prepare"),
        service("a"),
        end("raise", ESCALATION),
        flows("scope_start>fork", "fork>work", "work>worked", "fork>prepare", "prepare>a"),
        flows("a>raise"),
        sub_process(
            "on_escalation",
            start("caught", ESCALATION),
            service("handle"),
            end("handled"),
            flows("caught>handle", "handle>handled"),
            attrs=' triggeredByEvent="true"',
        ),
    )
    if nested:
        body: tuple[str, ...] = (
            start(),
            sub_process("sub", *scope),
            service("normal"),
            end(),
            flows("start>sub", "sub>normal", "normal>end"),
        )
    else:
        body = scope
    steps.deploy("escalated", definitions(process("escalated", *body)))
    instance_id = started(steps, "escalated")
    assert steps.waiting(instance_id) == ["prepare", "work"]
    assert steps.ran == []
    done = steps.complete(instance_id, "prepare")
    assert (done.status, done.failure, done.tasks) == (InstanceStatus.COMPLETED, None, ())
    assert steps.ran == (["a", "handle", "normal"] if nested else ["a", "handle"])
    events = steps.history(instance_id)
    assert sorted(events[1:3]) == [("task_created", "prepare"), ("task_created", "work")]
    # The escalation end event is reached, the work it interrupts is cancelled, then the
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


def transaction(key: str) -> str:
    """``before``, then a transaction (``inside``, then ``confirm``; a cancel end event when
    ``cancel`` is true), then ``after``; the cancel boundary event leads to ``undo``."""
    return definitions(
        process(
            key,
            start(),
            script("before"),
            sub_process(
                "booking",
                start("booking_start"),
                service("inside"),
                user("confirm"),
                gateway("exclusive", "decide", default=flow_id("decide", "booked")),
                end("cancelled", CANCEL),
                end("booked"),
                flows("booking_start>inside", "inside>confirm", "confirm>decide"),
                flows("decide>cancelled?cancel", "decide>booked"),
                tag="transaction",
            ),
            boundary("on_cancel", "booking", CANCEL),
            script("after"),
            script("undo"),
            end(),
            end("undone"),
            flows("start>before", "before>booking", "booking>after", "after>end"),
            flows("on_cancel>undo", "undo>undone"),
        )
    )


# The path after the transaction's gateway: its cancel end event and the cancel boundary
# path, or its normal end and the way on.
UNDONE = [
    ("end_event_reached", "cancelled"),
    ("data_changed", "undo"),
    ("end_event_reached", "undone"),
]
BOOKED = [("end_event_reached", "booked"), ("data_changed", "after"), ("end_event_reached", "end")]


@pytest.mark.parametrize(
    ("cancel", "trace"),
    [(True, ["before", "undo"]), (False, ["before", "after"])],
    ids=["cancel-end", "completed"],
)
def test_a_cancel_end_event_in_a_transaction_takes_the_cancel_boundary_path(
    steps: Steps, cancel: bool, trace: list[str]
) -> None:
    steps.deploy("booking", transaction("travel"))
    instance_id = started(steps, "travel")
    assert steps.ran == ["inside"]
    assert steps.waiting(instance_id) == ["confirm"]
    assert stored(steps, instance_id).data["trace"] == ["before"]
    done = steps.complete(instance_id, "confirm", {"cancel": cancel})
    assert (done.status, done.failure, done.tasks) == (InstanceStatus.COMPLETED, None, ())
    assert done.data["trace"] == trace
    assert steps.ran == ["inside"]
    assert steps.history(instance_id) == [
        ("instance_started", None),
        ("data_changed", "before"),
        ("task_created", "confirm"),
        ("task_completed", "confirm"),
        ("gateway_taken", "decide"),
        *(UNDONE if cancel else BOOKED),
        ("instance_completed", None),
    ]


# -- terminate end events -------------------------------------------------------------------


def test_a_terminate_end_event_ends_the_whole_instance(steps: Steps) -> None:
    steps.deploy(
        "terminated",
        definitions(
            process(
                "terminated",
                start(),
                script("before"),
                gateway("parallel", "split"),
                user("work"),
                service("a"),
                end("worked"),
                user("stop"),
                script("stopping"),
                end("kill", TERMINATE),
                flows("start>before", "before>split", "split>work", "work>a", "a>worked"),
                flows("split>stop", "stop>stopping", "stopping>kill"),
            )
        ),
    )
    instance_id = started(steps, "terminated")
    assert steps.waiting(instance_id) == ["stop", "work"]
    done = steps.complete(instance_id, "stop")
    assert (done.status, done.failure, done.tasks) == (InstanceStatus.COMPLETED, None, ())
    assert done.data["trace"] == ["before", "stopping"]
    assert steps.ran == []  # the other branch went no further
    events = steps.history(instance_id)
    assert sorted(events[2:4]) == [("task_created", "stop"), ("task_created", "work")]
    # The terminate end event is reached, then the waiting work goes.
    assert [*events[:2], *events[4:]] == [
        ("instance_started", None),
        ("data_changed", "before"),
        ("task_completed", "stop"),
        ("data_changed", "stopping"),
        ("end_event_reached", "kill"),
        ("task_cancelled", "work"),
        ("instance_completed", None),
    ]
    with steps.engine() as engine:
        assert engine.tasks.query(groups=GROUPS) == []


def terminated_in_a_sub_process(key: str) -> str:
    """``before``, then a sub-process where ``work`` and ``stop`` wait side by side and
    ``stop`` leads to ``stopping`` and a terminate end event; then ``after`` and ``b``."""
    return definitions(
        process(
            key,
            start(),
            script("before"),
            sub_process(
                "sub",
                start("sub_start"),
                gateway("parallel", "split"),
                user("work"),
                service("a"),
                end("worked"),
                user("stop"),
                script("stopping"),
                end("kill", TERMINATE),
                flows("sub_start>split", "split>work", "work>a", "a>worked"),
                flows("split>stop", "stop>stopping", "stopping>kill"),
            ),
            user("after"),
            service("b"),
            end(),
            flows("start>before", "before>sub", "sub>after", "after>b", "b>end"),
        )
    )


def test_a_terminate_end_event_in_a_sub_process_ends_only_the_sub_process(steps: Steps) -> None:
    steps.deploy("terminated", terminated_in_a_sub_process("terminated"))
    instance_id = started(steps, "terminated")
    assert steps.waiting(instance_id) == ["stop", "work"]
    going_on = steps.complete(instance_id, "stop")
    # The sub-process left by its normal way out: the process goes on after it.
    assert (going_on.status, [t.element_id for t in going_on.tasks]) == (
        InstanceStatus.RUNNING,
        ["after"],
    )
    assert going_on.data["trace"] == ["before", "stopping"]
    assert steps.ran == []
    done = steps.complete(instance_id, "after")
    assert done.status == InstanceStatus.COMPLETED
    assert steps.ran == ["b"]
    events = steps.history(instance_id)
    assert sorted(events[2:4]) == [("task_created", "stop"), ("task_created", "work")]
    # "work" went with the sub-process when its terminate end event was reached, before
    # "after" was reached (history listed them the other way round until 033345d).
    assert [*events[:2], *events[4:]] == [
        ("instance_started", None),
        ("data_changed", "before"),
        ("task_completed", "stop"),
        ("data_changed", "stopping"),
        ("end_event_reached", "kill"),
        ("task_cancelled", "work"),
        ("task_created", "after"),
        ("task_completed", "after"),
        ("end_event_reached", "end"),
        ("instance_completed", None),
    ]


# -- boundary timer on a sub-process --------------------------------------------------------


def timed_sub_process(key: str) -> str:
    """``before``, then a sub-process (``inside``, ``work``, ``inside_after``), then
    ``after``; after 48 hours an interrupting timer on the sub-process leads to
    ``escalate``."""
    return definitions(
        process(
            key,
            start(),
            script("before"),
            sub_process(
                "sub",
                start("sub_start"),
                service("inside"),
                user("work"),
                service("inside_after"),
                end("sub_end"),
                flows("sub_start>inside", "inside>work", "work>inside_after"),
                flows("inside_after>sub_end"),
            ),
            boundary("late", "sub", timer_duration("PT48H")),
            script("after"),
            script("escalate"),
            end(),
            end("escalated"),
            flows("start>before", "before>sub", "sub>after", "after>end"),
            flows("late>escalate", "escalate>escalated"),
        )
    )


def test_an_interrupting_timer_on_a_sub_process_cancels_it_when_due(steps: Steps) -> None:
    steps.deploy("timed", timed_sub_process("timed"))
    instance_id = started(steps, "timed")
    assert steps.ran == ["inside"]
    with steps.engine() as engine:
        assert [(j.kind, j.element_id, j.due_at) for j in engine.jobs.list()] == [
            ("timer", "late", T0 + timedelta(hours=48))
        ]
    steps.clock.set(T0 + timedelta(hours=47, minutes=59))
    with steps.engine() as engine:
        assert engine.jobs.run_due().outcomes == ()
    assert steps.waiting(instance_id) == ["work"]
    steps.clock.set(T0 + timedelta(hours=48))
    with steps.engine() as engine:
        outcomes = engine.jobs.run_due().outcomes
        assert [(o.kind, o.result, o.element_id) for o in outcomes] == [("timer", "fired", "late")]
    done = stored(steps, instance_id)
    assert (done.status, done.tasks) == (InstanceStatus.COMPLETED, ())
    assert done.data["trace"] == ["before", "escalate"]
    assert steps.ran == ["inside"]  # inside_after never ran
    assert steps.history(instance_id) == [
        ("instance_started", None),
        ("data_changed", "before"),
        ("task_created", "work"),
        ("timer_fired", "late"),
        ("task_cancelled", "work"),
        ("data_changed", "escalate"),
        ("end_event_reached", "escalated"),
        ("instance_completed", None),
    ]


def test_a_sub_process_done_in_time_leaves_by_its_normal_way_and_drops_the_timer(
    steps: Steps,
) -> None:
    steps.deploy("timed", timed_sub_process("timed"))
    instance_id = started(steps, "timed")
    steps.clock.set(T0 + timedelta(hours=1))
    done = steps.complete(instance_id, "work")
    assert done.status == InstanceStatus.COMPLETED
    assert done.data["trace"] == ["before", "after"]
    assert steps.ran == ["inside", "inside_after"]
    with steps.engine() as engine:
        assert engine.jobs.list() == []
        assert engine.jobs.run_due(now=T0 + timedelta(days=3)).outcomes == ()
    assert steps.history(instance_id) == [
        ("instance_started", None),
        ("data_changed", "before"),
        ("task_created", "work"),
        ("task_completed", "work"),
        ("end_event_reached", "sub_end"),
        ("data_changed", "after"),
        ("end_event_reached", "end"),
        ("instance_completed", None),
    ]


# -- message start --------------------------------------------------------------------------

APPLICATION_MESSAGE = '<bpmn:message id="application_message" name="application_in"/>'


def application(key: str) -> str:
    return process(
        key,
        start("received", message_definition("application_message")),
        script("check"),
        user("review"),
        script("after"),
        end(),
        flows("received>check", "check>review", "review>after", "after>end"),
    )


def test_a_message_start_event_starts_the_process_and_runs_on(steps: Steps) -> None:
    steps.deploy("application", definitions(application("application"), extra=APPLICATION_MESSAGE))
    with steps.engine() as engine:
        [instance] = engine.messages.correlate(
            "application_in", business_key="A-1", data={"trace": ["sent"]}, user="web"
        )
    assert (instance.process_key, instance.business_key, instance.started_by) == (
        "application",
        "A-1",
        "web",
    )
    assert instance.data == {"trace": ["sent", "check"]}
    assert [t.element_id for t in instance.tasks] == ["review"]
    done = steps.complete(instance.id, "review")
    assert (done.status, done.data) == (
        InstanceStatus.COMPLETED,
        {"trace": ["sent", "check", "after"]},
    )
    assert steps.history(instance.id) == [
        ("instance_started", None),
        ("message_received", "received"),
        ("data_changed", "check"),
        ("task_created", "review"),
        ("task_completed", "review"),
        ("data_changed", "after"),
        ("end_event_reached", "end"),
        ("instance_completed", None),
    ]
    with steps.engine() as engine:
        # Nobody waits for the message now: a second one starts a second instance.
        [second] = engine.messages.correlate(
            "application_in", business_key="A-2", data={"trace": []}
        )
        assert second.id != instance.id
        assert second.data == {"trace": ["check"]}


def test_a_message_thrown_by_another_instance_starts_the_process(steps: Steps) -> None:
    sender = process(
        "sender",
        start(),
        script("fill"),
        throw("submit", message_definition("application_message", '{"trace": trace}')),
        script("sent"),
        end(),
        flows("start>fill", "fill>submit", "submit>sent", "sent>end"),
    )
    steps.deploy(
        "application",
        definitions(application("application"), sender, extra=APPLICATION_MESSAGE),
    )
    sender_id = started(steps, "sender", business_key="A-7")
    assert stored(steps, sender_id).data == {"trace": ["fill", "sent"]}
    with steps.engine() as engine:
        assert engine.instances.list(process_key="application") == []
        [outcome] = engine.jobs.run_due().outcomes
        assert (outcome.kind, outcome.result, outcome.element_id) == (
            "message",
            "started",
            "submit",
        )
    with steps.engine() as engine:
        [listed] = engine.instances.list(process_key="application")
    receiver = stored(steps, listed.id)
    assert (receiver.business_key, receiver.data) == ("A-7", {"trace": ["fill", "check"]})
    done = steps.complete(receiver.id, "review")
    assert done.data == {"trace": ["fill", "check", "after"]}
    assert steps.history(receiver.id) == [
        ("instance_started", None),
        ("message_received", "received"),
        ("data_changed", "check"),
        ("task_created", "review"),
        ("task_completed", "review"),
        ("data_changed", "after"),
        ("end_event_reached", "end"),
        ("instance_completed", None),
    ]


# -- signals within one instance ------------------------------------------------------------


def test_a_signal_thrown_in_the_instance_reaches_its_intermediate_catch_event(
    steps: Steps,
) -> None:
    steps.deploy(
        "signalled",
        definitions(
            process(
                "signalled",
                start(),
                gateway("parallel", "split"),
                user("review"),
                service("a"),
                throw("tell", SIGNAL),
                service("b"),
                end("told"),
                catch("wait", SIGNAL),
                service("c"),
                end("heard"),
                flows("start>split", "split>review", "review>a", "a>tell", "tell>b", "b>told"),
                flows("split>wait", "wait>c", "c>heard"),
            )
        ),
    )
    instance_id = started(steps, "signalled")
    assert steps.waiting(instance_id) == ["review"]
    assert steps.ran == []  # the catch event waits for the signal
    done = steps.complete(instance_id, "review")
    assert (done.status, done.failure) == (InstanceStatus.COMPLETED, None)
    assert steps.ran[0] == "a"
    assert sorted(steps.ran[1:]) == ["b", "c"]  # the thrower goes on beside the catcher
    assert steps.history(instance_id) == [
        ("instance_started", None),
        ("task_created", "review"),
        ("task_completed", "review"),
        ("end_event_reached", "told"),
        ("end_event_reached", "heard"),
        ("instance_completed", None),
    ]


@pytest.mark.parametrize("interrupting", [True, False], ids=["interrupting", "non-interrupting"])
def test_a_signal_thrown_in_the_instance_reaches_a_signal_boundary_event(
    steps: Steps, interrupting: bool
) -> None:
    steps.deploy(
        "signalled",
        definitions(
            process(
                "signalled",
                start(),
                gateway("parallel", "split"),
                user("review"),
                service("a"),
                throw("tell", SIGNAL),
                service("b"),
                end("told"),
                user("work"),
                boundary("stopped", "work", SIGNAL, cancel=interrupting),
                service("normal"),
                service("handle"),
                end("worked"),
                end("handled"),
                flows("start>split", "split>review", "review>a", "a>tell", "tell>b", "b>told"),
                flows("split>work", "work>normal", "normal>worked"),
                flows("stopped>handle", "handle>handled"),
            )
        ),
    )
    instance_id = started(steps, "signalled")
    assert steps.waiting(instance_id) == ["review", "work"]
    after = steps.complete(instance_id, "review")
    assert steps.ran[0] == "a"
    assert sorted(steps.ran[1:]) == ["b", "handle"]
    events = steps.history(instance_id)
    assert sorted(events[1:3]) == [("task_created", "review"), ("task_created", "work")]
    if interrupting:
        assert (after.status, after.tasks) == (InstanceStatus.COMPLETED, ())
        assert [events[0], *events[3:]] == [
            ("instance_started", None),
            ("task_completed", "review"),
            ("task_cancelled", "work"),
            ("end_event_reached", "told"),
            ("end_event_reached", "handled"),
            ("instance_completed", None),
        ]
        return
    assert (after.status, [t.element_id for t in after.tasks]) == (
        InstanceStatus.RUNNING,
        ["work"],
    )
    done = steps.complete(instance_id, "work")
    assert done.status == InstanceStatus.COMPLETED
    assert steps.ran[3:] == ["normal"]
    assert steps.history(instance_id)[3:] == [
        ("task_completed", "review"),
        ("end_event_reached", "told"),
        ("end_event_reached", "handled"),
        ("task_completed", "work"),
        ("end_event_reached", "worked"),
        ("instance_completed", None),
    ]


# -- data objects ---------------------------------------------------------------------------

DATA_OBJECT = (
    '<bpmn:dataObject id="application_data"/>'
    '<bpmn:dataObjectReference id="application_ref" dataObjectRef="application_data"/>'
)


def test_a_data_object_written_by_one_task_is_read_by_a_later_one(steps: Steps) -> None:
    steps.deploy(
        "documented",
        definitions(
            process(
                "documented",
                start(),
                DATA_OBJECT,
                script(
                    "write",
                    "application_data = {'amount': 5}\ntrace = trace + ['write']",
                    inner='<bpmn:dataOutputAssociation id="written">'
                    "<bpmn:targetRef>application_ref</bpmn:targetRef>"
                    "</bpmn:dataOutputAssociation>",
                ),
                user("review"),
                script(
                    "read",
                    "trace = trace + ['read']\nseen = application_data['amount']",
                    inner='<bpmn:dataInputAssociation id="read_from">'
                    "<bpmn:sourceRef>application_ref</bpmn:sourceRef>"
                    "</bpmn:dataInputAssociation>",
                ),
                end(),
                flows("start>write", "write>review", "review>read", "read>end"),
            )
        ),
    )
    instance_id = started(steps, "documented")
    assert stored(steps, instance_id).data["trace"] == ["write"]
    done = steps.complete(instance_id, "review")
    assert (done.status, done.failure) == (InstanceStatus.COMPLETED, None)
    assert done.data == {
        "trace": ["write", "read"],
        "seen": 5,
        "data_objects": {"application_data": {"amount": 5}},
    }


# -- service tasks as jobs and external tasks -------------------------------------------------


def with_error_boundary(key: str, task: str) -> str:
    """``before``, ``task`` (an error boundary event on it leads to ``handle``), ``after``."""
    return definitions(
        process(
            key,
            start(),
            script("before"),
            task,
            boundary("rejected", "debit", ERROR),
            script("after"),
            script("handle"),
            end(),
            end("handled"),
            flows("start>before", "before>debit", "debit>after", "after>end"),
            flows("rejected>handle", "handle>handled"),
        )
    )


@pytest.mark.parametrize("outcome", ["completed", "bpmn_error"])
def test_an_async_service_task_runs_as_a_job_in_flow_order(steps: Steps, outcome: str) -> None:
    steps.deploy(
        "charged",
        with_error_boundary("charged", service("debit", attrs=' camunda:asyncBefore="true"')),
    )

    def debit(data: dict[str, Any]) -> dict[str, Any]:
        steps.ran.append("debit")
        if outcome == "bpmn_error":
            raise BpmnError("REJECTED", "no funds")
        return {"debited": True}

    instance_id = started(steps, "charged")
    assert stored(steps, instance_id).data["trace"] == ["before"]
    assert steps.ran == []
    with steps.engine() as engine:
        engine.services.register("debit", debit)
        outcomes = engine.jobs.run_due().outcomes
        assert [(o.kind, o.result, o.element_id) for o in outcomes] == [
            ("service", outcome, "debit")
        ]
    assert steps.ran == ["debit"]
    done = stored(steps, instance_id)
    assert (done.status, done.failure) == (InstanceStatus.COMPLETED, None)
    if outcome == "completed":
        assert done.data == {"trace": ["before", "after"], "debited": True}
    else:
        assert done.data == {"trace": ["before", "handle"]}
    assert steps.history(instance_id) == [
        ("instance_started", None),
        ("data_changed", "before"),
        ("service_completed" if outcome == "completed" else "service_bpmn_error", "debit"),
        *(
            [("data_changed", "debit"), ("data_changed", "after"), ("end_event_reached", "end")]
            if outcome == "completed"
            else [("data_changed", "handle"), ("end_event_reached", "handled")]
        ),
        ("instance_completed", None),
    ]


@pytest.mark.parametrize("outcome", ["completed", "bpmn_error"])
def test_an_external_task_runs_between_its_neighbours(steps: Steps, outcome: str) -> None:
    external = '<bpmn:serviceTask id="debit" camunda:type="external" camunda:topic="debits"/>'
    steps.deploy("charged", with_error_boundary("charged", external))
    instance_id = started(steps, "charged")
    with steps.engine() as engine:
        [task] = engine.external.fetch_and_lock(["debits"], worker_id="w1")
        assert (task.instance_id, task.element_id) == (instance_id, "debit")
        assert task.variables == {"trace": ["before"]}
    with steps.engine() as engine:
        if outcome == "completed":
            engine.external.complete(task.id, worker_id="w1", variables={"debited": True})
        else:
            engine.external.bpmn_error(task.id, worker_id="w1", error_code="REJECTED")
    done = stored(steps, instance_id)
    assert (done.status, done.failure) == (InstanceStatus.COMPLETED, None)
    if outcome == "completed":
        assert done.data == {"trace": ["before", "after"], "debited": True}
    else:
        assert done.data == {"trace": ["before", "handle"]}
    assert steps.history(instance_id) == [
        ("instance_started", None),
        ("data_changed", "before"),
        ("service_completed" if outcome == "completed" else "service_bpmn_error", "debit"),
        *(
            [("data_changed", "debit"), ("data_changed", "after"), ("end_event_reached", "end")]
            if outcome == "completed"
            else [("data_changed", "handle"), ("end_event_reached", "handled")]
        ),
        ("instance_completed", None),
    ]
    with steps.engine() as engine:
        assert engine.external.fetch_and_lock(["debits"], worker_id="w1") == []


def signal_event_sub_process(key: str, *, interrupting: bool) -> str:
    """``work`` and ``review`` wait side by side; after ``review``, ``a`` runs, a signal is
    thrown, then ``b``; the signal starts an event sub-process that runs ``handle``."""
    return definitions(
        process(
            key,
            start(),
            gateway("parallel", "split"),
            user("work"),
            service("normal"),
            end("worked"),
            user("review"),
            service("a"),
            throw("tell", SIGNAL),
            service("b"),
            end("told"),
            flows("start>split", "split>work", "work>normal", "normal>worked"),
            flows("split>review", "review>a", "a>tell", "tell>b", "b>told"),
            sub_process(
                "on_signal",
                start("caught", SIGNAL, interrupting=interrupting),
                service("handle"),
                end("handled"),
                flows("caught>handle", "handle>handled"),
                attrs=' triggeredByEvent="true"',
            ),
        )
    )


def test_an_interrupting_signal_event_sub_process_cancels_the_rest_of_the_process(
    steps: Steps,
) -> None:
    steps.deploy("signalled", signal_event_sub_process("signalled", interrupting=True))
    instance_id = started(steps, "signalled")
    assert steps.waiting(instance_id) == ["review", "work"]
    done = steps.complete(instance_id, "review")
    assert (done.status, done.failure, done.tasks) == (InstanceStatus.COMPLETED, None, ())
    assert steps.ran == ["a", "handle"]  # the thrower's branch was cancelled too: no "b"
    events = steps.history(instance_id)
    assert sorted(events[1:3]) == [("task_created", "review"), ("task_created", "work")]
    assert [events[0], *events[3:]] == [
        ("instance_started", None),
        ("task_completed", "review"),
        ("task_cancelled", "work"),
        ("end_event_reached", "handled"),
        ("instance_completed", None),
    ]


def test_a_non_interrupting_signal_event_sub_process_runs_beside_the_work(steps: Steps) -> None:
    steps.deploy("signalled", signal_event_sub_process("signalled", interrupting=False))
    instance_id = started(steps, "signalled")
    going_on = steps.complete(instance_id, "review")
    assert (going_on.status, [t.element_id for t in going_on.tasks]) == (
        InstanceStatus.RUNNING,
        ["work"],
    )
    assert steps.ran[0] == "a"
    assert sorted(steps.ran[1:]) == ["b", "handle"]
    done = steps.complete(instance_id, "work")
    assert done.status == InstanceStatus.COMPLETED
    assert steps.ran[3:] == ["normal"]
    assert steps.history(instance_id)[3:] == [
        ("task_completed", "review"),
        ("end_event_reached", "handled"),
        ("end_event_reached", "told"),
        ("task_completed", "work"),
        ("end_event_reached", "worked"),
        ("instance_completed", None),
    ]


def test_a_signal_end_event_reaches_the_catch_event_of_its_instance(steps: Steps) -> None:
    """It reached nothing: SpiffWorkflow 3.2 parsed a signal end event as a none end event
    (fixed in ``definitions/_parser.py``)."""
    steps.deploy(
        "signalled",
        definitions(
            process(
                "signalled",
                start(),
                gateway("parallel", "split"),
                user("review"),
                service("a"),
                end("tell", SIGNAL),
                catch("wait", SIGNAL),
                service("c"),
                end("heard"),
                flows("start>split", "split>review", "review>a", "a>tell"),
                flows("split>wait", "wait>c", "c>heard"),
            )
        ),
    )
    instance_id = started(steps, "signalled")
    done = steps.complete(instance_id, "review")
    assert steps.ran == ["a", "c"]
    assert done.status == InstanceStatus.COMPLETED


# -- timers on tasks, timer start -----------------------------------------------------------

EVERY_DAY = (
    "<bpmn:timerEventDefinition><bpmn:timeCycle>R/PT24H</bpmn:timeCycle>"
    "</bpmn:timerEventDefinition>"
)


@pytest.mark.parametrize("interrupting", [True, False], ids=["interrupting", "non-interrupting"])
def test_a_timer_on_a_user_task_fires_in_order_with_the_work(
    steps: Steps, interrupting: bool
) -> None:
    """Interrupting: after 48 hours ``handle`` replaces the work. Non-interrupting: a
    reminder every 24 hours while the work goes on."""
    timer = timer_duration("PT48H") if interrupting else EVERY_DAY
    steps.deploy(
        "watched",
        definitions(
            process(
                "watched",
                start(),
                script("before"),
                user("work"),
                boundary("late", "work", timer, cancel=interrupting),
                service("handle"),
                end("handled"),
                script("after"),
                end(),
                flows("start>before", "before>work", "work>after", "after>end"),
                flows("late>handle", "handle>handled"),
            )
        ),
    )
    instance_id = started(steps, "watched")
    fired = []
    for hours in (24, 47, 48):
        steps.clock.set(T0 + timedelta(hours=hours))
        with steps.engine() as engine:
            outcomes = engine.jobs.run_due().outcomes
        fired += [(hours, o.element_id, o.result) for o in outcomes]
    if interrupting:
        assert fired == [(48, "late", "fired")]
        assert steps.ran == ["handle"]
        done = stored(steps, instance_id)
        assert (done.status, done.data["trace"]) == (InstanceStatus.COMPLETED, ["before"])
        assert steps.history(instance_id) == [
            ("instance_started", None),
            ("data_changed", "before"),
            ("task_created", "work"),
            ("timer_fired", "late"),
            ("task_cancelled", "work"),
            ("end_event_reached", "handled"),
            ("instance_completed", None),
        ]
        return
    assert fired == [(24, "late", "fired"), (48, "late", "fired")]
    assert steps.ran == ["handle", "handle"]
    with steps.engine() as engine:
        assert [(j.element_id, j.due_at) for j in engine.jobs.list()] == [
            ("late", T0 + timedelta(hours=72))
        ]
    done = steps.complete(instance_id, "work")
    assert (done.status, done.data["trace"]) == (InstanceStatus.COMPLETED, ["before", "after"])
    with steps.engine() as engine:
        assert engine.jobs.list() == []
    assert steps.history(instance_id) == [
        ("instance_started", None),
        ("data_changed", "before"),
        ("task_created", "work"),
        ("timer_fired", "late"),
        ("end_event_reached", "handled"),
        ("timer_fired", "late"),
        ("end_event_reached", "handled"),
        ("task_completed", "work"),
        ("data_changed", "after"),
        ("end_event_reached", "end"),
        ("instance_completed", None),
    ]


def test_a_timer_start_event_starts_the_process_when_due(steps: Steps) -> None:
    at_ten = (
        "<bpmn:timerEventDefinition><bpmn:timeDate>2026-12-01T10:00:00Z</bpmn:timeDate>"
        "</bpmn:timerEventDefinition>"
    )
    steps.deploy(
        "timed",
        definitions(
            process(
                "timed",
                start("at_ten", at_ten),
                service("a"),
                user("work"),
                service("b"),
                end(),
                flows("at_ten>a", "a>work", "work>b", "b>end"),
            )
        ),
    )
    steps.clock.set(T0 + timedelta(minutes=59))
    with steps.engine() as engine:
        assert engine.jobs.run_due().outcomes == ()
        assert engine.instances.list() == []
    steps.clock.set(T0 + timedelta(hours=1))
    with steps.engine() as engine:
        [outcome] = engine.jobs.run_due().outcomes
        assert (outcome.kind, outcome.result, outcome.element_id) == (
            "start_timer",
            "started",
            "at_ten",
        )
        [instance] = engine.instances.list(process_key="timed")
    assert instance.started_at == T0 + timedelta(hours=1)
    assert steps.ran == ["a"]
    assert steps.complete(instance.id, "work").status == InstanceStatus.COMPLETED
    assert steps.ran == ["a", "b"]
    assert steps.history(instance.id) == [
        ("instance_started", None),
        ("task_created", "work"),
        ("task_completed", "work"),
        ("end_event_reached", "end"),
        ("instance_completed", None),
    ]
    with steps.engine() as engine:
        assert engine.jobs.run_due(now=T0 + timedelta(days=30)).outcomes == ()
        assert len(engine.instances.list()) == 1


# -- refused at validate, on both databases -------------------------------------------------

REFUSED = {
    "conditional-process-start": (
        process(
            "refused",
            start(
                "start",
                "<bpmn:conditionalEventDefinition><bpmn:condition>ready</bpmn:condition>"
                "</bpmn:conditionalEventDefinition>",
            ),
            service("a"),
            end(),
            flows("start>a", "a>end"),
        ),
        ("unsupported", "start", "conditional start event of a process"),
    ),
    # Compensation runs (I/test_compensation.py); not a compensation event sub-process of
    # a process (it would run only when the process is compensated from outside).
    "compensation-event-sub-process-of-a-process": (
        process(
            "refused",
            start(),
            service("a"),
            boundary("undo_a", "a", "<bpmn:compensateEventDefinition/>"),
            '<bpmn:serviceTask id="undo" isForCompensation="true" '
            'camunda:delegateExpression="${b}"/>',
            end(),
            flows("start>a", "a>end"),
            '<bpmn:subProcess id="on_undo" triggeredByEvent="true">'
            '<bpmn:startEvent id="undoing"><bpmn:compensateEventDefinition/></bpmn:startEvent>'
            '<bpmn:endEvent id="undone"/>'
            '<bpmn:sequenceFlow id="undo_flow" sourceRef="undoing" targetRef="undone"/>'
            "</bpmn:subProcess>",
            '<bpmn:association id="undo_link" associationDirection="One" sourceRef="undo_a" '
            'targetRef="undo"/>',
        ),
        ("unsupported", "undoing", "starts a compensation event sub-process that is not"),
    ),
    "call-activity-without-target": (
        process(
            "refused",
            start(),
            '<bpmn:callActivity id="call"/>',
            end(),
            flows("start>call", "call>end"),
        ),
        ("call-activity-target", "call", "calledElement is empty"),
    ),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_what_bankflow_cannot_run_is_refused_and_nothing_is_deployed(
    steps: Steps, case: str
) -> None:
    source, (rule, element_id, words) = REFUSED[case]
    path = steps.tmp_path / "refused.bpmn"
    path.write_text(definitions(source), encoding="utf-8")
    with steps.engine() as engine:
        report = engine.definitions.validate(path)
        errors = [d for d in report.diagnostics if d.severity == Severity.ERROR]
        assert [(d.rule, d.element_id) for d in errors] == [(rule, element_id)]
        assert words in errors[0].message
        with pytest.raises(DefinitionError):
            engine.definitions.deploy(path)
    with steps.engine() as engine:
        assert engine.definitions.list() == []
        assert engine.jobs.list() == []
        with pytest.raises(NotFound):
            engine.instances.start("refused")
