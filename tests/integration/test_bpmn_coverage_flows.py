"""Coverage of docs/bpmn-coverage.md, gateways, sequence flows and multi-instance activities
(issue 10, item 4): each supported row driven on SQLite and on PostgreSQL, a fresh Engine
for every step, with the exact order of what ran asserted.

Script tasks append their id to ``trace`` only where one path runs at a time; parallel
branches run service tasks, whose handlers record into ``steps.ran`` (kept by the test), so
no assertion depends on how branches' data is merged at a join. Human tasks, messages and
timers are read from the instance's history.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bankflow import CorrelationError, InstanceStatus
from bpmn_builders import (
    GROUPS,
    T0,
    Steps,
    catch,
    definitions,
    end,
    flow_id,
    flows,
    gateway,
    interleavings_of,
    message_definition,
    process,
    script,
    service,
    start,
    timer_duration,
    user,
)

RECORDERS = ("a", "b", "c", "d")


@pytest.fixture
def steps(db_url: str, tmp_path: Path) -> Steps:
    return Steps(db_url, tmp_path, recorders=RECORDERS)


def started(steps: Steps, key: str, **kwargs: Any) -> str:
    kwargs.setdefault("data", {"trace": []})
    with steps.engine() as engine:
        return engine.instances.start(key, **kwargs).id


def stored(steps: Steps, instance_id: str) -> Any:
    with steps.engine() as engine:
        return engine.instances.get(instance_id)


def test_the_interleaving_check_is_exact() -> None:
    assert interleavings_of(["a", "c", "b", "d"], ["a", "b"], ["c", "d"])
    assert not interleavings_of(["b", "a", "c", "d"], ["a", "b"], ["c", "d"])
    assert not interleavings_of(["a", "b", "c"], ["a", "b"], ["c", "d"])
    assert not interleavings_of(["a", "b", "c", "d", "d"], ["a", "b"], ["c", "d"])


# -- parallel gateway -----------------------------------------------------------------------


def test_a_parallel_gateway_runs_every_branch_and_the_join_waits_for_all(steps: Steps) -> None:
    """Branch one: services ``a`` then ``b``. Branch two: ``c``, a person's ``review``,
    then ``d``. ``after`` runs once, when both have reached the join."""
    steps.deploy(
        "parallel",
        definitions(
            process(
                "parallel",
                start(),
                script("before"),
                gateway("parallel", "split"),
                service("a"),
                service("b"),
                service("c"),
                user("review"),
                service("d"),
                gateway("parallel", "join"),
                script("after"),
                end(),
                flows("start>before", "before>split", "split>a", "a>b", "b>join"),
                flows("split>c", "c>review", "review>d", "d>join", "join>after", "after>end"),
            )
        ),
    )
    instance_id = started(steps, "parallel")
    assert interleavings_of(steps.ran, ["a", "b"], ["c"])
    waiting = stored(steps, instance_id)
    assert (waiting.status, waiting.data["trace"]) == (InstanceStatus.RUNNING, ["before"])
    assert [t.element_id for t in waiting.tasks] == ["review"]
    done = steps.complete(instance_id, "review")
    assert (done.status, done.data["trace"]) == (InstanceStatus.COMPLETED, ["before", "after"])
    assert steps.ran[3:] == ["d"]
    assert steps.history(instance_id) == [
        ("instance_started", None),
        ("data_changed", "before"),
        ("task_created", "review"),
        ("task_completed", "review"),
        ("data_changed", "after"),
        ("end_event_reached", "end"),
        ("instance_completed", None),
    ]


# -- inclusive gateway ----------------------------------------------------------------------


def inclusive(key: str) -> str:
    """``before``, then an inclusive split to ``low`` (x > 1), ``mid`` (x > 2), ``high``
    (x > 3) and the default ``fallback``, each a person's task; an inclusive join; ``after``."""
    return definitions(
        process(
            key,
            start(),
            script("before"),
            gateway("inclusive", "split", default=flow_id("split", "fallback")),
            user("low"),
            user("mid"),
            user("high"),
            user("fallback"),
            gateway("inclusive", "join"),
            script("after"),
            end(),
            flows("start>before", "before>split", "split>low?x > 1", "split>mid?x > 2"),
            flows("split>high?x > 3", "split>fallback"),
            flows("low>join", "mid>join", "high>join", "fallback>join", "join>after", "after>end"),
        )
    )


