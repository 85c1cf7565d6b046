"""Jobs on both backends: timers (boundary, intermediate, start), service jobs with
retries, backoff and incidents, and external tasks. Every step opens a fresh Engine on
the stored state (no in-process cache), and time only moves when the test moves the clock.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bankflow import (
    BpmnError,
    ConcurrencyError,
    Engine,
    FixedClock,
    InstanceStatus,
    InvalidData,
    NotFound,
)
from bankflow.models import Job

HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="t">"""
TAIL = "</bpmn:definitions>\n"

ESCALATION = (
    HEAD
    + """
  <bpmn:process id="escalation" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:userTask id="answer" name="Answer" camunda:candidateGroups="cs"/>
    <bpmn:boundaryEvent id="deadline" name="48 hours passed" attachedToRef="answer">
      <bpmn:timerEventDefinition><bpmn:timeDuration>PT48H</bpmn:timeDuration>
      </bpmn:timerEventDefinition>
    </bpmn:boundaryEvent>
    <bpmn:userTask id="supervise" name="Supervisor answers" camunda:candidateGroups="supervisor"/>
    <bpmn:endEvent id="answered"/>
    <bpmn:endEvent id="answered_late"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="answer"/>
    <bpmn:sequenceFlow id="f2" sourceRef="answer" targetRef="answered"/>
    <bpmn:sequenceFlow id="f3" sourceRef="deadline" targetRef="supervise"/>
    <bpmn:sequenceFlow id="f4" sourceRef="supervise" targetRef="answered_late"/>
  </bpmn:process>
"""
    + TAIL
)

REMINDER = (
    HEAD
    + """
  <bpmn:process id="reminder" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:userTask id="answer" name="Answer" camunda:candidateGroups="cs"/>
    <bpmn:boundaryEvent id="remind" attachedToRef="answer" cancelActivity="false">
      <bpmn:timerEventDefinition><bpmn:timeCycle>R/PT24H</bpmn:timeCycle>
      </bpmn:timerEventDefinition>
    </bpmn:boundaryEvent>
    <bpmn:serviceTask id="send" name="Send reminder" camunda:delegateExpression="${sendReminder}"/>
    <bpmn:endEvent id="reminded"/>
    <bpmn:endEvent id="answered"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="answer"/>
    <bpmn:sequenceFlow id="f2" sourceRef="answer" targetRef="answered"/>
    <bpmn:sequenceFlow id="f3" sourceRef="remind" targetRef="send"/>
    <bpmn:sequenceFlow id="f4" sourceRef="send" targetRef="reminded"/>
  </bpmn:process>
"""
    + TAIL
)

WAIT = (
    HEAD
    + """
  <bpmn:process id="wait" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:intermediateCatchEvent id="cool_off" name="One hour">
      <bpmn:timerEventDefinition><bpmn:timeDuration>PT1H</bpmn:timeDuration>
      </bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:userTask id="call_back" name="Call back"/>
    <bpmn:endEvent id="end"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="cool_off"/>
    <bpmn:sequenceFlow id="f2" sourceRef="cool_off" targetRef="call_back"/>
    <bpmn:sequenceFlow id="f3" sourceRef="call_back" targetRef="end"/>
  </bpmn:process>
"""
    + TAIL
)

WAIT_UNTIL = (
    HEAD
    + """
  <bpmn:process id="wait_until" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:intermediateCatchEvent id="month_end" name="Month end">
      <bpmn:timerEventDefinition><bpmn:timeDate>2026-11-30T17:00:00Z</bpmn:timeDate>
      </bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:scriptTask id="close" scriptFormat="python"><bpmn:script>closed = True</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:endEvent id="end"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="month_end"/>
    <bpmn:sequenceFlow id="f2" sourceRef="month_end" targetRef="close"/>
    <bpmn:sequenceFlow id="f3" sourceRef="close" targetRef="end"/>
  </bpmn:process>
"""
    + TAIL
)


def hourly(when: str, name: str = "Hourly check", kind: str = "timeCycle") -> str:
    return (
        HEAD
        + f"""
  <bpmn:process id="hourly" name="{name}" isExecutable="true">
    <bpmn:startEvent id="tick">
      <bpmn:timerEventDefinition><bpmn:{kind}>{when}</bpmn:{kind}>
      </bpmn:timerEventDefinition>
    </bpmn:startEvent>
    <bpmn:userTask id="check" name="Check" camunda:candidateGroups="ops"/>
    <bpmn:endEvent id="end"/>
    <bpmn:sequenceFlow id="f1" sourceRef="tick" targetRef="check"/>
    <bpmn:sequenceFlow id="f2" sourceRef="check" targetRef="end"/>
  </bpmn:process>
"""
        + TAIL
    )


CHARGE = (
    HEAD
    + """
  <bpmn:error id="err_funds" name="No funds" errorCode="NO_FUNDS"/>
  <bpmn:process id="charge" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:serviceTask id="debit" name="Debit fee" camunda:asyncBefore="true"
        camunda:delegateExpression="${debitFee}">
      <bpmn:extensionElements>
        <camunda:failedJobRetryTimeCycle>R5/PT5M</camunda:failedJobRetryTimeCycle>
      </bpmn:extensionElements>
    </bpmn:serviceTask>
    <bpmn:boundaryEvent id="no_funds" attachedToRef="debit">
      <bpmn:errorEventDefinition errorRef="err_funds"/>
    </bpmn:boundaryEvent>
    <bpmn:userTask id="collect" name="Collect fee" camunda:candidateGroups="ops"/>
    <bpmn:endEvent id="charged"/>
    <bpmn:endEvent id="collected"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="debit"/>
    <bpmn:sequenceFlow id="f2" sourceRef="debit" targetRef="charged"/>
    <bpmn:sequenceFlow id="f3" sourceRef="no_funds" targetRef="collect"/>
    <bpmn:sequenceFlow id="f4" sourceRef="collect" targetRef="collected"/>
  </bpmn:process>
"""
    + TAIL
)

# No asyncBefore and no retry cycle: a job only because nobody registered the handler
# when the instance reached the task; default retries and backoff.
NOTIFY = (
    HEAD
    + """
  <bpmn:process id="notify" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:serviceTask id="letter" name="Send letter" camunda:class="bank.SendLetter"/>
    <bpmn:endEvent id="end"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="letter"/>
    <bpmn:sequenceFlow id="f2" sourceRef="letter" targetRef="end"/>
  </bpmn:process>
"""
    + TAIL
)

SCREEN = (
    HEAD
    + """
  <bpmn:error id="err_sanctions" name="Sanctions hit" errorCode="SANCTIONS"/>
  <bpmn:process id="screen" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:serviceTask id="check" name="Screen" camunda:type="external"
        camunda:topic="kyc.screen"/>
    <bpmn:boundaryEvent id="sanctions" attachedToRef="check">
      <bpmn:errorEventDefinition errorRef="err_sanctions"/>
    </bpmn:boundaryEvent>
    <bpmn:userTask id="open" name="Open account" camunda:candidateGroups="cs"/>
    <bpmn:userTask id="review" name="Compliance review" camunda:candidateGroups="compliance"/>
    <bpmn:endEvent id="opened"/>
    <bpmn:endEvent id="reviewed"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="check"/>
    <bpmn:sequenceFlow id="f2" sourceRef="check" targetRef="open"/>
    <bpmn:sequenceFlow id="f3" sourceRef="open" targetRef="opened"/>
    <bpmn:sequenceFlow id="f4" sourceRef="sanctions" targetRef="review"/>
    <bpmn:sequenceFlow id="f5" sourceRef="review" targetRef="reviewed"/>
  </bpmn:process>
"""
    + TAIL
)

