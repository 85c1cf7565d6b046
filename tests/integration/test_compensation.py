"""Compensation on both backends (issue 10): a compensation boundary event names the
handler (``isForCompensation``, reached by an association) that undoes its activity; a
compensation throw event (intermediate or end) runs the handlers of the completed
activities of its scope, newest first, or of its ``activityRef`` alone, and goes on when
they finished.

As in ``test_bpmn_semantics.py`` (whose helpers these tests reuse), service tasks record
what ran in ``steps.trace``, every step opens a fresh Engine on the stored state, and each
test asserts the exact order of what ran: the trace and the history.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_bpmn_semantics import T0, Steps, flows, history, process, service

from bankflow import DefinitionError, Engine, InstanceStatus

CS = ["cs"]
RECORDERS = (
    "book_hotel",
    "book_flight",
    "charge",
    "undo_hotel",
    "undo_flight",
    "undo_charge",
    "notify",
    "inner",
    "undo_inner",
    "after",
)


class Trace(Steps):
    """``Steps`` whose service handlers record the ids this file's diagrams use."""

    def engine(self) -> Engine:
        engine = super().engine()
        for name in RECORDERS:
            engine.services.register(name, self._recorder(name))
        return engine

    def _recorder(self, name: str) -> Any:
        def record(data: dict[str, Any]) -> dict[str, Any]:
            self.trace.append(name)
            return {"count": data.get("count", 0) + 1}

        return record


@pytest.fixture
def steps(db_url: str, tmp_path: Path) -> Trace:
    return Trace(db_url, tmp_path)


def compensable(activity: str, handler: str, *, user: bool = False) -> str:
    """Service task ``activity`` with a compensation boundary event whose handler is the
    service task ``handler`` (or a user task of group cs, with ``user``); the association
    between them is ``undone_by``, drawn after the scope's flow elements (the schema
    wants artifacts last)."""
    if user:
        undo = (
            f'<bpmn:userTask id="{handler}" isForCompensation="true" camunda:candidateGroups="cs"/>'
        )
    else:
        undo = (
            f'<bpmn:serviceTask id="{handler}" isForCompensation="true" '
            f'camunda:delegateExpression="${{{handler}}}"/>'
        )
    return (
        service(activity)
        + f'<bpmn:boundaryEvent id="{activity}_compensation" attachedToRef="{activity}">'
        "<bpmn:compensateEventDefinition/></bpmn:boundaryEvent>" + undo
    )


def undone_by(activity: str, handler: str) -> str:
    return (
        f'<bpmn:association id="{activity}_undone_by" associationDirection="One" '
        f'sourceRef="{activity}_compensation" targetRef="{handler}"/>'
    )


def compensate_end(element_id: str = "compensate", activity: str | None = None) -> str:
    ref = f' activityRef="{activity}"' if activity else ""
    return (
        f'<bpmn:endEvent id="{element_id}"><bpmn:compensateEventDefinition{ref}/></bpmn:endEvent>'
    )


def compensate_throw(element_id: str = "compensate", activity: str | None = None) -> str:
    ref = f' activityRef="{activity}"' if activity else ""
    return (
        f'<bpmn:intermediateThrowEvent id="{element_id}">'
        f"<bpmn:compensateEventDefinition{ref}/></bpmn:intermediateThrowEvent>"
    )


def compensated(engine: Engine, instance_id: str) -> list[tuple[str | None, Any]]:
    """(activity, handler) of each ``activity_compensated`` event, in order."""
    return [
        (e.element_id, (e.data or {}).get("handler"))
        for e in engine.history.for_instance(instance_id)
        if e.type == "activity_compensated"
    ]


def run(steps: Trace, key: str, source: str, data: dict[str, Any] | None = None) -> str:
    steps.deploy(key, source)
    with steps.engine() as engine:
        report = engine.definitions.validate(steps.tmp_path / f"{key}.bpmn")
        assert [d for d in report.diagnostics if d.severity.value == "error"] == []
        return engine.instances.start(key, business_key="T-1", data=data or {}).id


# -- 1. an end event compensates every completed activity, newest first -----------------------

TRIP = process(
    "trip",
    '<bpmn:startEvent id="start"/>'
    + compensable("book_hotel", "undo_hotel")
    + compensable("book_flight", "undo_flight")
    + service("charge")
    + compensate_end()
    + flows("start>book_hotel", "book_hotel>book_flight", "book_flight>charge", "charge>compensate")
    + undone_by("book_hotel", "undo_hotel")
    + undone_by("book_flight", "undo_flight"),
)