@pytest.mark.parametrize(
    ("x", "taken"),
    [(3, ["low", "mid"]), (9, ["high", "low", "mid"]), (0, ["fallback"])],
    ids=["two-of-three", "all-three", "none-takes-the-default"],
)
def test_an_inclusive_gateway_takes_every_true_flow_and_joins_them(
    steps: Steps, x: int, taken: list[str]
) -> None:
    steps.deploy("inclusive", inclusive("inclusive"))
    instance_id = started(steps, "inclusive", data={"trace": [], "x": x})
    assert steps.waiting(instance_id) == taken
    finished = []
    for element_id in reversed(taken):  # the join waits whatever the order
        with steps.engine() as engine:
            before = engine.instances.get(instance_id)
            assert (before.status, before.data["trace"]) == (InstanceStatus.RUNNING, ["before"])
        finished.append(steps.complete(instance_id, element_id))
    assert [i.status for i in finished] == [InstanceStatus.RUNNING] * (len(taken) - 1) + [
        InstanceStatus.COMPLETED
    ]
    assert finished[-1].data == {"trace": ["before", "after"], "x": x}  # "after" ran once
    events = steps.history(instance_id)
    created = len(taken)
    assert sorted(events[3 : 3 + created]) == [("task_created", t) for t in taken]
    assert [*events[:3], *events[3 + created :]] == [
        ("instance_started", None),
        ("data_changed", "before"),
        ("gateway_taken", "split"),  # the join has one way out: it chose nothing
        *[("task_completed", t) for t in reversed(taken)],
        ("data_changed", "after"),
        ("end_event_reached", "end"),
        ("instance_completed", None),
    ]


# -- event-based gateway --------------------------------------------------------------------

DOCS_MESSAGE = '<bpmn:message id="docs_message" name="documents_received"/>'


def chase(key: str) -> str:
    """``before``, then whichever comes first: the documents (then ``got``) or 14 days
    (then ``remind``)."""
    return definitions(
        process(
            key,
            start(),
            script("before"),
            gateway("eventBased", "race"),
            catch("docs", message_definition("docs_message")),
            catch("late", timer_duration("P14D")),
            script("got"),
            script("remind"),
            end(),
            end("reminded"),
            flows("start>before", "before>race", "race>docs", "race>late"),
            flows("docs>got", "got>end", "late>remind", "remind>reminded"),
        ),
        extra=DOCS_MESSAGE,
    )


def test_an_event_based_gateway_follows_the_message_when_it_comes_first(steps: Steps) -> None:
    steps.deploy("chase", chase("chase"))
    instance_id = started(steps, "chase", business_key="C-1")
    with steps.engine() as engine:
        assert [(j.kind, j.element_id, j.due_at) for j in engine.jobs.list()] == [
            ("timer", "late", T0 + timedelta(days=14))
        ]
    steps.clock.set(T0 + timedelta(days=2))
    with steps.engine() as engine:
        [after] = engine.messages.correlate(
            "documents_received", business_key="C-1", data={"documents": ["passport"]}
        )
    assert (after.id, after.status) == (instance_id, InstanceStatus.COMPLETED)
    assert after.data == {"trace": ["before", "got"], "documents": ["passport"]}
    steps.clock.set(T0 + timedelta(days=30))
    with steps.engine() as engine:
        assert engine.jobs.list() == []  # the timer lost the race and is gone
        assert engine.jobs.run_due().outcomes == ()
    assert stored(steps, instance_id).data["trace"] == ["before", "got"]
    assert steps.history(instance_id) == [
        ("instance_started", None),
        ("data_changed", "before"),
        ("message_received", "docs"),
        ("gateway_taken", "race"),
        ("data_changed", "got"),
        ("end_event_reached", "end"),
        ("instance_completed", None),
    ]