# Two clerks work in parallel, each with a deadline of their own.
PARALLEL = (
    HEAD
    + """
  <bpmn:process id="parallel" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:parallelGateway id="fork"/>
    <bpmn:userTask id="answer" name="Answer" camunda:candidateGroups="cs"/>
    <bpmn:boundaryEvent id="answer_late" attachedToRef="answer">
      <bpmn:timerEventDefinition><bpmn:timeDuration>PT48H</bpmn:timeDuration>
      </bpmn:timerEventDefinition>
    </bpmn:boundaryEvent>
    <bpmn:userTask id="refund" name="Refund" camunda:candidateGroups="cs"/>
    <bpmn:boundaryEvent id="refund_late" attachedToRef="refund">
      <bpmn:timerEventDefinition><bpmn:timeDuration>PT24H</bpmn:timeDuration>
      </bpmn:timerEventDefinition>
    </bpmn:boundaryEvent>
    <bpmn:userTask id="notes" name="File notes" camunda:candidateGroups="cs"/>
    <bpmn:userTask id="supervise_answer" camunda:candidateGroups="supervisor"/>
    <bpmn:userTask id="supervise_refund" camunda:candidateGroups="supervisor"/>
    <bpmn:endEvent id="e1"/><bpmn:endEvent id="e2"/>
    <bpmn:endEvent id="e3"/><bpmn:endEvent id="e4"/><bpmn:endEvent id="e5"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="fork"/>
    <bpmn:sequenceFlow id="f2" sourceRef="fork" targetRef="answer"/>
    <bpmn:sequenceFlow id="f3" sourceRef="fork" targetRef="refund"/>
    <bpmn:sequenceFlow id="f4" sourceRef="answer" targetRef="e1"/>
    <bpmn:sequenceFlow id="f5" sourceRef="refund" targetRef="e2"/>
    <bpmn:sequenceFlow id="f6" sourceRef="answer_late" targetRef="supervise_answer"/>
    <bpmn:sequenceFlow id="f7" sourceRef="refund_late" targetRef="supervise_refund"/>
    <bpmn:sequenceFlow id="f8" sourceRef="supervise_answer" targetRef="e3"/>
    <bpmn:sequenceFlow id="f9" sourceRef="supervise_refund" targetRef="e4"/>
    <bpmn:sequenceFlow id="f10" sourceRef="fork" targetRef="notes"/>
    <bpmn:sequenceFlow id="f11" sourceRef="notes" targetRef="e5"/>
  </bpmn:process>
"""
    + TAIL
)

# The screening system gets an hour; then a person looks instead.
SCREEN_TIMEOUT = (
    HEAD
    + """
  <bpmn:process id="screen_timeout" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:serviceTask id="check" camunda:type="external" camunda:topic="kyc.screen"/>
    <bpmn:boundaryEvent id="too_slow" attachedToRef="check">
      <bpmn:timerEventDefinition><bpmn:timeDuration>PT1H</bpmn:timeDuration>
      </bpmn:timerEventDefinition>
    </bpmn:boundaryEvent>
    <bpmn:userTask id="manual_check" camunda:candidateGroups="compliance"/>
    <bpmn:endEvent id="e1"/><bpmn:endEvent id="e2"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="check"/>
    <bpmn:sequenceFlow id="f2" sourceRef="check" targetRef="e1"/>
    <bpmn:sequenceFlow id="f3" sourceRef="too_slow" targetRef="manual_check"/>
    <bpmn:sequenceFlow id="f4" sourceRef="manual_check" targetRef="e2"/>
  </bpmn:process>
"""
    + TAIL
)

# A deadline on one branch while a script on the other fails.
FAILING_BRANCH = (
    HEAD
    + """
  <bpmn:process id="failing_branch" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:parallelGateway id="fork"/>
    <bpmn:userTask id="answer" camunda:candidateGroups="cs"/>
    <bpmn:boundaryEvent id="deadline" attachedToRef="answer">
      <bpmn:timerEventDefinition><bpmn:timeDuration>PT48H</bpmn:timeDuration>
      </bpmn:timerEventDefinition>
    </bpmn:boundaryEvent>
    <bpmn:userTask id="supervise" camunda:candidateGroups="supervisor"/>
    <bpmn:scriptTask id="ratio" scriptFormat="python"><bpmn:script>ratio = 1 / divisor</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:endEvent id="e1"/><bpmn:endEvent id="e2"/><bpmn:endEvent id="e3"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="fork"/>
    <bpmn:sequenceFlow id="f2" sourceRef="fork" targetRef="answer"/>
    <bpmn:sequenceFlow id="f3" sourceRef="fork" targetRef="ratio"/>
    <bpmn:sequenceFlow id="f4" sourceRef="answer" targetRef="e1"/>
    <bpmn:sequenceFlow id="f5" sourceRef="ratio" targetRef="e2"/>
    <bpmn:sequenceFlow id="f6" sourceRef="deadline" targetRef="supervise"/>
    <bpmn:sequenceFlow id="f7" sourceRef="supervise" targetRef="e3"/>
  </bpmn:process>
"""
    + TAIL
)

INNER_WAIT = (
    HEAD
    + """
  <bpmn:process id="inner_wait" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:subProcess id="inner">
      <bpmn:startEvent id="inner_start"/>
      <bpmn:intermediateCatchEvent id="settle">
        <bpmn:timerEventDefinition><bpmn:timeDuration>PT2H</bpmn:timeDuration>
        </bpmn:timerEventDefinition>
      </bpmn:intermediateCatchEvent>
      <bpmn:endEvent id="inner_end"/>
      <bpmn:sequenceFlow id="s1" sourceRef="inner_start" targetRef="settle"/>
      <bpmn:sequenceFlow id="s2" sourceRef="settle" targetRef="inner_end"/>
    </bpmn:subProcess>
    <bpmn:userTask id="after" camunda:candidateGroups="ops"/>
    <bpmn:endEvent id="end"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="inner"/>
    <bpmn:sequenceFlow id="f2" sourceRef="inner" targetRef="after"/>
    <bpmn:sequenceFlow id="f3" sourceRef="after" targetRef="end"/>
  </bpmn:process>
"""
    + TAIL
)

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)
SECOND = timedelta(seconds=1)

Handler = Callable[[dict[str, Any]], Any]


def deploy(url: str, tmp_path: Path, clock: FixedClock, **files: str | Path) -> None:
    """Deploy ``name=BPMN text`` (or a path to a file) at the clock's time."""
    paths = []
    for name, source in files.items():
        if isinstance(source, Path):
            paths.append(source)
            continue
        path = tmp_path / f"{name}.bpmn"
        path.write_text(source)
        paths.append(path)
    with Engine(url, migrate=True, clock=clock) as engine:
        for path in paths:
            engine.definitions.deploy(path)


def fresh(url: str, clock: FixedClock, handlers: dict[str, Handler] | None = None) -> Engine:
    """A new Engine on the stored state: nothing from an earlier step is in memory."""
    engine = Engine(url, migrate=True, clock=clock, cache_size=0)
    for name, handler in (handlers or {}).items():
        engine.services.register(name, handler)
    return engine


def jobs_of(engine: Engine, instance_id: str) -> list[Job]:
    return engine.jobs.list(instance_id=instance_id)


def event_types(engine: Engine, instance_id: str) -> list[str]:
    return [e.type for e in engine.history.for_instance(instance_id)]


def job_count(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(sa.text("SELECT count(*) FROM bf_job")).scalar_one())
    finally:
        engine.dispose()


# -- 1. an interrupting timer boundary escalates at 48 h, not before -------------------------


def test_boundary_timer_escalates_at_48_hours_and_not_before(db_url: str, tmp_path: Path) -> None:
    clock = FixedClock(T0)
    deploy(db_url, tmp_path, clock, escalation=ESCALATION)
    with fresh(db_url, clock) as engine:
        started = engine.instances.start("escalation", business_key="C-1")
        [answer] = started.tasks
        assert answer.element_id == "answer"
        [job] = jobs_of(engine, started.id)
        assert (job.kind, job.status, job.element_id, job.due_at) == (
            "timer",
            "ready",
            "deadline",
            T0 + 48 * HOUR,
        )
        assert job.business_key == "C-1"
    clock.set(T0 + 47 * HOUR + 59 * MINUTE)
    with fresh(db_url, clock) as engine:
        assert engine.jobs.run_due().outcomes == ()
        assert [t.id for t in engine.tasks.query(instance_id=started.id)] == [answer.id]
        assert "timer_fired" not in event_types(engine, started.id)
    clock.set(T0 + 48 * HOUR)
    with fresh(db_url, clock) as engine:
        run = engine.jobs.run_due()
        assert [(o.result, o.kind, o.element_id, o.instance_id) for o in run.outcomes] == [
            ("fired", "timer", "deadline", started.id)
        ]
    with fresh(db_url, clock) as engine:
        [escalated] = engine.tasks.query(instance_id=started.id)
        assert (escalated.element_id, escalated.candidate_groups) == ("supervise", ("supervisor",))
        assert engine.tasks.query(groups=["cs"]) == []
        assert [t.element_id for t in engine.tasks.query(groups=["supervisor"])] == ["supervise"]
        assert jobs_of(engine, started.id) == []
        events = engine.history.for_instance(started.id)
        assert [(e.type, e.element_id) for e in events] == [
            ("instance_started", None),
            ("task_created", "answer"),
            ("timer_fired", "deadline"),
            ("task_cancelled", "answer"),  # the interrupting timer took it away first
            ("task_created", "supervise"),
        ]
        fired = events[2]
        assert fired.at == T0 + 48 * HOUR
        assert fired.data == {"due_at": (T0 + 48 * HOUR).isoformat()}
        # The original task is gone for good.
        with pytest.raises(ConcurrencyError, match="already cancelled"):
            engine.tasks.complete(answer.id, user="bob", groups=["cs"])
        # A second pass finds nothing left to do.
        assert engine.jobs.run_due(now=T0 + 400 * HOUR).outcomes == ()
        done = engine.tasks.complete(escalated.id, user="sue", groups=["supervisor"])
        assert done.status == InstanceStatus.COMPLETED
    assert job_count(db_url) == 0