def test_an_end_event_compensates_completed_activities_in_reverse_order(steps: Trace) -> None:
    instance_id = run(steps, "trip", TRIP, {"count": 0})
    assert steps.trace == ["book_hotel", "book_flight", "charge", "undo_flight", "undo_hotel"]
    with steps.engine() as engine:
        done = engine.instances.get(instance_id)
        assert (done.status, done.failure) == (InstanceStatus.COMPLETED, None)
        # Handlers read and write the process variables like any task.
        assert done.data == {"count": 5}
        assert history(engine, instance_id) == [
            ("instance_started", None),
            ("activity_compensated", "book_flight"),
            ("activity_compensated", "book_hotel"),
            ("data_changed", "book_hotel"),
            ("data_changed", "book_flight"),
            ("data_changed", "charge"),
            ("data_changed", "undo_flight"),
            ("data_changed", "undo_hotel"),
            ("end_event_reached", "compensate"),
            ("instance_completed", None),
        ]
        assert compensated(engine, instance_id) == [
            ("book_flight", "undo_flight"),
            ("book_hotel", "undo_hotel"),
        ]


# -- 2. activityRef compensates that activity alone ------------------------------------------

ONE = process(
    "one",
    '<bpmn:startEvent id="start"/>'
    + compensable("book_hotel", "undo_hotel")
    + compensable("book_flight", "undo_flight")
    + compensate_throw(activity="book_hotel")
    + service("after")
    + '<bpmn:endEvent id="end"/>'
    + flows(
        "start>book_hotel",
        "book_hotel>book_flight",
        "book_flight>compensate",
        "compensate>after",
        "after>end",
    )
    + undone_by("book_hotel", "undo_hotel")
    + undone_by("book_flight", "undo_flight"),
)


def test_activity_ref_compensates_only_that_activity(steps: Trace) -> None:
    instance_id = run(steps, "one", ONE)
    assert steps.trace == ["book_hotel", "book_flight", "undo_hotel", "after"]
    with steps.engine() as engine:
        assert engine.instances.get(instance_id).status == InstanceStatus.COMPLETED
        assert compensated(engine, instance_id) == [("book_hotel", "undo_hotel")]


# -- 3. an activity not reached is not compensated -------------------------------------------

NOT_REACHED = process(
    "not_reached",
    '<bpmn:startEvent id="start"/>'
    + compensable("book_hotel", "undo_hotel")
    + '<bpmn:exclusiveGateway id="fly" default="no_flight"/>'
    + compensable("book_flight", "undo_flight")
    + '<bpmn:exclusiveGateway id="joined"/>'
    + compensate_end()
    + flows("start>book_hotel", "book_hotel>fly", "book_flight>joined", "joined>compensate")
    + '<bpmn:sequenceFlow id="flight" sourceRef="fly" targetRef="book_flight">'
    "<bpmn:conditionExpression>by_air</bpmn:conditionExpression></bpmn:sequenceFlow>"
    '<bpmn:sequenceFlow id="no_flight" sourceRef="fly" targetRef="joined"/>'
    + undone_by("book_hotel", "undo_hotel")
    + undone_by("book_flight", "undo_flight"),
)


def test_an_activity_not_reached_is_not_compensated(steps: Trace) -> None:
    instance_id = run(steps, "not_reached", NOT_REACHED, {"by_air": False})
    assert steps.trace == ["book_hotel", "undo_hotel"]
    with steps.engine() as engine:
        assert engine.instances.get(instance_id).status == InstanceStatus.COMPLETED
        assert compensated(engine, instance_id) == [("book_hotel", "undo_hotel")]


# -- 4. a user task handler waits in the inbox, across a reload ------------------------------

BY_HAND = process(
    "by_hand",
    '<bpmn:startEvent id="start"/>'
    + compensable("book_hotel", "undo_hotel")
    + compensable("charge", "refund", user=True)
    + compensate_throw()
    + service("after")
    + '<bpmn:endEvent id="end"/>'
    + flows(
        "start>book_hotel",
        "book_hotel>charge",
        "charge>compensate",
        "compensate>after",
        "after>end",
    )
    + undone_by("book_hotel", "undo_hotel")
    + undone_by("charge", "refund"),
)