def test_an_event_based_gateway_follows_the_timer_when_it_comes_first(steps: Steps) -> None:
    steps.deploy("chase", chase("chase"))
    instance_id = started(steps, "chase", business_key="C-2")
    steps.clock.set(T0 + timedelta(days=14) - timedelta(minutes=1))
    with steps.engine() as engine:
        assert engine.jobs.run_due().outcomes == ()
    steps.clock.set(T0 + timedelta(days=14))
    with steps.engine() as engine:
        [outcome] = engine.jobs.run_due().outcomes
        assert (outcome.kind, outcome.result, outcome.element_id) == ("timer", "fired", "late")
    assert stored(steps, instance_id).data == {"trace": ["before", "remind"]}
    with steps.engine() as engine, pytest.raises(CorrelationError, match="no instance is waiting"):
        engine.messages.correlate("documents_received", business_key="C-2")
    assert steps.history(instance_id) == [
        ("instance_started", None),
        ("data_changed", "before"),
        ("timer_fired", "late"),
        ("gateway_taken", "race"),
        ("data_changed", "remind"),
        ("end_event_reached", "reminded"),
        ("instance_completed", None),
    ]


# -- sequence flows: conditions and defaults ------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "path"),
    [(5000, "big"), (500, "medium"), (5, "small")],
    ids=["first-condition", "juel-condition", "default"],
)
def test_an_exclusive_gateway_takes_the_first_true_condition_or_its_default(
    steps: Steps, amount: int, path: str
) -> None:
    """Conditions in Python and in JUEL (``${…}``); the default flow only when none holds,
    though ``amount > 100`` also holds for 5000 (the first true flow wins)."""
    steps.deploy(
        "routed",
        definitions(
            process(
                "routed",
                start(),
                script("before"),
                gateway("exclusive", "route", default=flow_id("route", "small")),
                script("big"),
                script("medium"),
                script("small"),
                gateway("exclusive", "merge"),
                user("review"),
                script("after"),
                end(),
                flows("start>before", "before>route", "route>big?amount > 1000"),
                flows("route>medium?${amount > 100}", "route>small"),
                flows("big>merge", "medium>merge", "small>merge", "merge>review"),
                flows("review>after", "after>end"),
            )
        ),
    )
    instance_id = started(steps, "routed", data={"trace": [], "amount": amount})
    assert stored(steps, instance_id).data["trace"] == ["before", path]
    done = steps.complete(instance_id, "review")
    assert (done.status, done.data["trace"]) == (
        InstanceStatus.COMPLETED,
        ["before", path, "after"],
    )


@pytest.mark.parametrize(("amount", "path"), [(5000, "big"), (5, "small")])
def test_an_activitys_default_flow_runs_when_its_condition_does_not_hold(
    steps: Steps, amount: int, path: str
) -> None:
    steps.deploy(
        "checked",
        definitions(
            process(
                "checked",
                start(),
                script("check", attrs=f' default="{flow_id("check", "small")}"'),
                script("big"),
                script("small"),
                user("review"),
                script("after"),
                end(),
                flows("start>check", "check>big?amount > 1000", "check>small"),
                flows("big>review", "small>review", "review>after", "after>end"),
            )
        ),
    )
    instance_id = started(steps, "checked", data={"trace": [], "amount": amount})
    assert steps.waiting(instance_id) == ["review"]  # one path, one review
    done = steps.complete(instance_id, "review")
    assert (done.status, done.data["trace"]) == (
        InstanceStatus.COMPLETED,
        ["check", path, "after"],
    )