def test_complaint_handling_escalates_to_the_supervisor(
    db_url: str, tmp_path: Path, repo_root: Path
) -> None:
    clock = FixedClock(T0)
    deploy(
        db_url,
        tmp_path,
        clock,
        complaint_handling=repo_root / "processes" / "complaint_handling.bpmn",
    )
    with fresh(db_url, clock) as engine:
        started = engine.instances.start("complaint_handling", business_key="K-7")
        [register] = started.tasks
        assert jobs_of(engine, started.id) == []
    clock.set(T0 + HOUR)
    with fresh(db_url, clock) as engine:
        after = engine.tasks.complete(
            register.id,
            user="carl",
            groups=["customer-service"],
            data={"customer_name": "Ann", "channel": "phone", "complaint_text": "fee charged"},
        )
        [investigate] = after.tasks
        assert investigate.element_id == "investigate_and_answer"
        assert investigate.due_at == T0 + 49 * HOUR
        [job] = jobs_of(engine, started.id)
        assert (job.kind, job.element_id, job.due_at) == (
            "timer",
            "deadline_passed",
            T0 + 49 * HOUR,
        )
    with fresh(db_url, clock) as engine:
        # 47 h 59 min after the task appeared: still the clerk's.
        assert engine.jobs.run_due(now=T0 + 48 * HOUR + 59 * MINUTE).outcomes == ()
        assert [t.element_id for t in engine.tasks.query(instance_id=started.id)] == [
            "investigate_and_answer"
        ]
    clock.set(T0 + 49 * HOUR)
    with fresh(db_url, clock) as engine:
        run = engine.jobs.run_due()
        assert [(o.result, o.element_id) for o in run.outcomes] == [("fired", "deadline_passed")]
    with fresh(db_url, clock) as engine:
        assert engine.tasks.query(groups=["customer-service"]) == []
        [escalated] = engine.tasks.query(groups=["supervisor"])
        assert (escalated.element_id, escalated.instance_id) == (
            "escalated_handling",
            started.id,
        )
        assert escalated.due_at == T0 + 49 * HOUR + timedelta(days=1)
        types = event_types(engine, started.id)
        assert types.count("timer_fired") == 1
        assert types[-3:] == ["timer_fired", "task_cancelled", "task_created"]
        assert jobs_of(engine, started.id) == []
        done = engine.tasks.complete(
            escalated.id,
            user="sue",
            groups=["supervisor"],
            data={"answer": "refunded", "outcome": "upheld"},
        )
        assert done.status == InstanceStatus.COMPLETED


# -- 2. a non-interrupting reminder every 24 h ------------------------------------------------


def test_non_interrupting_reminder_every_24_hours(db_url: str, tmp_path: Path) -> None:
    clock = FixedClock(T0)
    deploy(db_url, tmp_path, clock, reminder=REMINDER)
    sent: list[dict[str, Any]] = []
    handlers: dict[str, Handler] = {"sendReminder": sent.append}
    with fresh(db_url, clock, handlers) as engine:
        started = engine.instances.start("reminder", data={"case": "R-1"})
        [answer] = started.tasks
        [job] = jobs_of(engine, started.id)
        assert (job.kind, job.element_id, job.due_at) == ("timer", "remind", T0 + 24 * HOUR)
    for day in (1, 2, 3):
        with fresh(db_url, clock, handlers) as engine:
            assert engine.jobs.run_due(now=T0 + day * 24 * HOUR - SECOND).outcomes == ()
            run = engine.jobs.run_due(now=T0 + day * 24 * HOUR)
            assert [(o.result, o.element_id) for o in run.outcomes] == [("fired", "remind")]
        with fresh(db_url, clock, handlers) as engine:
            assert len(sent) == day
            # The task stays with the clerk; the next reminder is a day later.
            assert [t.id for t in engine.tasks.query(instance_id=started.id)] == [answer.id]
            [job] = jobs_of(engine, started.id)
            assert job.due_at == T0 + (day + 1) * 24 * HOUR
            assert event_types(engine, started.id).count("timer_fired") == day
            assert engine.instances.get(started.id).status == InstanceStatus.RUNNING
    assert sent == [{"case": "R-1"}] * 3
    with fresh(db_url, clock, handlers) as engine:
        done = engine.tasks.complete(answer.id, user="bob", groups=["cs"])
        assert done.status == InstanceStatus.COMPLETED
        assert jobs_of(engine, started.id) == []
    with fresh(db_url, clock, handlers) as engine:
        assert engine.jobs.run_due(now=T0 + 365 * 24 * HOUR).outcomes == ()
    assert len(sent) == 3
    assert job_count(db_url) == 0


def test_reminders_catch_up_after_a_long_pause(db_url: str, tmp_path: Path) -> None:
    clock = FixedClock(T0)
    deploy(db_url, tmp_path, clock, reminder=REMINDER)
    sent: list[dict[str, Any]] = []
    handlers: dict[str, Handler] = {"sendReminder": sent.append}
    with fresh(db_url, clock, handlers) as engine:
        started = engine.instances.start("reminder")
    clock.set(T0 + 72 * HOUR)
    with fresh(db_url, clock, handlers) as engine:
        run = engine.jobs.run_due()
        assert [o.result for o in run.outcomes] == ["fired", "fired", "fired"]
        assert len(sent) == 3
    with fresh(db_url, clock, handlers) as engine:
        [job] = jobs_of(engine, started.id)
        assert job.due_at == T0 + 96 * HOUR
        assert event_types(engine, started.id).count("timer_fired") == 3
        assert engine.jobs.run_due().outcomes == ()
        [answer] = engine.tasks.query(instance_id=started.id)
        assert answer.element_id == "answer"
        engine.tasks.complete(answer.id, user="bob", groups=["cs"])
        assert jobs_of(engine, started.id) == []
    assert len(sent) == 3


def test_each_overdue_timer_fires_through_its_own_job(db_url: str, tmp_path: Path) -> None:
    """Two deadlines passed while no worker ran: two jobs, two firings, two history events."""
    clock = FixedClock(T0)
    deploy(db_url, tmp_path, clock, parallel=PARALLEL)
    with fresh(db_url, clock) as engine:
        started = engine.instances.start("parallel")
        assert sorted((j.element_id, j.due_at) for j in jobs_of(engine, started.id)) == [
            ("answer_late", T0 + 48 * HOUR),
            ("refund_late", T0 + 24 * HOUR),
        ]
    clock.set(T0 + 50 * HOUR)
    with fresh(db_url, clock) as engine:
        run = engine.jobs.run_due()
        assert [(o.result, o.element_id) for o in run.outcomes] == [
            ("fired", "refund_late"),
            ("fired", "answer_late"),
        ]
    with fresh(db_url, clock) as engine:
        assert sorted(t.element_id for t in engine.tasks.query(instance_id=started.id)) == [
            "notes",
            "supervise_answer",
            "supervise_refund",
        ]
        fired = [
            e.element_id for e in engine.history.for_instance(started.id) if e.type == "timer_fired"
        ]
        assert fired == ["refund_late", "answer_late"]
        assert jobs_of(engine, started.id) == []


def test_an_overdue_timer_waits_for_its_job(db_url: str, tmp_path: Path) -> None:
    """Work on another branch after the deadline passed does not fire the timer on the side
    (silently, with no history of it): it fires when its job runs, and the history says so."""
    clock = FixedClock(T0)
    deploy(db_url, tmp_path, clock, parallel=PARALLEL)
    with fresh(db_url, clock) as engine:
        started = engine.instances.start("parallel")
        by_element = {t.element_id: t for t in started.tasks}
        assert sorted(by_element) == ["answer", "notes", "refund"]
    clock.set(T0 + 23 * HOUR)
    with fresh(db_url, clock) as engine:
        engine.tasks.complete(by_element["refund"].id, user="bob", groups=["cs"])
    clock.set(T0 + 50 * HOUR)
    with fresh(db_url, clock) as engine:
        # The worker is behind: the 48 h deadline passed two hours ago; notes get filed.
        after_notes = engine.tasks.complete(by_element["notes"].id, user="bob", groups=["cs"])
        assert [t.element_id for t in after_notes.tasks] == ["answer"]
        [job] = jobs_of(engine, started.id)
        assert (job.element_id, job.due_at) == ("answer_late", T0 + 48 * HOUR)
        assert "timer_fired" not in event_types(engine, started.id)
        seen = len(engine.history.for_instance(started.id))
    with fresh(db_url, clock) as engine:
        run = engine.jobs.run_due()
        assert [(o.result, o.element_id) for o in run.outcomes] == [("fired", "answer_late")]
    with fresh(db_url, clock) as engine:
        [supervise] = engine.tasks.query(instance_id=started.id)
        assert supervise.element_id == "supervise_answer"
        after = engine.history.for_instance(started.id)[seen:]
        assert [(e.type, e.element_id) for e in after] == [
            ("timer_fired", "answer_late"),
            ("task_cancelled", "answer"),
            ("task_created", "supervise_answer"),
        ]
        with pytest.raises(ConcurrencyError, match="already cancelled"):
            engine.tasks.complete(by_element["answer"].id, user="bob", groups=["cs"])
        assert jobs_of(engine, started.id) == []