def test_a_user_task_handler_waits_in_the_inbox_then_the_throw_goes_on(steps: Trace) -> None:
    instance_id = run(steps, "by_hand", BY_HAND)
    assert steps.trace == ["book_hotel", "charge"]
    with steps.engine() as engine:
        waiting = engine.instances.get(instance_id)
        assert waiting.status == InstanceStatus.RUNNING
        [refund] = waiting.tasks
        assert refund.element_id == "refund"
        [listed] = engine.tasks.query(groups=CS)
        assert listed.id == refund.id
    with steps.engine() as engine:
        done = engine.tasks.complete(refund.id, user="ann", groups=CS, data={"refunded": True})
        assert (done.status, done.failure) == (InstanceStatus.COMPLETED, None)
    assert steps.trace == ["book_hotel", "charge", "undo_hotel", "after"]
    with steps.engine() as engine:
        assert engine.instances.get(instance_id).data["refunded"] is True
        assert history(engine, instance_id) == [
            ("instance_started", None),
            ("data_changed", "book_hotel"),
            ("data_changed", "charge"),
            ("task_created", "refund"),
            ("task_completed", "refund"),
            ("activity_compensated", "charge"),
            ("activity_compensated", "book_hotel"),
            ("data_changed", "undo_hotel"),
            ("data_changed", "after"),
            ("end_event_reached", "end"),
            ("instance_completed", None),
        ]


# -- 5. compensation in a sub-process stays in that scope ------------------------------------

SCOPED = process(
    "scoped",
    '<bpmn:startEvent id="start"/>'
    + compensable("book_hotel", "undo_hotel")
    + '<bpmn:subProcess id="sub"><bpmn:startEvent id="sub_start"/>'
    + compensable("inner", "undo_inner")
    + compensate_end("sub_compensate")
    + flows("sub_start>inner", "inner>sub_compensate")
    + undone_by("inner", "undo_inner")
    + "</bpmn:subProcess>"
    + service("after")
    + '<bpmn:endEvent id="end"/>'
    + flows("start>book_hotel", "book_hotel>sub", "sub>after", "after>end")
    + undone_by("book_hotel", "undo_hotel"),
)


def test_compensation_in_a_sub_process_compensates_only_its_scope(steps: Trace) -> None:
    instance_id = run(steps, "scoped", SCOPED)
    assert steps.trace == ["book_hotel", "inner", "undo_inner", "after"]
    with steps.engine() as engine:
        assert engine.instances.get(instance_id).status == InstanceStatus.COMPLETED
        assert compensated(engine, instance_id) == [("inner", "undo_inner")]


# -- 6. an activity that ran several times is compensated once per completion ----------------

LOOP = process(
    "loop",
    '<bpmn:startEvent id="start"/>'
    + compensable("charge", "undo_charge")
    + '<bpmn:exclusiveGateway id="again" default="enough"/>'
    + compensate_end()
    + flows("start>charge", "charge>again")
    + '<bpmn:sequenceFlow id="more" sourceRef="again" targetRef="charge">'
    "<bpmn:conditionExpression>count &lt; 3</bpmn:conditionExpression></bpmn:sequenceFlow>"
    '<bpmn:sequenceFlow id="enough" sourceRef="again" targetRef="compensate"/>'
    + undone_by("charge", "undo_charge"),
)


def test_a_loop_activity_is_compensated_once_per_completion(steps: Trace) -> None:
    instance_id = run(steps, "loop", LOOP, {"count": 0})
    assert steps.trace == ["charge"] * 3 + ["undo_charge"] * 3
    with steps.engine() as engine:
        done = engine.instances.get(instance_id)
        assert (done.status, done.data) == (InstanceStatus.COMPLETED, {"count": 6})
        events = [
            e for e in engine.history.for_instance(instance_id) if e.type == "activity_compensated"
        ]
        # Newest completion first: each event names the completion it undid.
        assert len({(e.data or {})["activity_task_id"] for e in events}) == 3
        assert [e.element_id for e in events] == ["charge"] * 3


# -- 7. a script handler sees and changes the process variables -----------------------------

SCRIPTED = process(
    "scripted",
    '<bpmn:startEvent id="start"/>'
    + service("book_hotel")
    + '<bpmn:boundaryEvent id="book_hotel_compensation" attachedToRef="book_hotel">'
    "<bpmn:compensateEventDefinition/></bpmn:boundaryEvent>"
    '<bpmn:scriptTask id="undo_hotel" isForCompensation="true" scriptFormat="python">'
    '<bpmn:script>undone = undone + ["hotel " + booking]</bpmn:script></bpmn:scriptTask>'
    '<bpmn:scriptTask id="set_booking" scriptFormat="python">'
    '<bpmn:script>booking = "H-" + str(count)</bpmn:script></bpmn:scriptTask>'
    + compensate_throw()
    + service("after")
    + '<bpmn:endEvent id="end"/>'
    + flows(
        "start>book_hotel",
        "book_hotel>set_booking",
        "set_booking>compensate",
        "compensate>after",
        "after>end",
    )
    + undone_by("book_hotel", "undo_hotel"),
)