def test_unconditional_flows_from_an_activity_all_run(steps: Steps) -> None:
    steps.deploy(
        "implicit",
        definitions(
            process(
                "implicit",
                start(),
                service("a"),
                service("b"),
                service("c"),
                user("review"),
                service("d"),
                end("end_b"),
                end(),
                flows("start>a", "a>b", "a>c", "b>end_b", "c>review", "review>d", "d>end"),
            )
        ),
    )
    instance_id = started(steps, "implicit")
    assert steps.ran[0] == "a"
    assert sorted(steps.ran[1:]) == ["b", "c"]
    assert steps.waiting(instance_id) == ["review"]
    assert steps.complete(instance_id, "review").status == InstanceStatus.COMPLETED
    assert steps.ran[3:] == ["d"]


def test_an_exclusive_gateway_loops_back_until_its_condition_fails(steps: Steps) -> None:
    steps.deploy(
        "looped",
        definitions(
            process(
                "looped",
                start(),
                script("before"),
                gateway("exclusive", "merge"),
                script("round", "trace = trace + ['round']\nrounds = rounds + 1"),
                gateway("exclusive", "again", default=flow_id("again", "review")),
                user("review"),
                script("after"),
                end(),
                flows("start>before", "before>merge", "merge>round", "round>again"),
                flows("again>merge?rounds < 3", "again>review", "review>after", "after>end"),
            )
        ),
    )
    instance_id = started(steps, "looped", data={"trace": [], "rounds": 0})
    assert stored(steps, instance_id).data == {
        "trace": ["before", "round", "round", "round"],
        "rounds": 3,
    }
    done = steps.complete(instance_id, "review")
    assert (done.status, done.data["trace"]) == (
        InstanceStatus.COMPLETED,
        ["before", "round", "round", "round", "after"],
    )


# -- multi-instance -------------------------------------------------------------------------

EACH_DOCUMENT = (
    '<bpmn:multiInstanceLoopCharacteristics isSequential="false" '
    'camunda:collection="docs" camunda:elementVariable="doc"/>'
)


def each_document(key: str) -> str:
    return definitions(
        process(
            key,
            start(),
            script("before"),
            user("check", inner=EACH_DOCUMENT),
            script("after"),
            end(),
            flows("start>before", "before>check", "check>after", "after>end"),
        )
    )


def test_a_parallel_multi_instance_over_a_collection_makes_a_task_per_item(
    steps: Steps,
) -> None:
    steps.deploy("documents", each_document("documents"))
    instance_id = started(steps, "documents", data={"trace": [], "docs": ["id", "payslip", "bill"]})
    with steps.engine() as engine:
        created = [
            e.task_id for e in engine.history.for_instance(instance_id) if e.type == "task_created"
        ]
        tasks = engine.instances.get(instance_id).tasks
        items = {t.id: engine.tasks.data(t.id)["doc"] for t in tasks}
    assert [t.element_id for t in tasks] == ["check"] * 3
    # One task per item, created in the collection's order.
    assert [items[task_id] for task_id in created if task_id] == ["id", "payslip", "bill"]
    by_item = {item: task_id for task_id, item in items.items()}
    for done, item in enumerate(["bill", "id", "payslip"], start=1):
        with steps.engine() as engine:
            after = engine.tasks.complete(by_item[item], user="ann", groups=GROUPS, data={})
        if done < 3:
            assert (after.status, after.data["trace"]) == (InstanceStatus.RUNNING, ["before"])
            assert len(after.tasks) == 3 - done
    assert (after.status, after.data["trace"]) == (InstanceStatus.COMPLETED, ["before", "after"])
    assert after.data["docs"] == ["id", "payslip", "bill"]
    assert steps.history(instance_id) == [
        ("instance_started", None),
        ("data_changed", "before"),
        *[("task_created", "check")] * 3,
        *[("task_completed", "check")] * 3,
        ("data_changed", "after"),
        ("end_event_reached", "end"),
        ("instance_completed", None),
    ]