# -- 3. a timer on a path that was left never fires -------------------------------------------


def test_boundary_timer_of_a_completed_task_never_fires(db_url: str, tmp_path: Path) -> None:
    clock = FixedClock(T0)
    deploy(db_url, tmp_path, clock, escalation=ESCALATION)
    with fresh(db_url, clock) as engine:
        started = engine.instances.start("escalation")
        [answer] = started.tasks
        assert len(jobs_of(engine, started.id)) == 1
    clock.set(T0 + 47 * HOUR)
    with fresh(db_url, clock) as engine:
        done = engine.tasks.complete(answer.id, user="bob", groups=["cs"])
        assert done.status == InstanceStatus.COMPLETED
        assert engine.jobs.list() == []
    assert job_count(db_url) == 0
    clock.set(T0 + 400 * 24 * HOUR)
    with fresh(db_url, clock) as engine:
        assert engine.jobs.run_due().outcomes == ()
        assert "timer_fired" not in event_types(engine, started.id)
        assert engine.tasks.query(groups=["supervisor"]) == []
        assert engine.instances.get(started.id).status == InstanceStatus.COMPLETED


def test_cancelled_instance_leaves_no_jobs(db_url: str, tmp_path: Path) -> None:
    clock = FixedClock(T0)
    deploy(db_url, tmp_path, clock, reminder=REMINDER, parallel=PARALLEL, charge=CHARGE)
    with fresh(db_url, clock) as engine:
        reminder = engine.instances.start("reminder")
        parallel = engine.instances.start("parallel")
        charge = engine.instances.start("charge")
        assert [len(jobs_of(engine, i.id)) for i in (reminder, parallel, charge)] == [1, 2, 1]
    with fresh(db_url, clock) as engine:
        for instance in (reminder, parallel, charge):
            cancelled = engine.instances.cancel(instance.id, user="ops", reason="withdrawn")
            assert cancelled.status == InstanceStatus.CANCELLED
            assert jobs_of(engine, instance.id) == []
    assert job_count(db_url) == 0
    with fresh(db_url, clock, {"sendReminder": lambda data: None}) as engine:
        engine.services.register("debitFee", lambda data: {"debited": True})
        assert engine.jobs.run_due(now=T0 + 1000 * HOUR).outcomes == ()
        for instance in (reminder, parallel, charge):
            assert engine.instances.get(instance.id).status == InstanceStatus.CANCELLED
            types = event_types(engine, instance.id)
            assert types.count("instance_cancelled") == 1
            assert not {"timer_fired", "service_completed", "job_failed"} & set(types)


# -- 4. intermediate timer catch events --------------------------------------------------------


def test_intermediate_timer_waits_one_hour(db_url: str, tmp_path: Path) -> None:
    clock = FixedClock(T0)
    deploy(db_url, tmp_path, clock, wait=WAIT)
    with fresh(db_url, clock) as engine:
        started = engine.instances.start("wait", data={"customer": "Ann"})
        assert (started.status, started.tasks) == (InstanceStatus.RUNNING, ())
        [job] = jobs_of(engine, started.id)
        assert (job.kind, job.element_id, job.due_at) == ("timer", "cool_off", T0 + HOUR)
    with fresh(db_url, clock) as engine:
        assert engine.jobs.run_due(now=T0 + 59 * MINUTE + 59 * SECOND).outcomes == ()
        assert engine.instances.get(started.id).tasks == ()
    clock.set(T0 + HOUR)
    with fresh(db_url, clock) as engine:
        [outcome] = engine.jobs.run_due().outcomes
        assert (outcome.result, outcome.element_id) == ("fired", "cool_off")
    with fresh(db_url, clock) as engine:
        shown = engine.instances.get(started.id)
        [call_back] = shown.tasks
        assert (call_back.element_id, call_back.created_at) == ("call_back", T0 + HOUR)
        assert shown.data == {"customer": "Ann"}
        assert jobs_of(engine, started.id) == []
        assert event_types(engine, started.id) == [
            "instance_started",
            "timer_fired",
            "task_created",
        ]


def test_intermediate_timer_waits_for_a_date(db_url: str, tmp_path: Path) -> None:
    month_end = datetime(2026, 11, 30, 17, 0, tzinfo=UTC)
    clock = FixedClock(T0)
    deploy(db_url, tmp_path, clock, wait_until=WAIT_UNTIL)
    with fresh(db_url, clock) as engine:
        started = engine.instances.start("wait_until")
        [job] = jobs_of(engine, started.id)
        assert (job.element_id, job.due_at) == ("month_end", month_end)
    with fresh(db_url, clock) as engine:
        assert engine.jobs.run_due(now=month_end - SECOND).outcomes == ()
        assert engine.instances.get(started.id).status == InstanceStatus.RUNNING
    clock.set(month_end + 5 * MINUTE)
    with fresh(db_url, clock) as engine:
        [outcome] = engine.jobs.run_due().outcomes
        assert outcome.result == "fired"
    with fresh(db_url, clock) as engine:
        shown = engine.instances.get(started.id)
        assert shown.status == InstanceStatus.COMPLETED
        assert shown.data == {"closed": True}
        assert job_count(db_url) == 0
    # Started after the date: the timer has nothing to wait for.
    with fresh(db_url, clock) as engine:
        late = engine.instances.start("wait_until")
        assert late.status == InstanceStatus.COMPLETED
        assert engine.jobs.list() == []


def test_intermediate_timer_inside_a_subprocess(db_url: str, tmp_path: Path) -> None:
    clock = FixedClock(T0)
    deploy(db_url, tmp_path, clock, inner_wait=INNER_WAIT)
    with fresh(db_url, clock) as engine:
        started = engine.instances.start("inner_wait")
        [job] = jobs_of(engine, started.id)
        assert (job.kind, job.element_id, job.due_at) == ("timer", "settle", T0 + 2 * HOUR)
        assert engine.jobs.run_due(now=T0 + HOUR).outcomes == ()
    with fresh(db_url, clock) as engine:
        [outcome] = engine.jobs.run_due(now=T0 + 2 * HOUR).outcomes
        assert (outcome.result, outcome.element_id) == ("fired", "settle")
    with fresh(db_url, clock) as engine:
        assert [t.element_id for t in engine.instances.get(started.id).tasks] == ["after"]
        assert event_types(engine, started.id) == [
            "instance_started",
            "timer_fired",
            "end_event_reached",
            "task_created",
        ]
        assert engine.jobs.list() == []


# -- 5. timer start events ---------------------------------------------------------------------


def test_timer_start_cycle_starts_three_instances(db_url: str, tmp_path: Path) -> None:
    clock = FixedClock(T0)
    deploy(db_url, tmp_path, clock, hourly=hourly("R3/PT1H"))
    with fresh(db_url, clock) as engine:
        [job] = engine.jobs.list()
        [definition] = engine.definitions.list(key="hourly")
        assert (job.kind, job.process_key, job.element_id, job.instance_id, job.due_at) == (
            "start_timer",
            "hourly",
            "tick",
            None,
            T0 + HOUR,
        )
        assert engine.instances.list(process_key="hourly") == []
        assert engine.jobs.run_due(now=T0 + 59 * MINUTE).outcomes == ()
    clock.set(T0 + 3 * HOUR + 10 * MINUTE)
    with fresh(db_url, clock) as engine:
        run = engine.jobs.run_due()
        assert [(o.kind, o.result, o.process_key) for o in run.outcomes] == [
            ("start_timer", "started", "hourly")
        ] * 3
    with fresh(db_url, clock) as engine:
        started = engine.instances.list(process_key="hourly")
        assert len(started) == 3
        for instance in started:
            assert instance.status == InstanceStatus.RUNNING
            assert instance.definition_id == definition.id
            [check] = engine.instances.get(instance.id).tasks
            assert (check.element_id, check.candidate_groups) == ("check", ("ops",))
            assert event_types(engine, instance.id) == ["instance_started", "task_created"]
            assert jobs_of(engine, instance.id) == []
        # Three repetitions, then the schedule is over.
        assert engine.jobs.list() == []
        assert engine.jobs.run_due(now=T0 + 1000 * HOUR).outcomes == ()
        assert len(engine.instances.list(process_key="hourly")) == 3