def test_a_script_handler_reads_and_writes_the_process_variables(steps: Trace) -> None:
    instance_id = run(steps, "scripted", SCRIPTED, {"count": 0, "undone": []})
    assert steps.trace == ["book_hotel", "after"]
    with steps.engine() as engine:
        done = engine.instances.get(instance_id)
        assert (done.status, done.failure) == (InstanceStatus.COMPLETED, None)
        assert done.data == {"count": 2, "undone": ["hotel H-1"], "booking": "H-1"}
        assert compensated(engine, instance_id) == [("book_hotel", "undo_hotel")]


# -- 8. a compensation event sub-process runs when its sub-process is compensated ----------

EVENT_SUB_PROCESS = process(
    "event_sub_process",
    '<bpmn:startEvent id="start"/>'
    '<bpmn:subProcess id="sub"><bpmn:startEvent id="sub_start"/>'
    + compensable("inner", "undo_inner")
    + '<bpmn:endEvent id="sub_end"/>'
    + flows("sub_start>inner", "inner>sub_end")
    + '<bpmn:subProcess id="on_compensation" triggeredByEvent="true">'
    '<bpmn:startEvent id="compensating"><bpmn:compensateEventDefinition/></bpmn:startEvent>'
    + service("notify")
    + compensate_throw("undo_inside")
    + '<bpmn:endEvent id="compensated"/>'
    + flows("compensating>notify", "notify>undo_inside", "undo_inside>compensated")
    + "</bpmn:subProcess>"
    + undone_by("inner", "undo_inner")
    + "</bpmn:subProcess>"
    + compensable("book_hotel", "undo_hotel")
    + compensate_end()
    + flows("start>sub", "sub>book_hotel", "book_hotel>compensate")
    + undone_by("book_hotel", "undo_hotel"),
)


@pytest.mark.parametrize("by_hand", [False, True], ids=["service", "user-task"])
def test_a_compensation_event_sub_process_runs_when_its_sub_process_is_compensated(
    steps: Trace, by_hand: bool
) -> None:
    """It does not run when the sub-process runs; when the sub-process is compensated
    (newest first: after the hotel), it runs in its place, and its throw event compensates
    what completed inside the sub-process. ``by_hand``: it starts with a user task, which
    waits in the inbox across a reload."""
    source = EVENT_SUB_PROCESS
    if by_hand:
        source = source.replace(
            '<bpmn:startEvent id="compensating">',
            '<bpmn:userTask id="confirm" camunda:candidateGroups="cs"/>'
            '<bpmn:startEvent id="compensating">',
        ).replace(flows("compensating>notify"), flows("compensating>confirm", "confirm>notify"))
    instance_id = run(steps, "event_sub_process", source)
    if by_hand:
        assert steps.trace == ["inner", "book_hotel", "undo_hotel"]
        with steps.engine() as engine:
            [confirm] = engine.instances.get(instance_id).tasks
            assert confirm.element_id == "confirm"
        with steps.engine() as engine:
            engine.tasks.complete(confirm.id, user="ann", groups=CS)
    assert steps.trace == ["inner", "book_hotel", "undo_hotel", "notify", "undo_inner"]
    with steps.engine() as engine:
        done = engine.instances.get(instance_id)
        assert (done.status, done.failure) == (InstanceStatus.COMPLETED, None)
        assert compensated(engine, instance_id) == [
            ("book_hotel", "undo_hotel"),
            ("inner", "undo_inner"),
            ("sub", "on_compensation"),
        ]


# -- 9. what bankflow does not compensate yet is refused at deploy ---------------------------

PROCESS_LEVEL = process(
    "refused",
    '<bpmn:startEvent id="start"/>'
    + compensable("book_hotel", "undo_hotel")
    + '<bpmn:endEvent id="end"/>'
    + flows("start>book_hotel", "book_hotel>end")
    + '<bpmn:subProcess id="on_compensation" triggeredByEvent="true">'
    '<bpmn:startEvent id="compensating"><bpmn:compensateEventDefinition/></bpmn:startEvent>'
    + service("notify")
    + '<bpmn:endEvent id="compensated"/>'
    + flows("compensating>notify", "notify>compensated")
    + "</bpmn:subProcess>"
    + undone_by("book_hotel", "undo_hotel"),
)