def test_the_item_of_a_parallel_multi_instance_stays_its_own(steps: Steps) -> None:
    """The last instance's item was left in the process data as ``doc`` (fixed in
    a60ee72: multi-instance items are local to their instance)."""
    steps.deploy("documents", each_document("documents"))
    instance_id = started(steps, "documents", data={"trace": [], "docs": ["id", "payslip"]})
    for item in ("id", "payslip"):
        with steps.engine() as engine:
            [task] = [
                t
                for t in engine.instances.get(instance_id).tasks
                if engine.tasks.data(t.id)["doc"] == item
            ]
            done = engine.tasks.complete(task.id, user="ann", groups=GROUPS, data={})
    assert done.status == InstanceStatus.COMPLETED
    assert "doc" not in done.data


def votes(key: str, *, sequential: bool, count: int) -> str:
    flag = "true" if sequential else "false"
    loop = (
        f'<bpmn:multiInstanceLoopCharacteristics isSequential="{flag}">'
        f"<bpmn:loopCardinality>{count}</bpmn:loopCardinality>"
        "<bpmn:completionCondition>approved</bpmn:completionCondition>"
        "</bpmn:multiInstanceLoopCharacteristics>"
    )
    return definitions(
        process(
            key,
            start(),
            script("before"),
            user("vote", inner=loop),
            script("after"),
            end(),
            flows("start>before", "before>vote", "vote>after", "after>end"),
        )
    )


def test_a_completion_condition_ends_a_sequential_multi_instance_early(steps: Steps) -> None:
    steps.deploy("votes", votes("votes", sequential=True, count=5))
    instance_id = started(steps, "votes", data={"trace": [], "approved": False})
    first = steps.complete(instance_id, "vote", {"approved": False})
    assert (first.status, [t.element_id for t in first.tasks]) == (
        InstanceStatus.RUNNING,
        ["vote"],
    )
    assert first.data["trace"] == ["before"]
    second = steps.complete(instance_id, "vote", {"approved": True})
    assert (second.status, second.tasks) == (InstanceStatus.COMPLETED, ())
    assert second.data["trace"] == ["before", "after"]
    assert steps.history(instance_id) == [
        ("instance_started", None),
        ("data_changed", "before"),
        ("task_created", "vote"),
        ("task_completed", "vote"),
        ("task_created", "vote"),
        ("task_completed", "vote"),
        ("data_changed", "after"),
        ("end_event_reached", "end"),
        ("instance_completed", None),
    ]


def test_a_completion_condition_cancels_the_rest_of_a_parallel_multi_instance(
    steps: Steps,
) -> None:
    steps.deploy("votes", votes("votes", sequential=False, count=3))
    instance_id = started(steps, "votes", data={"trace": [], "approved": False})
    with steps.engine() as engine:
        first, second, third = (t.id for t in engine.instances.get(instance_id).tasks)
    with steps.engine() as engine:
        after = engine.tasks.complete(second, user="ann", groups=GROUPS, data={"approved": False})
    assert sorted(t.id for t in after.tasks) == sorted([first, third])
    assert after.data["trace"] == ["before"]
    with steps.engine() as engine:
        done = engine.tasks.complete(first, user="ann", groups=GROUPS, data={"approved": True})
    assert (done.status, done.tasks) == (InstanceStatus.COMPLETED, ())
    assert done.data["trace"] == ["before", "after"]
    assert steps.history(instance_id) == [
        ("instance_started", None),
        ("data_changed", "before"),
        *[("task_created", "vote")] * 3,
        ("task_completed", "vote"),
        ("task_completed", "vote"),
        ("task_cancelled", "vote"),
        ("data_changed", "after"),
        ("end_event_reached", "end"),
        ("instance_completed", None),
    ]