@pytest.mark.parametrize("when", ["R3/PT1H", "PT1H"])
def test_starting_a_timer_start_process_by_hand_begins_at_once(
    db_url: str, tmp_path: Path, when: str
) -> None:
    clock = FixedClock(T0)
    kind = "timeCycle" if when.startswith("R") else "timeDuration"
    deploy(db_url, tmp_path, clock, hourly=hourly(when, kind=kind))
    with fresh(db_url, clock) as engine:
        started = engine.instances.start("hourly", user="ops-lead")
        assert [t.element_id for t in started.tasks] == ["check"]
        assert jobs_of(engine, started.id) == []
        assert [j.kind for j in engine.jobs.list()] == ["start_timer"]  # the schedule stays


def test_a_none_start_beside_a_timer_start_is_where_a_person_starts(
    db_url: str, tmp_path: Path
) -> None:
    both = hourly("R3/PT1H").replace(
        '<bpmn:userTask id="check"',
        '<bpmn:startEvent id="by_hand"/>\n'
        '    <bpmn:sequenceFlow id="f0" sourceRef="by_hand" targetRef="check"/>\n'
        '    <bpmn:userTask id="check"',
    )
    clock = FixedClock(T0)
    deploy(db_url, tmp_path, clock, hourly=both)
    with fresh(db_url, clock) as engine:
        started = engine.instances.start("hourly")
        assert [t.element_id for t in started.tasks] == ["check"]  # one path, not two
        assert jobs_of(engine, started.id) == []
        assert [j.kind for j in engine.jobs.list()] == ["start_timer"]


def test_timer_start_fires_once_per_cycle(db_url: str, tmp_path: Path) -> None:
    clock = FixedClock(T0)
    deploy(db_url, tmp_path, clock, hourly=hourly("R3/PT1H"))
    for hour in (1, 2, 3):
        with fresh(db_url, clock) as engine:
            [outcome] = engine.jobs.run_due(now=T0 + hour * HOUR).outcomes
            assert outcome.result == "started"
            assert engine.jobs.run_due(now=T0 + hour * HOUR).outcomes == ()
            assert len(engine.instances.list(process_key="hourly")) == hour
            expected = [T0 + (hour + 1) * HOUR] if hour < 3 else []
            assert [j.due_at for j in engine.jobs.list(kind="start_timer")] == expected


def test_redeploying_replaces_the_start_timer(db_url: str, tmp_path: Path) -> None:
    clock = FixedClock(T0)
    deploy(db_url, tmp_path, clock, hourly=hourly("R3/PT1H"))
    with fresh(db_url, clock) as engine:
        [first] = engine.jobs.list()
        [outcome] = engine.jobs.run_due(now=T0 + HOUR).outcomes
        assert outcome.result == "started"
    clock.set(T0 + HOUR + 30 * MINUTE)
    deploy(db_url, tmp_path, clock, hourly=hourly("R/PT2H", name="Two-hourly check"))
    with fresh(db_url, clock) as engine:
        v1, v2 = sorted(engine.definitions.list(key="hourly"), key=lambda d: d.version)
        assert (v1.version, v2.version) == (1, 2)
        [job] = engine.jobs.list()
        assert job.id != first.id
        assert (job.kind, job.due_at) == ("start_timer", T0 + 3 * HOUR + 30 * MINUTE)
        # The old schedule (next at +2 h) is gone.
        assert engine.jobs.run_due(now=T0 + 3 * HOUR).outcomes == ()
    clock.set(T0 + 3 * HOUR + 30 * MINUTE)
    with fresh(db_url, clock) as engine:
        [outcome] = engine.jobs.run_due().outcomes
        assert outcome.result == "started"
        newest = engine.instances.get(
            outcome.message.removeprefix("instance ") if outcome.message else ""
        )
        assert newest.definition_id == v2.id
        versions = sorted(
            i.definition_id == v2.id for i in engine.instances.list(process_key="hourly")
        )
        assert versions == [False, True]
        # Unbounded: the next one is two hours on.
        [job] = engine.jobs.list()
        assert job.due_at == T0 + 5 * HOUR + 30 * MINUTE
    # Deploying the same content again changes nothing.
    deploy(db_url, tmp_path, clock, hourly=hourly("R/PT2H", name="Two-hourly check"))
    with fresh(db_url, clock) as engine:
        [same] = engine.jobs.list()
        assert (same.id, same.due_at) == (job.id, job.due_at)


@pytest.mark.parametrize(
    ("kind", "when", "due"),
    [
        ("timeDuration", "PT1H", T0 + HOUR),
        ("timeDate", "2026-11-02T12:00:00Z", T0 + 3 * HOUR),
    ],
)
def test_one_shot_timer_start(
    db_url: str, tmp_path: Path, kind: str, when: str, due: datetime
) -> None:
    clock = FixedClock(T0)
    deploy(db_url, tmp_path, clock, hourly=hourly(when, kind=kind))
    with fresh(db_url, clock) as engine:
        [job] = engine.jobs.list()
        assert (job.kind, job.due_at) == ("start_timer", due)
        assert engine.jobs.run_due(now=due - SECOND).outcomes == ()
    clock.set(due + 10 * MINUTE)
    with fresh(db_url, clock) as engine:
        [outcome] = engine.jobs.run_due().outcomes
        assert outcome.result == "started"
    with fresh(db_url, clock) as engine:
        [instance] = engine.instances.list(process_key="hourly")
        assert [t.element_id for t in engine.instances.get(instance.id).tasks] == ["check"]
        assert instance.started_at == due + 10 * MINUTE
        assert engine.jobs.list() == []
        assert engine.jobs.run_due(now=due + 1000 * HOUR).outcomes == ()


# -- 6. service jobs: retries, backoff, incidents ----------------------------------------------