def test_a_compensation_event_sub_process_of_a_process_is_refused_by_name(steps: Trace) -> None:
    """It would run when the process is compensated from outside, which never happens."""
    path = steps.tmp_path / "refused.bpmn"
    path.write_text(PROCESS_LEVEL)
    with steps.engine() as engine:
        report = engine.definitions.validate(path)
        errors = [(d.rule, d.element_id) for d in report.diagnostics if d.severity.value == "error"]
        assert errors == [("unsupported", "compensating")]
        with pytest.raises(DefinitionError, match="1 error"):
            engine.definitions.deploy(path)
    with steps.engine() as engine:
        assert engine.definitions.list() == []


# -- 10. compensating a completed sub-process undoes what completed inside it -----------------

NESTED = process(
    "nested",
    '<bpmn:startEvent id="start"/>'
    + compensable("book_hotel", "undo_hotel")
    + '<bpmn:subProcess id="sub"><bpmn:startEvent id="sub_start"/>'
    + compensable("inner", "undo_inner", user=True)
    + compensable("book_flight", "undo_flight")
    + '<bpmn:endEvent id="sub_end"/>'
    + flows("sub_start>inner", "inner>book_flight", "book_flight>sub_end")
    + undone_by("inner", "undo_inner")
    + undone_by("book_flight", "undo_flight")
    + "</bpmn:subProcess>"
    + service("charge")
    + "{throw}"
    + service("after")
    + '<bpmn:endEvent id="end"/>'
    + flows("start>book_hotel", "book_hotel>sub", "sub>charge", "charge>compensate")
    + flows("compensate>after", "after>end")
    + undone_by("book_hotel", "undo_hotel"),
)


@pytest.mark.parametrize("only_the_sub_process", [False, True], ids=["all", "activity-ref"])
def test_compensating_a_sub_process_undoes_its_inner_activities_newest_first(
    steps: Trace, only_the_sub_process: bool
) -> None:
    """The sub-process has no handler of its own: its inner handlers run in its place, in
    reverse order; the inner user-task handler waits across a reload."""
    throw = compensate_throw(activity="sub" if only_the_sub_process else None)
    instance_id = run(steps, "nested", NESTED.replace("{throw}", throw))
    assert steps.trace == ["book_hotel", "inner", "book_flight", "charge", "undo_flight"]
    with steps.engine() as engine:
        [undo] = engine.instances.get(instance_id).tasks
        assert undo.element_id == "undo_inner"
    with steps.engine() as engine:
        done = engine.tasks.complete(undo.id, user="ann", groups=CS)
        assert (done.status, done.failure) == (InstanceStatus.COMPLETED, None)
    undone = [] if only_the_sub_process else ["undo_hotel"]
    assert steps.trace == [
        "book_hotel",
        "inner",
        "book_flight",
        "charge",
        "undo_flight",
        *undone,
        "after",
    ]
    with steps.engine() as engine:
        expected = [("book_flight", "undo_flight"), ("inner", "undo_inner")]
        if not only_the_sub_process:
            expected.append(("book_hotel", "undo_hotel"))
        assert compensated(engine, instance_id) == expected


# -- 11. a throw in an error event sub-process compensates the scope around it --------------

ON_ERROR = process(
    "on_error",
    '<bpmn:startEvent id="start"/>'
    + compensable("book_hotel", "undo_hotel")
    + compensable("book_flight", "undo_flight")
    + '<bpmn:endEvent id="rejected"><bpmn:errorEventDefinition errorRef="rejected_error"/>'
    "</bpmn:endEvent>"
    + flows("start>book_hotel", "book_hotel>book_flight", "book_flight>rejected")
    + '<bpmn:subProcess id="on_rejection" triggeredByEvent="true">'
    '<bpmn:startEvent id="caught"><bpmn:errorEventDefinition errorRef="rejected_error"/>'
    "</bpmn:startEvent>"
    + compensate_throw("undo_bookings")
    + service("notify")
    + '<bpmn:endEvent id="handled"/>'
    + flows("caught>undo_bookings", "undo_bookings>notify", "notify>handled")
    + "</bpmn:subProcess>"
    + undone_by("book_hotel", "undo_hotel")
    + undone_by("book_flight", "undo_flight"),
)


def test_a_throw_in_an_error_event_sub_process_compensates_the_process(steps: Trace) -> None:
    instance_id = run(steps, "on_error", ON_ERROR)
    assert steps.trace == ["book_hotel", "book_flight", "undo_flight", "undo_hotel", "notify"]
    with steps.engine() as engine:
        done = engine.instances.get(instance_id)
        assert (done.status, done.failure) == (InstanceStatus.COMPLETED, None)
        assert compensated(engine, instance_id) == [
            ("book_flight", "undo_flight"),
            ("book_hotel", "undo_hotel"),
        ]


# -- 12. a handler may be an embedded sub-process or a call activity ------------------------

REFUND = process(
    "refund",
    '<bpmn:startEvent id="refund_start"/>'
    '<bpmn:userTask id="confirm" camunda:candidateGroups="cs"/>'
    + service("undo_charge")
    + '<bpmn:endEvent id="refund_end"/>'
    + flows("refund_start>confirm", "confirm>undo_charge", "undo_charge>refund_end"),
)
SUB_PROCESS_HANDLER = (
    '<bpmn:subProcess id="refund_here" isForCompensation="true">'
    '<bpmn:startEvent id="refund_start"/>'
    '<bpmn:userTask id="confirm" camunda:candidateGroups="cs"/>'
    + service("undo_charge")
    + '<bpmn:endEvent id="refund_end"/>'
    + flows("refund_start>confirm", "confirm>undo_charge", "undo_charge>refund_end")
    + "</bpmn:subProcess>"
)
CALL_HANDLER = (
    '<bpmn:callActivity id="refund_here" isForCompensation="true" calledElement="refund"/>'
)


def with_handler(handler: str) -> str:
    return process(
        "charged",
        '<bpmn:startEvent id="start"/>'
        + service("charge")
        + '<bpmn:boundaryEvent id="charge_compensation" attachedToRef="charge">'
        "<bpmn:compensateEventDefinition/></bpmn:boundaryEvent>"
        + handler
        + compensate_throw()
        + service("after")
        + '<bpmn:endEvent id="end"/>'
        + flows("start>charge", "charge>compensate", "compensate>after", "after>end")
        + undone_by("charge", "refund_here"),
    )


@pytest.mark.parametrize("kind", ["sub-process", "call-activity"])
def test_a_handler_may_be_a_sub_process_or_a_call_activity(steps: Trace, kind: str) -> None:
    """Its user task waits in the inbox across a reload; the throw goes on after it."""
    if kind == "call-activity":
        (steps.tmp_path / "refund.bpmn").write_text(REFUND)
        with steps.engine() as engine:
            engine.definitions.deploy(steps.tmp_path / "refund.bpmn")
    handler = CALL_HANDLER if kind == "call-activity" else SUB_PROCESS_HANDLER
    instance_id = run(steps, "charged", with_handler(handler))
    assert steps.trace == ["charge"]
    with steps.engine() as engine:
        [confirm] = engine.instances.get(instance_id).tasks
        assert confirm.element_id == "confirm"
    with steps.engine() as engine:
        done = engine.tasks.complete(confirm.id, user="ann", groups=CS)
        assert (done.status, done.failure) == (InstanceStatus.COMPLETED, None)
    assert steps.trace == ["charge", "undo_charge", "after"]
    with steps.engine() as engine:
        assert compensated(engine, instance_id) == [("charge", "refund_here")]
        assert history(engine, instance_id) == [
            ("instance_started", None),
            ("data_changed", "charge"),
            ("task_created", "confirm"),
            ("task_completed", "confirm"),
            ("activity_compensated", "charge"),
            ("data_changed", "undo_charge"),
            ("end_event_reached", "refund_end"),
            ("data_changed", "after"),
            ("end_event_reached", "end"),
            ("instance_completed", None),
        ]


# -- 13. each instance of a multi-instance activity is compensated, with its locals ---------