class Debit:
    """A fee service that fails until told otherwise; counts its calls."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.error: Exception | None = ConnectionError("core banking unreachable")

    def __call__(self, data: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(data)
        if self.error is not None:
            raise self.error
        return {"debited": data["fee"], "reference": "TX-1"}


def test_async_service_task_runs_as_a_job(db_url: str, tmp_path: Path) -> None:
    clock = FixedClock(T0)
    deploy(db_url, tmp_path, clock, charge=CHARGE)
    debit = Debit()
    debit.error = None
    handlers: dict[str, Handler] = {"debitFee": debit}
    with fresh(db_url, clock, handlers) as engine:
        started = engine.instances.start("charge", business_key="F-1", data={"fee": 25})
        # asyncBefore: the start returns before the handler runs, even though it is here.
        assert (started.status, started.tasks) == (InstanceStatus.RUNNING, ())
        assert debit.calls == []
        [job] = jobs_of(engine, started.id)
        assert (job.kind, job.status, job.topic, job.element_id, job.due_at) == (
            "service",
            "ready",
            "debitFee",
            "debit",
            T0,
        )
        assert (job.attempts, job.retries, job.last_error, job.business_key) == (0, 5, None, "F-1")
    with fresh(db_url, clock, handlers) as engine:
        run = engine.jobs.run_due()
        assert [(o.kind, o.result, o.topic) for o in run.outcomes] == [
            ("service", "completed", "debitFee")
        ]
        assert debit.calls == [{"fee": 25}]
    with fresh(db_url, clock, handlers) as engine:
        done = engine.instances.get(started.id)
        assert done.status == InstanceStatus.COMPLETED
        assert done.data == {"fee": 25, "debited": 25, "reference": "TX-1"}
        assert event_types(engine, started.id) == [
            "instance_started",
            "service_completed",
            "data_changed",
            "end_event_reached",
            "instance_completed",
        ]
        assert engine.jobs.list() == []
        assert engine.jobs.run_due().outcomes == ()
    assert len(debit.calls) == 1


def test_failing_service_retries_with_backoff_then_raises_an_incident(
    db_url: str, tmp_path: Path
) -> None:
    clock = FixedClock(T0)
    deploy(db_url, tmp_path, clock, charge=CHARGE)
    debit = Debit()
    handlers: dict[str, Handler] = {"debitFee": debit}
    with fresh(db_url, clock, handlers) as engine:
        started = engine.instances.start("charge", data={"fee": 25})
    # R5/PT5M: five attempts, five minutes apart.
    for attempt in (1, 2, 3, 4):
        with fresh(db_url, clock, handlers) as engine:
            [outcome] = engine.jobs.run_due().outcomes
            assert (outcome.result, outcome.element_id) == ("retry", "debit")
            assert outcome.message == (
                "service 'debitFee' failed: ConnectionError: core banking unreachable"
            )
        with fresh(db_url, clock, handlers) as engine:
            [job] = jobs_of(engine, started.id)
            assert (job.status, job.attempts, job.retries) == ("ready", attempt, 5 - attempt)
            assert job.due_at == clock.now() + 5 * MINUTE
            assert job.lock_owner is None
            assert job.last_error == outcome.message
            instance = engine.instances.get(started.id)
            assert (instance.status, instance.failure) == (InstanceStatus.RUNNING, None)
            # Not before the backoff is over.
            assert engine.jobs.run_due(now=job.due_at - SECOND).outcomes == ()
        clock.set(clock.now() + 5 * MINUTE)
    assert len(debit.calls) == 4
    with fresh(db_url, clock, handlers) as engine:
        [outcome] = engine.jobs.run_due().outcomes
        assert outcome.result == "incident"
    assert len(debit.calls) == 5
    with fresh(db_url, clock, handlers) as engine:
        failed = engine.instances.get(started.id)
        assert failed.status == InstanceStatus.FAILED
        assert failed.failure is not None
        assert (failed.failure.element_id, failed.failure.error_type) == (
            "debit",
            "ConnectionError",
        )
        assert "attempt 5, no retries left" in failed.failure.message
        [job] = jobs_of(engine, started.id)
        assert (job.status, job.attempts, job.retries) == ("incident", 5, 0)
        [incident] = engine.incidents.list()
        assert (incident.id, incident.kind, incident.instance_id, incident.job_id) == (
            started.id,
            "job",
            started.id,
            job.id,
        )
        assert (incident.element_id, incident.attempts, incident.error_type) == (
            "debit",
            5,
            "ConnectionError",
        )
        assert "core banking unreachable" in incident.message
        assert engine.incidents.get(started.id) == incident
        # An incident is not retried by the worker.
        assert engine.jobs.run_due(now=clock.now() + 1000 * HOUR).outcomes == ()
        types = event_types(engine, started.id)
        assert types.count("job_failed") == 4
        assert types[-1] == "instance_failed"
    assert len(debit.calls) == 5
    debit.error = None
    with fresh(db_url, clock, handlers) as engine:
        resolved = engine.incidents.retry(started.id, user="ops")
        assert resolved.id == started.id
        [job] = jobs_of(engine, started.id)
        assert (job.status, job.attempts, job.retries, job.due_at) == ("ready", 0, 5, clock.now())
        assert job.last_error is None
        assert engine.instances.get(started.id).status == InstanceStatus.RUNNING
        assert engine.incidents.list() == []
    with fresh(db_url, clock, handlers) as engine:
        [outcome] = engine.jobs.run_due().outcomes
        assert outcome.result == "completed"
    with fresh(db_url, clock, handlers) as engine:
        done = engine.instances.get(started.id)
        assert done.status == InstanceStatus.COMPLETED
        assert done.data["reference"] == "TX-1"
        assert engine.jobs.list() == []
        assert event_types(engine, started.id)[-5:] == [
            "instance_retried",
            "service_completed",
            "data_changed",
            "end_event_reached",
            "instance_completed",
        ]
    assert len(debit.calls) == 6


def test_default_retries_and_backoff(db_url: str, tmp_path: Path) -> None:
    """No retry cycle: three attempts, 10 s then 40 s apart; instances.retry re-arms."""
    clock = FixedClock(T0)
    deploy(db_url, tmp_path, clock, notify=NOTIFY)
    calls: list[datetime] = []

    def send(data: dict[str, Any]) -> None:
        calls.append(clock.now())
        raise TimeoutError("print shop")

    with fresh(db_url, clock) as engine:
        # No handler registered here: the task waits as a job.
        started = engine.instances.start("notify")
        [job] = jobs_of(engine, started.id)
        assert (job.kind, job.topic, job.retries) == ("service", "SendLetter", 3)
        # A process without the handler does not take the job.
        assert engine.jobs.run_due().outcomes == ()
        assert jobs_of(engine, started.id)[0].attempts == 0
    expected = [("retry", 10 * SECOND), ("retry", 40 * SECOND)]
    for result, wait in expected:
        with fresh(db_url, clock, {"SendLetter": send}) as engine:
            [outcome] = engine.jobs.run_due().outcomes
            assert outcome.result == result
            [job] = jobs_of(engine, started.id)
            assert job.due_at == clock.now() + wait
        clock.set(job.due_at)
    with fresh(db_url, clock, {"SendLetter": send}) as engine:
        [outcome] = engine.jobs.run_due().outcomes
        assert outcome.result == "incident"
        assert calls == [T0, T0 + 10 * SECOND, T0 + 50 * SECOND]
        [incident] = engine.incidents.list()
        assert (incident.attempts, incident.error_type) == (3, "TimeoutError")
    with fresh(db_url, clock, {"SendLetter": lambda data: {"sent": True}}) as engine:
        retried = engine.instances.retry(started.id, user="ops")
        assert retried.status == InstanceStatus.RUNNING
        [job] = jobs_of(engine, started.id)
        assert (job.status, job.attempts, job.retries) == ("ready", 0, 3)
        [outcome] = engine.jobs.run_due().outcomes
        assert outcome.result == "completed"
        assert engine.instances.get(started.id).status == InstanceStatus.COMPLETED
        assert engine.incidents.list() == []


def test_bpmn_error_from_a_job_takes_the_error_boundary(db_url: str, tmp_path: Path) -> None:
    clock = FixedClock(T0)
    deploy(db_url, tmp_path, clock, charge=CHARGE)
    debit = Debit()
    debit.error = BpmnError("NO_FUNDS", "balance 3.10")
    with fresh(db_url, clock, {"debitFee": debit}) as engine:
        started = engine.instances.start("charge", data={"fee": 25})
    with fresh(db_url, clock, {"debitFee": debit}) as engine:
        [outcome] = engine.jobs.run_due().outcomes
        assert (outcome.result, outcome.message) == ("bpmn_error", "NO_FUNDS")
    with fresh(db_url, clock) as engine:
        instance = engine.instances.get(started.id)
        assert instance.status == InstanceStatus.RUNNING
        [collect] = instance.tasks
        assert (collect.element_id, collect.candidate_groups) == ("collect", ("ops",))
        assert jobs_of(engine, started.id) == []
        events = engine.history.for_instance(started.id)
        [error] = [e for e in events if e.type == "service_bpmn_error"]
        assert error.data == {"service": "debitFee", "code": "NO_FUNDS", "message": "balance 3.10"}
        assert "job_failed" not in [e.type for e in events]
    assert len(debit.calls) == 1


def test_an_unknown_bpmn_error_code_is_an_incident_at_once(db_url: str, tmp_path: Path) -> None:
    clock = FixedClock(T0)
    deploy(db_url, tmp_path, clock, charge=CHARGE)
    debit = Debit()
    debit.error = BpmnError("ACCOUNT_CLOSED")
    with fresh(db_url, clock, {"debitFee": debit}) as engine:
        started = engine.instances.start("charge", data={"fee": 25})
        [outcome] = engine.jobs.run_due().outcomes
        assert outcome.result == "bpmn_error"
    with fresh(db_url, clock) as engine:
        failed = engine.instances.get(started.id)
        assert failed.status == InstanceStatus.FAILED
        assert failed.failure is not None
        assert "ACCOUNT_CLOSED" in failed.failure.message
        [incident] = engine.incidents.list()
        assert incident.instance_id == started.id
    assert len(debit.calls) == 1
    debit.error = None
    with fresh(db_url, clock, {"debitFee": debit}) as engine:
        engine.incidents.retry(started.id, user="ops")
        [job] = jobs_of(engine, started.id)
        assert (job.kind, job.status, job.attempts) == ("service", "ready", 0)
        [outcome] = engine.jobs.run_due().outcomes
        assert outcome.result == "completed"
        assert engine.instances.get(started.id).status == InstanceStatus.COMPLETED
    assert len(debit.calls) == 2


# -- 7. external tasks -------------------------------------------------------------------------


def test_external_task_fetch_lock_and_complete(db_url: str, tmp_path: Path) -> None:
    clock = FixedClock(T0)
    deploy(db_url, tmp_path, clock, screen=SCREEN)
    with fresh(db_url, clock) as engine:
        started = engine.instances.start(
            "screen", business_key="A-1", data={"name": "Ada", "country": "NL"}
        )
        [job] = jobs_of(engine, started.id)
        assert (job.kind, job.topic, job.element_id, job.status) == (
            "external",
            "kyc.screen",
            "check",
            "ready",
        )
        # A worker process does not run external tasks.
        assert engine.jobs.run_due(now=T0 + 1000 * HOUR).outcomes == ()
    with fresh(db_url, clock) as engine:
        assert engine.external.fetch_and_lock(["other.topic"], worker_id="w1") == []
        [task] = engine.external.fetch_and_lock(
            ["kyc.screen", "other.topic"], worker_id="w1", max_tasks=5, lock_duration=60
        )
        assert (task.id, task.topic, task.worker_id, task.instance_id) == (
            job.id,
            "kyc.screen",
            "w1",
            started.id,
        )
        assert (task.process_key, task.business_key, task.element_id) == ("screen", "A-1", "check")
        assert task.variables == {"name": "Ada", "country": "NL"}
        assert task.lock_expires_at == T0 + 60 * SECOND
        assert (task.retries, task.attempts, task.error_message) == (3, 0, None)
    with fresh(db_url, clock) as engine:
        # Locked: nobody else gets it.
        assert engine.external.fetch_and_lock(["kyc.screen"], worker_id="w2") == []
        with pytest.raises(ConcurrencyError, match="not locked by 'w2'"):
            engine.external.complete(task.id, worker_id="w2", variables={"hits": 0})
    clock.set(T0 + 61 * SECOND)
    with fresh(db_url, clock) as engine:
        # The lock ran out: w2 takes the task over and w1's report is refused.
        [again] = engine.external.fetch_and_lock(
            ["kyc.screen"], worker_id="w2", lock_duration=timedelta(minutes=2)
        )
        assert (again.id, again.worker_id, again.lock_expires_at) == (
            task.id,
            "w2",
            T0 + 181 * SECOND,
        )
        with pytest.raises(ConcurrencyError, match="held by w2"):
            engine.external.complete(task.id, worker_id="w1", variables={"hits": 5})
        assert engine.instances.get(started.id).revision == started.revision
    with fresh(db_url, clock) as engine:
        after = engine.external.complete(task.id, worker_id="w2", variables={"hits": 0})
        assert [t.element_id for t in after.tasks] == ["open"]
        assert after.data == {"name": "Ada", "country": "NL", "hits": 0}
    with fresh(db_url, clock) as engine:
        assert engine.jobs.list() == []
        with pytest.raises(NotFound):
            engine.external.complete(task.id, worker_id="w2")
        [completed] = [
            e for e in engine.history.for_instance(started.id) if e.type == "service_completed"
        ]
        assert (completed.actor, completed.element_id) == ("w2", "check")
        assert completed.data == {"service": "kyc.screen", "attempt": 1}


def test_external_task_lock_can_be_extended(db_url: str, tmp_path: Path) -> None:
    clock = FixedClock(T0)
    deploy(db_url, tmp_path, clock, screen=SCREEN)
    with fresh(db_url, clock) as engine:
        engine.instances.start("screen")
        [task] = engine.external.fetch_and_lock(["kyc.screen"], worker_id="w1", lock_duration=60)
    clock.set(T0 + 50 * SECOND)
    with fresh(db_url, clock) as engine:
        until = engine.external.extend_lock(task.id, worker_id="w1", new_duration=600)
        assert until == T0 + 650 * SECOND
        assert engine.jobs.get(task.id).lock_expires_at == until
        with pytest.raises(ConcurrencyError):
            engine.external.extend_lock(task.id, worker_id="w2", new_duration=600)
    clock.set(T0 + 600 * SECOND)
    with fresh(db_url, clock) as engine:
        assert engine.external.fetch_and_lock(["kyc.screen"], worker_id="w2") == []
        after = engine.external.complete(task.id, worker_id="w1")
        assert [t.element_id for t in after.tasks] == ["open"]
    clock.set(T0 + 2000 * SECOND)
    with fresh(db_url, clock) as engine:
        # An expired lock cannot be extended.
        started = engine.instances.start("screen")
        [other] = engine.external.fetch_and_lock(["kyc.screen"], worker_id="w1", lock_duration=5)
        assert other.instance_id == started.id
    clock.set(T0 + 2006 * SECOND)
    with fresh(db_url, clock) as engine, pytest.raises(ConcurrencyError, match="lock expired"):
        engine.external.extend_lock(other.id, worker_id="w1", new_duration=60)


def test_external_task_failure_retries_after_the_timeout(db_url: str, tmp_path: Path) -> None:
    clock = FixedClock(T0)
    deploy(db_url, tmp_path, clock, screen=SCREEN)
    with fresh(db_url, clock) as engine:
        started = engine.instances.start("screen", data={"name": "Ada"})
        [task] = engine.external.fetch_and_lock(["kyc.screen"], worker_id="w1")
        result = engine.external.fail(
            task.id, worker_id="w1", error_message="sanctions API 503", retries=2, retry_timeout=300
        )
        assert result == "retry"
    with fresh(db_url, clock) as engine:
        [job] = jobs_of(engine, started.id)
        assert (job.status, job.attempts, job.retries, job.lock_owner) == ("ready", 1, 2, None)
        assert (job.due_at, job.last_error) == (T0 + 300 * SECOND, "sanctions API 503")
        assert engine.instances.get(started.id).status == InstanceStatus.RUNNING
        assert engine.external.fetch_and_lock(["kyc.screen"], worker_id="w1") == []
        # The failed worker cannot report on it any more.
        with pytest.raises(ConcurrencyError):
            engine.external.complete(task.id, worker_id="w1")
    clock.set(T0 + 299 * SECOND)
    with fresh(db_url, clock) as engine:
        assert engine.external.fetch_and_lock(["kyc.screen"], worker_id="w2") == []
    clock.set(T0 + 300 * SECOND)
    with fresh(db_url, clock) as engine:
        [again] = engine.external.fetch_and_lock(["kyc.screen"], worker_id="w2")
        assert (again.id, again.retries, again.attempts) == (task.id, 2, 1)
        assert again.error_message == "sanctions API 503"
        assert again.variables == {"name": "Ada"}
        assert event_types(engine, started.id).count("job_failed") == 1


def test_external_task_out_of_retries_is_an_incident(db_url: str, tmp_path: Path) -> None:
    clock = FixedClock(T0)
    deploy(db_url, tmp_path, clock, screen=SCREEN)
    with fresh(db_url, clock) as engine:
        started = engine.instances.start("screen", data={"name": "Ada"})
        [task] = engine.external.fetch_and_lock(["kyc.screen"], worker_id="w1")
        result = engine.external.fail(
            task.id, worker_id="w1", error_message="invalid certificate", retries=0
        )
        assert result == "incident"
    with fresh(db_url, clock) as engine:
        failed = engine.instances.get(started.id)
        assert failed.status == InstanceStatus.FAILED
        assert failed.failure is not None
        assert (failed.failure.element_id, failed.failure.error_type) == (
            "check",
            "ExternalTaskFailure",
        )
        assert "invalid certificate" in failed.failure.message
        [incident] = engine.incidents.list()
        assert (incident.instance_id, incident.kind, incident.attempts) == (started.id, "job", 1)
        [job] = jobs_of(engine, started.id)
        assert (job.status, job.retries) == ("incident", 0)
        clock.set(T0 + 1000 * HOUR)
        assert engine.external.fetch_and_lock(["kyc.screen"], worker_id="w2") == []
    with fresh(db_url, clock) as engine:
        engine.incidents.retry(incident.id, user="ops")
        assert engine.incidents.list() == []
        [again] = engine.external.fetch_and_lock(["kyc.screen"], worker_id="w2")
        assert (again.id, again.attempts, again.retries) == (task.id, 0, 3)
    with fresh(db_url, clock) as engine:
        done = engine.external.complete(again.id, worker_id="w2", variables={"hits": 0})
        assert [t.element_id for t in done.tasks] == ["open"]
        assert done.status == InstanceStatus.RUNNING


def test_external_task_bpmn_error_takes_the_boundary(db_url: str, tmp_path: Path) -> None:
    clock = FixedClock(T0)
    deploy(db_url, tmp_path, clock, screen=SCREEN)
    with fresh(db_url, clock) as engine:
        started = engine.instances.start("screen", data={"name": "Mallory"})
        [task] = engine.external.fetch_and_lock(["kyc.screen"], worker_id="w1")
    with fresh(db_url, clock) as engine:
        with pytest.raises(ConcurrencyError):
            engine.external.bpmn_error(task.id, worker_id="w2", error_code="SANCTIONS")
        after = engine.external.bpmn_error(
            task.id,
            worker_id="w1",
            error_code="SANCTIONS",
            error_message="EU list",
            variables={"listed": True},
        )
        [review] = after.tasks
        assert (review.element_id, review.candidate_groups) == ("review", ("compliance",))
    with fresh(db_url, clock) as engine:
        assert engine.jobs.list() == []
        shown = engine.instances.get(started.id)
        assert shown.status == InstanceStatus.RUNNING
        assert engine.tasks.data(review.id)["listed"] is True
        [error] = [
            e for e in engine.history.for_instance(started.id) if e.type == "service_bpmn_error"
        ]
        assert (error.actor, error.data) == (
            "w1",
            {"service": "kyc.screen", "code": "SANCTIONS", "message": "EU list"},
        )


# -- 8. every transition is whole: a bad result is a failed attempt, a lost lock changes nothing


def test_bad_handler_results_are_failed_attempts(db_url: str, tmp_path: Path) -> None:
    clock = FixedClock(T0)
    deploy(db_url, tmp_path, clock, notify=NOTIFY)
    with fresh(db_url, clock) as engine:
        started = engine.instances.start("notify", data={"customer": "Ann"})
        revision = engine.instances.get(started.id).revision
    bad_results: list[tuple[Handler, str]] = [
        (lambda data: ["not", "a", "dict"], "TypeError: service 'SendLetter' returned list"),
        (lambda data: {"when": object()}, "InvalidData"),
    ]
    for handler, error in bad_results:
        with fresh(db_url, clock, {"SendLetter": handler}) as engine:
            [outcome] = engine.jobs.run_due().outcomes
            assert outcome.result == "retry"
            assert outcome.message is not None
            assert error in outcome.message
        with fresh(db_url, clock) as engine:
            [job] = jobs_of(engine, started.id)
            assert job.last_error == outcome.message
            assert (job.status, job.lock_owner, job.lock_expires_at) == ("ready", None, None)
            instance = engine.instances.get(started.id)
            # Nothing of the result reached the instance.
            assert (instance.status, instance.revision) == (InstanceStatus.RUNNING, revision)
            assert instance.data == {"customer": "Ann"}
            assert event_types(engine, started.id)[-1] == "job_failed"
        clock.set(job.due_at)
    with fresh(db_url, clock, {"SendLetter": lambda data: {"sent": True}}) as engine:
        [outcome] = engine.jobs.run_due().outcomes
        assert outcome.result == "completed"
        done = engine.instances.get(started.id)
        assert (done.status, done.data) == (
            InstanceStatus.COMPLETED,
            {"customer": "Ann", "sent": True},
        )
        assert event_types(engine, started.id) == [
            "instance_started",
            "job_failed",
            "job_failed",
            "service_completed",
            "data_changed",
            "end_event_reached",
            "instance_completed",
        ]
        assert engine.jobs.list() == []


def test_invalid_external_variables_change_nothing(db_url: str, tmp_path: Path) -> None:
    clock = FixedClock(T0)
    deploy(db_url, tmp_path, clock, screen=SCREEN)
    with fresh(db_url, clock) as engine:
        started = engine.instances.start("screen", data={"name": "Ada"})
        [task] = engine.external.fetch_and_lock(["kyc.screen"], worker_id="w1")
    with fresh(db_url, clock) as engine:
        with pytest.raises(InvalidData):
            engine.external.complete(task.id, worker_id="w1", variables={"hits": object()})
        with pytest.raises(InvalidData):
            engine.external.bpmn_error(
                task.id, worker_id="w1", error_code="SANCTIONS", variables={"x": {1, 2}}
            )
        job = engine.jobs.get(task.id)
        assert (job.lock_owner, job.attempts, job.status) == ("w1", 0, "ready")
        instance = engine.instances.get(started.id)
        assert (instance.revision, instance.tasks) == (started.revision, ())
        assert event_types(engine, started.id) == ["instance_started"]
        done = engine.external.complete(task.id, worker_id="w1", variables={"hits": 0})
        assert [t.element_id for t in done.tasks] == ["open"]


def test_a_worker_that_lost_its_timer_lock_changes_nothing(db_url: str, tmp_path: Path) -> None:
    clock = FixedClock(T0)
    deploy(db_url, tmp_path, clock, escalation=ESCALATION)
    with fresh(db_url, clock) as engine:
        started = engine.instances.start("escalation")
    with fresh(db_url, clock) as engine:
        # Worker a takes the due timer, then stalls past its lock.
        [held] = engine.jobs.claim(owner="a", now=T0 + 48 * HOUR, lock_duration=MINUTE)
        assert (held["lock_owner"], held["element_id"]) == ("a", "deadline")
        assert engine.jobs.run_due(now=T0 + 48 * HOUR + 30 * SECOND, worker_id="b").outcomes == ()
        [outcome] = engine.jobs.run_due(now=T0 + 48 * HOUR + 2 * MINUTE, worker_id="b").outcomes
        assert outcome.result == "fired"
    with fresh(db_url, clock) as engine:
        late = engine.jobs.execute(held, owner="a", now=T0 + 48 * HOUR + 3 * MINUTE)
        assert late.result == "conflict"
        assert event_types(engine, started.id).count("timer_fired") == 1
        assert [t.element_id for t in engine.tasks.query(instance_id=started.id)] == ["supervise"]
        assert engine.jobs.list() == []


def test_a_worker_that_lost_its_service_lock_changes_nothing(db_url: str, tmp_path: Path) -> None:
    clock = FixedClock(T0)
    deploy(db_url, tmp_path, clock, notify=NOTIFY)
    letters: list[str] = []

    def send(data: dict[str, Any]) -> dict[str, Any]:
        letters.append(data["customer"])
        return {"sent": len(letters)}

    with fresh(db_url, clock) as engine:
        started = engine.instances.start("notify", data={"customer": "Ann"})
    with fresh(db_url, clock, {"SendLetter": send}) as engine:
        [held] = engine.jobs.claim(owner="a", lock_duration=MINUTE)
    clock.set(T0 + 2 * MINUTE)
    with fresh(db_url, clock, {"SendLetter": send}) as engine:
        [outcome] = engine.jobs.run_due(worker_id="b").outcomes
        assert outcome.result == "completed"
        assert engine.instances.get(started.id).data["sent"] == 1
    with fresh(db_url, clock, {"SendLetter": send}) as engine:
        late = engine.jobs.execute(held, owner="a")
        assert late.result == "conflict"
        # The call was made once: the stale worker does not call the service again.
        assert letters == ["Ann"]
        done = engine.instances.get(started.id)
        assert (done.status, done.data["sent"]) == (InstanceStatus.COMPLETED, 1)
        assert event_types(engine, started.id).count("service_completed") == 1
        assert engine.jobs.list() == []


# -- timers and other jobs together --------------------------------------------------------------


def test_timer_on_an_external_task_takes_it_away_from_the_worker(
    db_url: str, tmp_path: Path
) -> None:
    clock = FixedClock(T0)
    deploy(db_url, tmp_path, clock, screen_timeout=SCREEN_TIMEOUT)
    with fresh(db_url, clock) as engine:
        started = engine.instances.start("screen_timeout")
        assert sorted(j.kind for j in jobs_of(engine, started.id)) == ["external", "timer"]
        [task] = engine.external.fetch_and_lock(
            ["kyc.screen"], worker_id="w1", lock_duration=timedelta(hours=2)
        )
    clock.set(T0 + HOUR)
    with fresh(db_url, clock) as engine:
        [outcome] = engine.jobs.run_due().outcomes
        assert (outcome.result, outcome.element_id) == ("fired", "too_slow")
    with fresh(db_url, clock) as engine:
        assert [t.element_id for t in engine.tasks.query(instance_id=started.id)] == [
            "manual_check"
        ]
        assert jobs_of(engine, started.id) == []
        # The worker still holds a lock that no longer stands for anything.
        with pytest.raises(NotFound):
            engine.external.complete(task.id, worker_id="w1", variables={"hits": 0})
        assert engine.instances.get(started.id).data == {}
        assert engine.external.fetch_and_lock(["kyc.screen"], worker_id="w2") == []


def test_jobs_of_a_failed_instance_are_held_until_it_is_retried(
    db_url: str, tmp_path: Path
) -> None:
    clock = FixedClock(T0)
    deploy(db_url, tmp_path, clock, failing_branch=FAILING_BRANCH)
    with fresh(db_url, clock) as engine:
        started = engine.instances.start("failing_branch", data={"divisor": 0})
        assert started.status == InstanceStatus.FAILED
        [job] = jobs_of(engine, started.id)
        assert (job.kind, job.status, job.due_at) == ("timer", "held", T0 + 48 * HOUR)
        # A failed step is an incident of its own (no job behind it).
        [incident] = engine.incidents.list()
        assert (incident.kind, incident.job_id, incident.element_id) == ("step", None, "ratio")
    clock.set(T0 + 50 * HOUR)
    with fresh(db_url, clock) as engine:
        assert engine.jobs.run_due().outcomes == ()
        assert engine.jobs.get(job.id).status == "held"
        assert "timer_fired" not in event_types(engine, started.id)
    with fresh(db_url, clock) as engine:
        retried = engine.instances.retry(started.id, data={"divisor": 4}, user="ops")
        assert retried.status == InstanceStatus.RUNNING
        [job] = jobs_of(engine, started.id)
        assert (job.status, job.due_at) == ("ready", T0 + 48 * HOUR)
    with fresh(db_url, clock) as engine:
        [outcome] = engine.jobs.run_due().outcomes
        assert (outcome.result, outcome.element_id) == ("fired", "deadline")
        assert [t.element_id for t in engine.tasks.query(instance_id=started.id)] == ["supervise"]