def multi_instance(sequential: bool) -> str:
    flag = "true" if sequential else "false"
    loop = (
        f'<bpmn:multiInstanceLoopCharacteristics isSequential="{flag}">'
        "<bpmn:loopCardinality>3</bpmn:loopCardinality></bpmn:multiInstanceLoopCharacteristics>"
    )
    return process(
        "instances",
        '<bpmn:startEvent id="start"/>'
        f'<bpmn:scriptTask id="charge" scriptFormat="python">{loop}'
        "<bpmn:script>charged = charged + [loopCounter]</bpmn:script></bpmn:scriptTask>"
        '<bpmn:boundaryEvent id="charge_compensation" attachedToRef="charge">'
        "<bpmn:compensateEventDefinition/></bpmn:boundaryEvent>"
        '<bpmn:scriptTask id="undo_charge" isForCompensation="true" scriptFormat="python">'
        "<bpmn:script>undone = undone + [loopCounter]</bpmn:script></bpmn:scriptTask>"
        # A sub-process run twice: what completed in each instance, with its loopCounter.
        '<bpmn:subProcess id="sub"><bpmn:multiInstanceLoopCharacteristics isSequential="true">'
        "<bpmn:loopCardinality>2</bpmn:loopCardinality></bpmn:multiInstanceLoopCharacteristics>"
        '<bpmn:startEvent id="sub_start"/>'
        '<bpmn:scriptTask id="inner" scriptFormat="python"><bpmn:script>x = 1</bpmn:script>'
        "</bpmn:scriptTask>"
        '<bpmn:boundaryEvent id="inner_compensation" attachedToRef="inner">'
        "<bpmn:compensateEventDefinition/></bpmn:boundaryEvent>"
        '<bpmn:scriptTask id="undo_inner" isForCompensation="true" scriptFormat="python">'
        '<bpmn:script>undone = undone + ["inner " + str(loopCounter)]</bpmn:script>'
        "</bpmn:scriptTask>"
        '<bpmn:endEvent id="sub_end"/>'
        + flows("sub_start>inner", "inner>sub_end")
        + undone_by("inner", "undo_inner")
        + "</bpmn:subProcess>"
        + compensate_end()
        + flows("start>charge", "charge>sub", "sub>compensate")
        + undone_by("charge", "undo_charge"),
    )


@pytest.mark.parametrize("sequential", [True, False], ids=["sequential", "parallel"])
def test_each_instance_of_a_multi_instance_activity_is_compensated(
    steps: Trace, sequential: bool
) -> None:
    """Newest first; each handler sees the loopCounter of the instance it undoes (a local
    variable, never written to the process)."""
    instance_id = run(steps, "instances", multi_instance(sequential), {"charged": [], "undone": []})
    with steps.engine() as engine:
        done = engine.instances.get(instance_id)
        assert (done.status, done.failure) == (InstanceStatus.COMPLETED, None)
        assert done.data == {
            "charged": [0, 1, 2],
            "undone": ["inner 1", "inner 0", 2, 1, 0],
            "x": 1,
        }
        assert compensated(engine, instance_id) == [
            ("inner", "undo_inner"),
            ("inner", "undo_inner"),
            ("charge", "undo_charge"),
            ("charge", "undo_charge"),
            ("charge", "undo_charge"),
        ]


# -- 14. a cancelled transaction compensates what completed in it first ---------------------

TRANSACTION = process(
    "booking",
    '<bpmn:startEvent id="start"/>'
    '<bpmn:transaction id="trip"><bpmn:startEvent id="trip_start"/>'
    + compensable("book_hotel", "undo_hotel")
    + compensable("book_flight", "undo_flight")
    + '<bpmn:exclusiveGateway id="paid" default="ok"/>'
    '<bpmn:endEvent id="cancelled"><bpmn:cancelEventDefinition/></bpmn:endEvent>'
    '<bpmn:endEvent id="trip_end"/>'
    + flows("trip_start>book_hotel", "book_hotel>book_flight", "book_flight>paid")
    + '<bpmn:sequenceFlow id="declined" sourceRef="paid" targetRef="cancelled">'
    "<bpmn:conditionExpression>card_declined</bpmn:conditionExpression></bpmn:sequenceFlow>"
    '<bpmn:sequenceFlow id="ok" sourceRef="paid" targetRef="trip_end"/>'
    + undone_by("book_hotel", "undo_hotel")
    + undone_by("book_flight", "undo_flight")
    + "</bpmn:transaction>"
    '<bpmn:boundaryEvent id="on_cancel" attachedToRef="trip"><bpmn:cancelEventDefinition/>'
    "</bpmn:boundaryEvent>"
    + service("notify")
    + '<bpmn:endEvent id="cancel_end"/>'
    + service("after")
    + compensate_end()
    + flows("start>trip", "on_cancel>notify", "notify>cancel_end", "trip>after")
    + flows("after>compensate"),
)


@pytest.mark.parametrize("declined", [True, False], ids=["cancelled", "compensated-later"])
def test_a_transaction_compensates_when_cancelled_or_later_as_a_sub_process(
    steps: Trace, declined: bool
) -> None:
    """Cancelled: its completed activities are compensated, newest first, then the cancel
    boundary event's path runs. Completed: a later throw compensates what completed in it,
    as for a sub-process."""
    instance_id = run(steps, "booking", TRANSACTION, {"card_declined": declined})
    booked = ["book_hotel", "book_flight"]
    then = ["notify"] if declined else ["after"]
    assert steps.trace == [*booked, *([] if declined else then), "undo_flight", "undo_hotel"] + (
        then if declined else []
    )
    with steps.engine() as engine:
        done = engine.instances.get(instance_id)
        assert (done.status, done.failure) == (InstanceStatus.COMPLETED, None)
        assert compensated(engine, instance_id) == [
            ("book_flight", "undo_flight"),
            ("book_hotel", "undo_hotel"),
        ]


# -- 15. handlers that are jobs: an external task and an asynchronous service task ----------

JOBS = process(
    "jobs",
    '<bpmn:startEvent id="start"/>'
    + service("book_hotel")
    + '<bpmn:boundaryEvent id="book_hotel_compensation" attachedToRef="book_hotel">'
    "<bpmn:compensateEventDefinition/></bpmn:boundaryEvent>"
    '<bpmn:serviceTask id="undo_hotel" isForCompensation="true" camunda:asyncBefore="true" '
    'camunda:delegateExpression="${undo_hotel}"/>'
    + service("book_flight")
    + '<bpmn:boundaryEvent id="book_flight_compensation" attachedToRef="book_flight">'
    "<bpmn:compensateEventDefinition/></bpmn:boundaryEvent>"
    '<bpmn:serviceTask id="undo_flight" isForCompensation="true" camunda:type="external" '
    'camunda:topic="airline_refunds"/>'
    + compensate_throw()
    + service("after")
    + '<bpmn:endEvent id="end"/>'
    + flows(
        "start>book_hotel",
        "book_hotel>book_flight",
        "book_flight>compensate",
        "compensate>after",
        "after>end",
    )
    + undone_by("book_hotel", "undo_hotel")
    + undone_by("book_flight", "undo_flight"),
)


def test_handlers_may_be_external_tasks_and_asynchronous_jobs(steps: Trace) -> None:
    """The throw waits for the external worker, then for the job, in that order."""
    instance_id = run(steps, "jobs", JOBS)
    assert steps.trace == ["book_hotel", "book_flight"]
    with steps.engine() as engine:
        assert [(j.kind, j.element_id) for j in engine.jobs.list()] == [("external", "undo_flight")]
        [refund] = engine.external.fetch_and_lock(["airline_refunds"], worker_id="w1")
        engine.external.complete(refund.id, worker_id="w1", variables={"refunded": True})
    with steps.engine() as engine:
        assert [(j.kind, j.element_id) for j in engine.jobs.list()] == [("service", "undo_hotel")]
        engine.jobs.run_due(now=T0)
    assert steps.trace == ["book_hotel", "book_flight", "undo_hotel", "after"]
    with steps.engine() as engine:
        done = engine.instances.get(instance_id)
        assert (done.status, done.data["refunded"]) == (InstanceStatus.COMPLETED, True)
        assert compensated(engine, instance_id) == [
            ("book_flight", "undo_flight"),
            ("book_hotel", "undo_hotel"),
        ]


# -- 16. waitForCompletion="false": the throw goes on while the handlers run ----------------


def test_a_throw_that_does_not_wait_goes_on_while_its_handlers_run(steps: Trace) -> None:
    """The path after it runs at once; the handlers still run one after the other, newest
    first (the user-task handler across a reload), and the instance ends after them."""
    source = BY_HAND.replace(
        "<bpmn:compensateEventDefinition/></bpmn:intermediateThrowEvent>",
        '<bpmn:compensateEventDefinition waitForCompletion="false"/></bpmn:intermediateThrowEvent>',
    )
    instance_id = run(steps, "by_hand", source)
    assert steps.trace == ["book_hotel", "charge", "after"]
    with steps.engine() as engine:
        waiting = engine.instances.get(instance_id)
        assert waiting.status == InstanceStatus.RUNNING
        [refund] = waiting.tasks
        assert refund.element_id == "refund"
    with steps.engine() as engine:
        done = engine.tasks.complete(refund.id, user="ann", groups=CS)
        assert (done.status, done.failure) == (InstanceStatus.COMPLETED, None)
    assert steps.trace == ["book_hotel", "charge", "after", "undo_hotel"]
    with steps.engine() as engine:
        assert compensated(engine, instance_id) == [
            ("charge", "refund"),
            ("book_hotel", "undo_hotel"),
        ]
