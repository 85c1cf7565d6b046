"""The only module that imports SpiffWorkflow's workflow, task and serializer classes.

It gives the services a small vocabulary: build a runnable definition from stored sources,
start a workflow, complete a human task, retry a failed step, and dump/load state *without*
the process spec, which lives once per definition in an in-process cache instead of inside
every instance (about two thirds of SpiffWorkflow's own JSON).
"""

from __future__ import annotations

import copy
import itertools
import json
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from decimal import Decimal
from typing import Any
from uuid import UUID

import SpiffWorkflow.bpmn.specs.event_definitions.timer as _timer_module
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.script_engine.python_environment import BasePythonScriptEngineEnvironment
from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter
from SpiffWorkflow.bpmn.serializer.workflow import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.specs.control import BoundaryEventSplit, _EndJoin
from SpiffWorkflow.bpmn.specs.event_definitions.conditional import ConditionalEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.item_aware_event import (
    ErrorEventDefinition,
    SignalEventDefinition,
)
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.multiple import MultipleEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.simple import NoneEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import (
    CycleTimerEventDefinition,
    TimerEventDefinition,
)
from SpiffWorkflow.bpmn.specs.mixins.events.end_event import EndEvent
from SpiffWorkflow.bpmn.specs.mixins.events.event_types import ThrowingEvent
from SpiffWorkflow.bpmn.specs.mixins.events.intermediate_event import (
    BoundaryEvent,
    EventBasedGateway,
)
from SpiffWorkflow.bpmn.specs.mixins.events.start_event import StartEvent
from SpiffWorkflow.bpmn.specs.mixins.manual_task import ManualTask
from SpiffWorkflow.bpmn.specs.mixins.multiinstance_task import MultiInstanceTask
from SpiffWorkflow.bpmn.specs.mixins.script_task import ScriptTask
from SpiffWorkflow.bpmn.specs.mixins.service_task import ServiceTask
from SpiffWorkflow.bpmn.specs.mixins.subworkflow_task import CallActivity, SubWorkflowTask
from SpiffWorkflow.bpmn.specs.mixins.user_task import UserTask
from SpiffWorkflow.bpmn.util import BpmnEvent
from SpiffWorkflow.bpmn.util.task import BpmnTaskIterator
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.exceptions import SpiffWorkflowException, WorkflowException
from SpiffWorkflow.specs.base import TaskSpec
from SpiffWorkflow.specs.Join import Join
from SpiffWorkflow.specs.MultiChoice import MultiChoice
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG
from SpiffWorkflow.spiff.specs.defaults import BusinessRuleTask as SpiffBusinessRuleTask
from SpiffWorkflow.spiff.specs.event_definitions import (
    ErrorEventDefinition as SpiffErrorEventDefinition,
)
from SpiffWorkflow.spiff.specs.event_definitions import (
    EscalationEventDefinition as SpiffEscalationEventDefinition,
)
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskIterator, TaskState
from SpiffWorkflow.workflow import Workflow as SpiffBaseWorkflow

from bankflow._limits import DEFAULT_LIMITS, Limits
from bankflow.definitions._bpmn import q
from bankflow.definitions._parser import COMPENSATED, BankflowServiceTask, build_process
from bankflow.definitions._source import SourceFile
from bankflow.definitions._source import parse as parse_source
from bankflow.errors import BpmnError, DatabaseError, DefinitionError, Interrupted, InvalidData
from bankflow.language._expressions import ExpressionError, compile_expression
from bankflow.models import Diagnostic
from bankflow.runtime import _variables
from bankflow.runtime._data import check_data
from bankflow.services import ServiceRegistry

__all__ = [
    "Failure",
    "HumanTask",
    "Runnable",
    "SandboxEnvironment",
    "ScriptEngine",
    "Step",
    "StepError",
    "build_runnable",
    "dump_state",
    "load_state",
]

STATE_FORMAT = "bankflow-1/spiff-1.5"

# SpiffWorkflow stops walking the task tree at depth 1000, so a process that loops ~333
# times silently reports itself completed. Lift the limit; a loop's cost then shows up
# as state size, which is visible, instead of as a wrong answer.
_MAX_TREE_DEPTH = 10_000_000
for _iterator in (TaskIterator, BpmnTaskIterator):
    _defaults = list(_iterator.__init__.__defaults__ or ())
    _defaults[_defaults.index(1000)] = _MAX_TREE_DEPTH
    _iterator.__init__.__defaults__ = tuple(_defaults)


# SpiffWorkflow predicts the rest of a branch recursively, one Python frame per element, so
# a chain of ~480 elements hit the recursion limit, and a cycle of elements that all will
# certainly run (no gateway in it) recursed until it did. The same walk, in the same order,
# with an explicit stack; a branch stops when an element that will certainly run comes back
# on the path, since everything after it would repeat what the path already predicted (the
# tree still grows as the loop actually runs).
def _predict(
    self: TaskSpec,
    my_task: Any,
    seen: list[Any] | None = None,
    looked_ahead: int = 0,
    mask: int = TaskState.PREDICTED_MASK,
) -> None:
    # ``certain[-1]`` counts the specs of the tasks that will certainly run on the path since
    # its last predicted task (a predicted task starts a new count): a child whose spec is
    # in it closes a loop of certain tasks.
    certain: list[dict[Any, int]] = [{}]
    stack: list[tuple[Any, list[Any], int, Iterator[Any] | None, bool]] = [
        (my_task, [] if seen is None else seen, looked_ahead, None, False)
    ]
    while stack:
        task, path_seen, ahead, children, predicted = stack.pop()
        spec = task.task_spec
        if children is None:
            if task.has_state(mask):
                spec._predict_hook(task)
            predicted = task.has_state(TaskState.PREDICTED_MASK)
            if predicted:
                path_seen.append(spec)
                certain.append({})
            else:
                certain[-1][spec] = certain[-1].get(spec, 0) + 1
            children = iter(list(task.children))
        look_ahead = task.has_state(TaskState.DEFINITE_MASK) or ahead + 1 < spec.lookahead
        for child in children:
            if child.has_state(mask) and child not in path_seen and look_ahead:
                if child.has_state(TaskState.DEFINITE_MASK) and child.task_spec in certain[-1]:
                    child.internal_data[_UNPREDICTED] = True  # predicted when it is reached
                    continue
                stack.append((task, path_seen, ahead, children, predicted))
                stack.append((child, path_seen[:], ahead + 1, None, False))
                break
        else:  # every child done: the task leaves the path
            if predicted:
                certain.pop()
            else:
                left = certain[-1][spec] - 1
                if left:
                    certain[-1][spec] = left
                else:
                    del certain[-1][spec]


_UNPREDICTED = "bankflow_unpredicted"
_spec_on_ready = TaskSpec._on_ready


def _on_ready(self: TaskSpec, my_task: Any) -> None:
    if my_task.internal_data.pop(_UNPREDICTED, False):
        self._predict_hook(my_task)
        for child in list(my_task.children):
            if child.has_state(TaskState.PREDICTED_MASK | TaskState.FUTURE):
                child.task_spec._predict(child, mask=TaskState.PREDICTED_MASK | TaskState.FUTURE)
    _spec_on_ready(self, my_task)


TaskSpec._predict = _predict
TaskSpec._on_ready = _on_ready


# SpiffWorkflow's timers read ``datetime.now(timezone.utc)``. Give that module a datetime
# whose ``now`` is the engine's injected clock while bankflow runs a step, so timers arm
# and fire on the clock tests and ``bankflow worker --now`` control, never the wall clock.
_CLOCK: ContextVar[Callable[[], datetime] | None] = ContextVar("bankflow_clock", default=None)


class _ClockedDatetime(datetime):
    @classmethod
    def now(cls, tz: tzinfo | None = None) -> Any:
        source = _CLOCK.get()
        if source is None:
            return datetime.now(tz)
        current = source()
        return current if tz is None else current.astimezone(tz)


_timer_module.datetime = _ClockedDatetime

# A timer fires only when its own job runs (``fire_timers``), once per run, so every firing
# is one ``timer_fired`` in the history. Left alone, SpiffWorkflow fires any overdue timer
# whenever another task of the instance completes (with no record of it), every overdue
# timer of the instance in one job, and a cycle several times in one step. A timer not yet
# armed still arms as usual, firing at once when its time has already passed.
_FIRING: ContextVar[UUID | None] = ContextVar("bankflow_firing_timer", default=None)


def _may_fire(task: Any) -> bool:
    return task._get_internal_data("event_value") is None or _FIRING.get() == task.id


def _gate_has_fired(method: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def has_fired(self: Any, my_task: Any) -> bool:
        if _may_fire(my_task):
            return method(self, my_task)
        return bool(my_task._get_internal_data("event_fired", False))

    return has_fired


def _gate_cycle(method: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def cycle_complete(self: Any, my_task: Any) -> bool:
        value = my_task._get_internal_data("event_value")
        if _may_fire(my_task) or value.get("cycles") == 0:
            return method(self, my_task)
        return False

    return cycle_complete


for _definition in (
    _timer_module.TimeDateEventDefinition,
    _timer_module.DurationTimerEventDefinition,
):
    _definition.has_fired = _gate_has_fired(_definition.has_fired)
CycleTimerEventDefinition.cycle_complete = _gate_cycle(CycleTimerEventDefinition.cycle_complete)


@contextmanager
def clock(now: Callable[[], datetime]) -> Iterator[None]:
    """Run SpiffWorkflow with ``now`` as its idea of the current time."""
    token = _CLOCK.set(now)
    try:
        yield
    finally:
        _CLOCK.reset(token)


# -- what one engine call may spend -------------------------------------------------------


@dataclass
class Budget:
    """What one engine call may spend: ``max_steps`` elements run without reaching a wait
    state, so a gateway cycle with no exit fails the instance instead of holding the
    engine (and, before, the database's write lock) forever."""

    max_steps: int
    interrupted: Callable[[], bool] | None = None
    steps: int = 0
    handlers_called: int = 0
    ran: Counter[str] = field(default_factory=Counter)


_BUDGET: ContextVar[Budget | None] = ContextVar("bankflow_step_budget", default=None)


@contextmanager
def budget(max_steps: int, *, interrupted: Callable[[], bool] | None = None) -> Iterator[Budget]:
    """Count the elements the engine runs inside the block against ``max_steps``."""
    spent = Budget(max_steps=max_steps, interrupted=interrupted)
    token = _BUDGET.set(spent)
    try:
        yield spent
    finally:
        _BUDGET.reset(token)


_INTERRUPT: ContextVar[Callable[[], bool] | None] = ContextVar("bankflow_interrupt", default=None)


@contextmanager
def interruptible(check: Callable[[], bool]) -> Iterator[None]:
    """Steps run inside the block stop (``Interrupted``) between two elements once
    ``check()`` is true: how a worker told to stop ends a long step within its grace."""
    token = _INTERRUPT.set(check)
    try:
        yield
    finally:
        _INTERRUPT.reset(token)


def _spend(task: Any) -> None:
    spent = _BUDGET.get()
    check = _INTERRUPT.get()
    if check is not None and check():
        raise Interrupted("stopped before the step finished; nothing was written")
    if spent is None:
        return
    spent.steps += 1
    element = getattr(task.task_spec, "bpmn_id", None) or task.task_spec.name
    spent.ran[element] += 1
    if spent.steps > spent.max_steps:
        hot, times = spent.ran.most_common(1)[0]
        raise StepError(
            Failure(
                message=f"the process ran {spent.max_steps:,} elements without reaching a "
                f"wait state (it ran {hot} {times:,} times): it loops with no exit; fix the "
                "diagram and migrate or cancel the instance, or raise Limits.max_steps",
                element_id=hot if hot in _bpmn_ids(task.workflow) else None,
                task_id=str(task.id),
                error_type="StepLimitExceeded",
            )
        )


def _bpmn_ids(workflow: Any) -> set[str]:
    return {getattr(t, "bpmn_id", None) or "" for t in workflow.spec.task_specs.values()}


@dataclass(frozen=True)
class HumanTask:
    """A user or manual task waiting for a person."""

    id: str
    element_id: str
    name: str | None
    lane: str | None


@dataclass(frozen=True)
class Failure:
    """Where and why a step failed: what ``bankflow show`` prints for a failed instance."""

    message: str
    element_id: str | None
    task_id: str | None
    error_type: str
    line: int | None = None


class StepError(Exception):
    """A script, condition or service raised while the engine ran automatic steps."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure
        self.workflow: Any = None


@dataclass(frozen=True)
class Runnable:
    """A parsed definition, built once per process and shared by every instance of it."""

    spec: Any
    subprocess_specs: dict[str, Any]


def build_runnable(process_key: str, sources: Iterable[tuple[str, bytes, str]]) -> Runnable:
    """Build a stored process (and what it calls) exactly as deploy checked it."""
    sources = list(sources)
    spec, subprocess_specs = build_process(process_key, sources)
    roots = _bpmn_roots(sources)  # read once for both passes below
    _mark_interrupting_timer_starts(subprocess_specs, roots)
    _name_flows((spec, *subprocess_specs.values()), roots)
    _arm_message_event_subprocesses(spec, subprocess_specs)
    return Runnable(spec=spec, subprocess_specs=subprocess_specs)


def _bpmn_roots(sources: Iterable[tuple[str, bytes, str]]) -> list[Any]:
    """The parsed BPMN documents among a definition's stored sources (they parsed at
    deploy; one that no longer does is skipped, as ``build_process`` reports it)."""
    roots = []
    for name, content, kind in sources:
        if kind != "bpmn":
            continue
        root = parse_source(SourceFile(display=name, name=name, content=content))
        if not isinstance(root, Diagnostic):
            roots.append(root)
    return roots


# -- event sub-processes --------------------------------------------------------------------

# SpiffWorkflow arms the timer start event of an event sub-process when its scope starts
# and runs the event sub-process when it fires, but never reads ``isInterrupting``: an
# interrupting one ran beside the work it must cancel. Its parser also reads no error or
# escalation definition on a start event: such a start was a none start, so the event
# sub-process ran as soon as the instance started, whatever happened. Both are read from
# the source here: the start event catches its error or escalation (waiting from the
# start of its scope, like a timer start), and an interrupting one is marked; when it
# fires, the rest of its scope is cancelled (BPMN: the event sub-process replaces the
# scope's work).
_INTERRUPTING = "bankflow_interrupting"


def _mark_interrupting_timer_starts(
    subprocess_specs: Mapping[str, Any], roots: Iterable[Any]
) -> None:
    wanted: dict[tuple[str, str], tuple[bool, Any]] = {}
    for root in roots:
        for sub in root.iter(q("subProcess")):
            if (sub.get("triggeredByEvent") or "").strip().lower() != "true":
                continue
            for start in sub.iterchildren(q("startEvent")):
                interrupting = (start.get("isInterrupting") or "true").strip().lower() != "false"
                key = (sub.get("id") or "", start.get("id") or "")
                caught = _caught_by_start(root, start)
                if caught is not None:
                    # An error start event always interrupts.
                    wanted[key] = (interrupting or caught[0] == "error", caught[1])
                elif interrupting and any(
                    start.find(q(kind)) is not None
                    for kind in (
                        "timerEventDefinition",
                        "signalEventDefinition",
                        "messageEventDefinition",
                        "conditionalEventDefinition",
                    )
                ):
                    wanted[key] = (True, None)
    for sub_spec in subprocess_specs.values():
        for task_spec in sub_spec.task_specs.values():
            found = wanted.get((sub_spec.name, getattr(task_spec, "bpmn_id", None) or ""))
            if not isinstance(task_spec, StartEvent) or found is None:
                continue
            interrupting, definition = found
            if definition is not None:
                if not isinstance(task_spec.event_definition, NoneEventDefinition):
                    continue  # SpiffWorkflow read the definition itself
                task_spec.event_definition = definition
            if interrupting:
                setattr(task_spec, _INTERRUPTING, True)
            elif isinstance(definition, SpiffEscalationEventDefinition):
                setattr(task_spec, _REARM, True)  # each escalation starts it again


def _caught_by_start(root: Any, start: Any) -> tuple[str, Any] | None:
    """The error or escalation a start event catches, as the definition SpiffWorkflow's
    throw events use (matched by class and code; no code catches every one)."""
    for kind, definition_class, ref_attr, code_attr in (
        ("error", SpiffErrorEventDefinition, "errorRef", "errorCode"),
        ("escalation", SpiffEscalationEventDefinition, "escalationRef", "escalationCode"),
    ):
        found = start.find(q(f"{kind}EventDefinition"))
        if found is None:
            continue
        ref = (found.get(ref_attr) or "").strip()
        code = None
        label = ref or kind
        for element in root.iter(q(kind)):
            if ref and element.get("id") == ref:
                code = (element.get(code_attr) or "").strip() or None
                label = element.get("name") or ref
        return kind, definition_class(label, code=code)
    return None


# SpiffWorkflow starts an event sub-process with a message (or signal) start only when the
# event reaches the top workflow's event manager, which creates it then (``trigger_specs``):
# until that moment nothing waits, so the subscription index never lists it, correlation
# finds nobody, and one nested in a sub-process is never started at all. Here it is a branch
# from its scope's start instead, as SpiffWorkflow does for timer starts: its start event
# waits (and is subscribed) while the scope runs, and goes when the scope ends.
def _arm_message_event_subprocesses(spec: Any, subprocess_specs: Mapping[str, Any]) -> None:
    for scope in (spec, *subprocess_specs.values()):
        start = scope.start
        for name in list(getattr(start, "trigger_specs", ())):
            sub_spec = subprocess_specs.get(name)
            task_spec = scope.task_specs.get(name)
            if sub_spec is None or task_spec is None:
                continue
            if not any(
                isinstance(
                    s.event_definition,
                    MessageEventDefinition | SignalEventDefinition | ConditionalEventDefinition,
                )
                for s in sub_spec.bpmn_start_events
            ):
                continue
            start.trigger_specs.remove(name)
            if task_spec not in start.outputs:
                start.connect(task_spec)
                task_spec.connect(scope.end)
            setattr(task_spec, _REARM, True)


_REARM = "bankflow_rearm"
_start_on_complete = StartEvent._on_complete


def _start_completed(self: StartEvent, my_task: Any) -> None:
    _start_on_complete(self, my_task)
    if getattr(self, _INTERRUPTING, False):
        _cancel_rest_of_scope(my_task.workflow)
    else:
        _rearm_event_subprocess(my_task.workflow, self)


def _rearm_event_subprocess(event_subprocess: Any, start: StartEvent) -> None:
    """A non-interrupting message or escalation event sub-process that started leaves a
    new one waiting beside it: the event may come again while the scope runs (each one
    starts its own handler, as in Camunda)."""
    if event_subprocess.parent_task_id is None:
        return
    scope = event_subprocess.parent_workflow
    fired = scope.get_task_from_id(event_subprocess.parent_task_id)
    if fired is None or fired.parent is None:
        return
    if not (getattr(fired.task_spec, _REARM, False) or getattr(start, _REARM, False)):
        return
    if fired.parent is not scope.task_tree:
        return
    again = fired.parent._add_child(fired.task_spec, TaskState.FUTURE)
    again.triggered = True  # not an output SpiffWorkflow would sync away
    again.task_spec._update(again)


def _cancel_rest_of_scope(event_subprocess: Any) -> None:
    """Cancel everything in the scope of ``event_subprocess`` but the event sub-process:
    every branch that does not lead to it, from its task up to the scope's root."""
    if event_subprocess.parent_task_id is None:
        return
    scope = event_subprocess.parent_workflow
    keep = scope.get_task_from_id(event_subprocess.parent_task_id)
    while keep is not None and keep.parent is not None:
        for sibling in list(keep.parent.children):
            if sibling is not keep and sibling.workflow is scope:
                sibling.cancel()
        keep = keep.parent


StartEvent._on_complete = _start_completed


# A non-interrupting message or signal boundary event that fired waits again while its
# activity runs, as in Camunda (SpiffWorkflow armed it once per activation: a customer's
# second call during the review found nobody waiting). The new wait is one more boundary
# task of the same split, which the boundary join cancels when the activity ends.
_boundary_on_complete = BoundaryEvent._on_complete
_REARMED_BOUNDARY = (MessageEventDefinition, SignalEventDefinition)


def _boundary_completed(self: BoundaryEvent, my_task: Any) -> None:
    _boundary_on_complete(self, my_task)
    if self.cancel_activity or not isinstance(self.event_definition, _REARMED_BOUNDARY):
        return
    split = my_task.parent
    if split is None or not isinstance(split.task_spec, BoundaryEventSplit):
        return
    main = next((t for t in split.children if not isinstance(t.task_spec, BoundaryEvent)), None)
    if main is None or main.has_state(TaskState.FINISHED_MASK):
        return
    again = split._add_child(self, TaskState.FUTURE)
    self._predict(again, mask=TaskState.PREDICTED_MASK | TaskState.FUTURE)
    self._update(again)


BoundaryEvent._on_complete = _boundary_completed

# An event sub-process whose start event still waits is only active while its scope is:
# when the rest of the scope has finished, the scope ends and the wait is cancelled (its
# timer job goes). SpiffWorkflow's end join waited for it, so a finished instance stayed
# running until the timer fired, and then ran the event sub-process after all.
_end_join_threshold = _EndJoin._check_threshold_unstructured


def _end_join_may_fire(self: _EndJoin, my_task: Any) -> bool:
    idle = _idle_event_subprocesses(my_task.workflow)
    if not idle:
        return bool(_end_join_threshold(self, my_task))
    skipped = {t.id for task in idle for t in task}  # each idle task and what follows it
    for task in TaskIterator(
        my_task.workflow.task_tree, state=TaskState.NOT_FINISHED_MASK, end_at_spec=self.name
    ):
        if task is not my_task and task.id not in skipped:
            return False
    for task in idle:
        task.cancel()
    return True


def _idle_event_subprocesses(workflow: Any) -> list[Any]:
    """The scope's event sub-processes that wait for their start event (SpiffWorkflow
    starts those with a timer start as branches from the scope's start)."""
    if not any(isinstance(s, SubWorkflowTask) for s in workflow.spec.start.outputs):
        return []  # no event sub-process starts with the scope: nothing to walk
    idle = []
    for task in workflow.task_tree.children:  # the tree's root is the scope's start
        if task.state != TaskState.STARTED or not isinstance(task.task_spec, SubWorkflowTask):
            continue
        sub = workflow.top_workflow.subprocesses.get(task.id)
        if sub is None or sub.completed:
            continue
        active = [t for t in sub.tasks.values() if t.state & (_ACTIVE_STATES | TaskState.STARTED)]
        if active and all(
            t.state == TaskState.WAITING and isinstance(t.task_spec, StartEvent) for t in active
        ):
            idle.append(task)
    return idle


_EndJoin._check_threshold_unstructured = _end_join_may_fire


def _waiting_event_subprocess_tasks(workflow: Any) -> set[UUID]:
    """The ids of the tasks of event sub-processes that wait for their start event: they
    are not work a process started by hand has begun."""
    ids = set()
    for task in _idle_event_subprocesses(workflow):
        ids.add(task.id)
        ids.update(workflow.top_workflow.subprocesses[task.id].tasks)
    return ids


# Which tasks of a workflow are READY or WAITING, kept up to date as their states change, so
# the engine loop finds the next task to run without scanning every task the workflow ever
# had: a loop of n steps cost O(n^2) (10,000 steps took two minutes), now O(n).
_ACTIVE_STATES = TaskState.READY | TaskState.WAITING
_sequence = itertools.count()
_task_init = Task.__init__
_task_set_state = Task._set_state
_workflow_remove_task = SpiffBaseWorkflow._remove_task


def _active_index(workflow: Any) -> dict[UUID, Any]:
    index: dict[UUID, Any] | None = workflow.__dict__.get("_bankflow_active")
    if index is None:
        index = workflow.__dict__["_bankflow_active"] = {}
    return index


def _init_task(self: Task, workflow: Any, *args: Any, **kwargs: Any) -> None:
    _task_init(self, workflow, *args, **kwargs)
    self._bankflow_seq = next(_sequence)  # creation order, the order SpiffWorkflow runs in
    if self._state & _ACTIVE_STATES:
        _active_index(workflow)[self.id] = self


def _set_task_state(self: Task, value: int) -> None:
    if self.task_spec.bankflow_human and (
        value == TaskState.READY
        or (value == TaskState.CANCELLED and self._state == TaskState.READY)
    ):
        # Where in the step a person's task appeared or went, for history's order.
        _note(self, "task_ready" if value == TaskState.READY else "task_cancelled", None)
    _task_set_state(self, value)
    if value & _ACTIVE_STATES:
        _active_index(self.workflow)[self.id] = self
    else:
        _active_index(self.workflow).pop(self.id, None)


def _remove_task(self: Any, task_id: UUID) -> None:
    _active_index(self).pop(task_id, None)
    _workflow_remove_task(self, task_id)


Task.__init__ = _init_task
Task._set_state = _set_task_state
SpiffBaseWorkflow._remove_task = _remove_task


# Process variables (``_variables``): a task's data is a view of its process's variables,
# taken afresh where SpiffWorkflow copied its parent's data and again when it runs; what
# it changed is written back when it completes (and whenever it syncs again). Only
# bankflow's workflows: a raw SpiffWorkflow run in the same process (bench/) is untouched.
_task_inherit_data = Task._inherit_data
_task_run = Task.run
_task_complete = Task.complete
_call_copy_data = CallActivity.copy_data
CallActivity.bankflow_own_scope = True
# Joins merge their branches' copies and an embedded sub-process takes its last task's
# copy: both are stale views, never writes of their own (what ran wrote already).
Join.bankflow_writes = False
SubWorkflowTask.bankflow_writes = False
CallActivity.bankflow_writes = True
# What history records of a task (``path``): one attribute read per task, no isinstance.
TaskSpec.bankflow_human = False
TaskSpec.bankflow_records_data = False
TaskSpec.bankflow_gateway = False
UserTask.bankflow_human = ManualTask.bankflow_human = True
ScriptTask.bankflow_records_data = ServiceTask.bankflow_records_data = True
SpiffBusinessRuleTask.bankflow_records_data = True  # what the parser builds (_parser)
MultiChoice.bankflow_gateway = EventBasedGateway.bankflow_gateway = True


def _process_wide(task: Task) -> bool:
    return getattr(task.workflow.top_workflow, "_bankflow_variables", False) is True


def _evaluate_parameter(task: Any, expression: str) -> Any:
    return task.workflow.script_engine.evaluate(task, expression)


def _inherit_data(self: Task) -> None:
    if _process_wide(self):
        _variables.sync(self, _evaluate_parameter)
    else:
        _task_inherit_data(self)


def _run_task(self: Task) -> Any:
    if _process_wide(self):
        _variables.sync(self, _evaluate_parameter)
        if isinstance(self.task_spec, EndEvent):
            # Before it runs: what an end event does (terminate, throw an error that fails
            # the instance) comes after it was reached.
            _note(self, "end_event_reached", None)
    return _task_run(self)


def _complete_task(self: Task) -> None:
    if _process_wide(self):
        written = _variables.flush(self)
        written = _variables.write_outputs(self, _evaluate_parameter, written)
        spec = self.task_spec
        if written is not None and spec.bankflow_records_data:
            _note(self, "data_changed", written)
        if spec.bankflow_gateway and len(spec.outputs) > 1 and self.children:
            _note(self, "gateway_taken", _taken(self))
    _task_complete(self)


def _copy_call_data(self: Any, my_task: Any, subworkflow: Any) -> None:
    # A called process is a scope of its own: it starts with what the call passes in.
    _call_copy_data(self, my_task, subworkflow)
    start = subworkflow.get_next_task(
        subworkflow.task_tree, skip_subprocesses=True, spec_name="Start"
    )
    _variables.seed(subworkflow, start.data if start is not None else {})


_mi_completion = MultiInstanceTask.check_completion_condition


def _check_completion_condition(self: Any, my_task: Any) -> Any:
    # The instances wrote to the process's variables, not to the activity's copy: the
    # condition reads them afresh, in the activity (as Camunda evaluates it, on the
    # multi-instance body: an instance's own element variable is not visible), and an
    # output collection reaches the process.
    if not _process_wide(my_task):
        return _mi_completion(self, my_task)
    if not my_task.internal_data.get("merged") or self.condition is None:
        return None
    _variables.sync(my_task)
    return my_task.workflow.script_engine.evaluate(my_task, self.condition)


MultiInstanceTask.check_completion_condition = _check_completion_condition
Task._inherit_data = _inherit_data
Task.run = _run_task
Task.complete = _complete_task
CallActivity.copy_data = _copy_call_data


def _in_state(workflow: Any, state: int) -> list[Any]:
    """The workflow's tasks in ``state`` (READY or WAITING), in creation order."""
    found = [t for t in _active_index(workflow).values() if t._state == state]
    found.sort(key=lambda t: t._bankflow_seq)
    return found


class _Workflow(BpmnWorkflow):  # type: ignore[misc]
    """SpiffWorkflow's engine loop, finding READY and WAITING tasks from an index kept as
    task states change instead of walking the tree from the root for every step: the same
    order (tasks are created in tree order) without the quadratic cost a long loop or a
    long chain otherwise pays."""

    _bankflow_variables = True

    def do_engine_steps(
        self, will_complete_task: Any = None, did_complete_task: Any = None
    ) -> None:
        # What changed the variables (a form, a message, a script) may have made the
        # condition of a waiting conditional event true: check them before anything else
        # runs, and again after every step (``_do_engine_steps``).
        _conditions_fired(self)
        self._engine_round(will_complete_task, did_complete_task)
        while _conditions_fired(self):
            self._engine_round(will_complete_task, did_complete_task)

    def _engine_round(self, will_complete_task: Any, did_complete_task: Any) -> None:
        super().do_engine_steps(will_complete_task, did_complete_task)
        # SpiffWorkflow's round ends when the process itself ran nothing, even if a task
        # in a sub-process ran something a deeper one now has READY (an event
        # sub-process that caught an error thrown in its sub-process): run those too.
        waiting = self._ready_in_subprocesses()
        while waiting:
            super().do_engine_steps(will_complete_task, did_complete_task)
            now_ready = self._ready_in_subprocesses()
            if now_ready == waiting:  # nothing ran: stop rather than spin
                break
            waiting = now_ready

    def _ready_in_subprocesses(self) -> set[UUID]:
        return {
            t.id
            for sub in self.get_active_subprocesses()
            for t in _in_state(sub, TaskState.READY)
            if not t.task_spec.manual
        }

    def update_waiting_tasks(self) -> None:
        for task in _in_state(self, TaskState.WAITING):
            if task.state == TaskState.WAITING:
                task.task_spec._update(task)

    def _do_engine_steps(
        self, will_complete_task: Any = None, did_complete_task: Any = None
    ) -> bool:
        def update_workflow(wf: Any) -> int:
            count = 0
            ready = _in_state(wf, TaskState.READY)
            for task in ready:
                if not task.task_spec.manual and task.state == TaskState.READY:
                    _spend(task)
                    task.run()
                    count += 1
                    _conditions_fired(self)
            return count

        active_subprocesses = self.get_active_subprocesses()
        for subprocess in sorted(active_subprocesses, key=lambda v: v.depth, reverse=True):
            count = None
            while count is None or count > 0:
                count = update_workflow(subprocess)
            if subprocess.parent_task_id is not None:
                task = self.get_task_from_id(subprocess.parent_task_id)
                task.task_spec._update(task)

        count = update_workflow(self)
        return count > 0 or len(self.get_active_subprocesses()) > len(active_subprocesses)


# -- conditional events ---------------------------------------------------------------------

# SpiffWorkflow checks a conditional event's condition once, when the event is reached (or
# its activity or scope starts), never again: an instance arriving while it was false waited
# forever, whatever the data became. Here every waiting conditional event (intermediate
# catch, boundary event, event sub-process start) is checked again after each step, on
# the process's variables as they are now, and fires when its condition turns true (BPMN:
# "the condition changes from false to true"): true when reached fires at once; one that
# stays true does not fire again, so a non-interrupting one fires once per change.
_CONDITIONS = "bankflow_conditions"  # in the scope root's internal data: last values


def _conditional_has_fired(self: ConditionalEventDefinition, my_task: Any) -> bool:
    value = bool(
        my_task.workflow.script_engine.evaluate(
            my_task, self.expression, external_context=my_task.workflow.data_objects
        )
    )
    if isinstance(my_task.task_spec, StartEvent):
        # An event sub-process's start waits again after it fired: remember the value
        # across those waits, in the scope, so a condition that stays true fires once.
        # The event sub-process is a new workflow each time: remember in its scope.
        scope = my_task.workflow.parent_workflow or my_task.workflow
        record = scope.task_tree.internal_data.setdefault(_CONDITIONS, {})
        key = my_task.task_spec.bpmn_id or my_task.task_spec.name
    else:
        record, key = my_task.internal_data, _CONDITIONS
    before = bool(record.get(key, False))
    record[key] = value
    fired = value and not before
    my_task._set_internal_data(has_fired=fired)
    return fired


ConditionalEventDefinition.has_fired = _conditional_has_fired


def _has_conditions(workflow: Any) -> bool:
    """Whether the process (or what it calls) has a conditional event at all: computed
    once per spec, so a process without one pays nothing per step."""
    spec = workflow.spec
    known = spec.__dict__.get("_bankflow_conditional")
    if known is None:
        specs = [spec, *getattr(workflow, "subprocess_specs", {}).values()]
        known = any(_is_conditional(t) for s in specs for t in s.task_specs.values())
        spec.__dict__["_bankflow_conditional"] = known
    return bool(known)


def _is_conditional(spec: Any) -> bool:
    if getattr(spec, "event_definition", None) is None:
        return False
    return any(isinstance(d, ConditionalEventDefinition) for d, _ in _caught(spec))


def _conditions_fired(workflow: Any) -> bool:
    """Check every waiting conditional event again; True when one fired."""
    if not _has_conditions(workflow):
        return False
    fired = False
    for wf in (workflow, *workflow.subprocesses.values()):
        for task in _in_state(wf, TaskState.WAITING):
            if task.state != TaskState.WAITING or not _is_conditional(task.task_spec):
                continue
            task.task_spec._update(task)
            fired = fired or task.state != TaskState.WAITING
    return fired


# -- state ---------------------------------------------------------------------------------


class _SpeclessWorkflowConverter(BpmnWorkflowConverter):  # type: ignore[misc]
    """Leaves the spec out when saving; takes the cached spec objects when loading."""

    def to_dict(self, workflow: BpmnWorkflow) -> dict[str, Any]:
        dct: dict[str, Any] = super(BpmnWorkflowConverter, self).to_dict(workflow)
        dct["subprocesses"] = self.mapping_to_dict(workflow.subprocesses)
        dct["bpmn_events"] = self.registry.convert(workflow.bpmn_events)
        return dct

    def from_dict(self, dct: dict[str, Any]) -> BpmnWorkflow:
        spec = dct.pop("spec")
        subprocess_specs = dct.pop("subprocess_specs")
        workflow = self.target_class(spec, subprocess_specs, deserializing=True)
        workflow.tasks = self.mapping_from_dict(dct["tasks"], UUID, workflow=workflow)
        workflow.task_tree = workflow.tasks.get(UUID(dct["root"]))
        self.set_default_attributes(workflow, dct)
        self.subprocesses_from_dict(dct["subprocesses"], workflow)
        workflow.bpmn_events = self.registry.restore(dct.pop("bpmn_events", []))
        return workflow


def _registry() -> Any:
    registry = BpmnWorkflowSerializer.configure(SPIFF_CONFIG)
    _SpeclessWorkflowConverter(_Workflow, registry)
    # Money is Decimal and must come back exactly; dates are not datetimes.
    registry.register(Decimal, lambda v: {"value": str(v)}, lambda v: Decimal(v["value"]))
    registry.register(
        date, lambda v: {"value": v.isoformat()}, lambda v: date.fromisoformat(v["value"])
    )
    return registry


_SERIALIZER = BpmnWorkflowSerializer(_registry())


def dump_state(workflow: BpmnWorkflow) -> bytes:
    """Compressed JSON of everything but the spec."""
    registry = _SERIALIZER.registry
    registry._encoder_mode = True
    try:
        text = json.dumps(
            registry.convert(workflow),
            cls=_SERIALIZER._encoder_cls,
            separators=(",", ":"),
            allow_nan=False,  # PostgreSQL refuses NaN; SQLite must not store what it refuses
        )
    finally:
        registry._encoder_mode = False
    return zlib.compress(text.encode(), 1)


def load_state(
    state: bytes, runnable: Runnable, engine: ScriptEngine, *, state_format: str = STATE_FORMAT
) -> BpmnWorkflow:
    """The workflow a stored state holds. Only the format bankflow writes is read:
    SpiffWorkflow's own serializer migrations (one of which runs ``eval`` on stored text)
    are never run."""
    if state_format != STATE_FORMAT:
        raise DatabaseError(
            f"stored instance state is in format {state_format!r}; this bankflow reads "
            f"{STATE_FORMAT!r} only"
        )
    dct = json.loads(zlib.decompress(state))
    dct["spec"] = runnable.spec
    dct["subprocess_specs"] = runnable.subprocess_specs
    workflow = _SERIALIZER.registry.restore(dct)
    workflow.script_engine = engine
    # A task still to run or to complete was given its view before the state was saved:
    # what changes in it from now on is what it writes back.
    for wf in (workflow, *workflow.subprocesses.values()):
        for task in wf.tasks.values():
            if task._state & _PENDING_STATES:
                _variables.remember(task)
    return workflow


_PENDING_STATES = TaskState.READY | TaskState.WAITING | TaskState.STARTED | TaskState.ERROR


def convert_data(data: dict[str, Any]) -> Any:
    """Task data as the state stores it (so a JSON column holds the same values)."""
    registry = _SERIALIZER.registry
    registry._encoder_mode = True
    try:
        return json.loads(json.dumps(registry.convert(data), cls=_SERIALIZER._encoder_cls))
    finally:
        registry._encoder_mode = False


def restore_data(data: Any) -> dict[str, Any]:
    restored: dict[str, Any] = _SERIALIZER.registry.restore(data)
    return restored


# -- running -------------------------------------------------------------------------------


class SandboxEnvironment(BasePythonScriptEngineEnvironment):  # type: ignore[misc]
    """The script engine's environment *is* the sandbox.

    SpiffWorkflow evaluates most expressions through ``script_engine.evaluate``/``execute``,
    but some sites (an ad-hoc sub-process's completion condition, the conditions of its
    conditional paths, a correlation property's ``messagePath``) call
    ``script_engine.environment`` directly. SpiffWorkflow's default environment runs text
    with plain ``eval``/``exec``; this one compiles every text with bankflow's allow-list,
    so no path in SpiffWorkflow can reach ``eval`` whoever calls it
    (``tests/unit/test_spiff_evaluation_sites.py`` reads SpiffWorkflow's source to hold that).
    """

    def __init__(self, now: Callable[[], datetime] | None = None) -> None:
        super().__init__({})
        self.now = now

    def evaluate(self, expression: str, context: Any, external_context: Any = None) -> Any:
        compiled = compile_expression(expression, mode="eval")
        return compiled.evaluate({**(external_context or {}), **context}, now=self.now)

    def execute(self, script: str, context: Any, external_context: Any = None) -> bool:
        extra = external_context or {}
        compiled = compile_expression(script, mode="exec")
        result = compiled.execute({**context, **extra}, now=self.now)
        context.update({k: v for k, v in result.items() if k not in extra})
        return True

    def call_service(self, context: Any, **kwargs: Any) -> Any:
        raise ExpressionError(
            "service calls go to the host's registered handlers, never to the script engine"
        )


class ScriptEngine(PythonScriptEngine):  # type: ignore[misc]
    """One per Engine. Conditions and scripts run in bankflow's sandboxed expression
    language (the environment is ``SandboxEnvironment``), never on SpiffWorkflow's
    ``eval``/``exec``; service tasks run the host's handlers; time comes from the engine's
    clock."""

    def __init__(
        self,
        services: ServiceRegistry | None = None,
        *,
        now: Callable[[], datetime] | None = None,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        super().__init__(environment=SandboxEnvironment(now))
        self.services = services or ServiceRegistry()
        self.now = now
        self.limits = limits

    def validate(self, expression: str) -> None:
        compile_expression(expression, mode="eval")

    def evaluate(self, task: Any, expression: str, external_context: Any = None) -> Any:
        context = {**task.data, **(external_context or {})}
        try:
            compiled = compile_expression(expression, mode="eval", origin=_origin(task))
            return compiled.evaluate(context, now=self.now)
        except ExpressionError as exc:
            raise _task_error(task, exc) from exc

    def execute(self, task: Any, script: str, external_context: Any = None) -> bool:
        extra = external_context or {}
        try:
            compiled = compile_expression(script, mode="exec", origin=_origin(task))
            result = compiled.execute({**task.data, **extra}, now=self.now)
        except ExpressionError as exc:
            raise _task_error(task, exc) from exc
        produced = {k: result[k] for k in compiled.assigned if k in result and k not in extra}
        try:
            # What a script builds must be storable (a value the database cannot hold would
            # otherwise fail every later save of the instance): the step fails here instead.
            checked = check_data(
                produced, what=f"the values the script of {_origin(task)} set", limits=self.limits
            )
        except InvalidData as exc:
            raise WorkflowTaskException(str(exc), task=task, exception=exc) from exc
        task.data.update({k: v for k, v in result.items() if k not in extra})
        task.data.update(checked)
        return True

    def call_service(self, task: Any, **kwargs: Any) -> Any:
        raise WorkflowTaskException(
            "service calls go to the host's registered handlers, never to the script engine",
            task=task,
        )

    def run_service(self, task: Any, spec: Any) -> bool | None:
        """True when done, None while it waits for an external worker."""
        name = spec.operation_name
        if getattr(spec, "async_before", False):
            return None
        handler = self.services.get(name)
        if handler is None:
            return None
        spent = _BUDGET.get()
        if spent is not None:
            spent.handlers_called += 1
        try:
            result = handler(dict(task.data))
        except BpmnError as exc:
            _throw_bpmn_error(task, exc, name)
            return None
        except Exception as exc:
            raise WorkflowTaskException(
                f"service {name!r} failed: {type(exc).__name__}: {exc}", task=task, exception=exc
            ) from exc
        if result is None:
            return True
        if not isinstance(result, Mapping):
            raise WorkflowTaskException(
                f"service {name!r} returned {type(result).__name__}, not a dict of values",
                task=task,
            )
        try:
            task.data.update(
                check_data(result, what=f"the result of service {name!r}", limits=self.limits)
            )
        except InvalidData as exc:
            raise WorkflowTaskException(str(exc), task=task, exception=exc) from exc
        return True


def _task_error(task: Any, error: ExpressionError) -> WorkflowTaskException:
    """The sandbox's refusal or failure as SpiffWorkflow's task error, keeping the type of
    what went wrong (ZeroDivisionError, NameError...) for the instance's failure record."""
    wrapped = WorkflowTaskException(str(error), task=task, exception=error)
    wrapped.error_type = getattr(error, "error_type", None) or "ExpressionError"
    wrapped.line_number = error.line
    return wrapped


def _origin(task: Any) -> str:
    spec = task.task_spec
    return f"{getattr(spec, 'bpmn_id', spec.name)}"


# -- events thrown inside the process --------------------------------------------------------


# An error nobody catches ends up in the workflow's list of events for the outside world,
# which only ever carries messages: the instance used to complete as if nothing happened.
# BPMN (and Camunda) fail it instead, at the element that threw the error.
def _throw_error(self: ErrorEventDefinition, my_task: Any) -> None:
    top = my_task.workflow.top_workflow
    before = len(top.bpmn_events)
    # The class's own throw (SpiffWorkflow's spiff variant throws without a target).
    original = next(_error_throws[c] for c in type(self).__mro__ if c in _error_throws)
    original(self, my_task)
    uncaught = [e for e in top.bpmn_events[before:] if e.event_definition is self]
    if not uncaught:
        return
    top.bpmn_events[before:] = [e for e in top.bpmn_events[before:] if e not in uncaught]
    name = f" ({self.name})" if self.name and self.name != self.code else ""
    exc = WorkflowTaskException(
        f"{_origin(my_task)} threw BPMN error {self.code!r}{name} and no error boundary "
        "event or error event sub-process catches it",
        task=my_task,
    )
    exc.error_type = "UncaughtBpmnError"
    raise exc


_error_throws = {cls: cls.throw for cls in (ErrorEventDefinition, SpiffErrorEventDefinition)}
for _error_class in _error_throws:
    _error_class.throw = _throw_error

# An interrupting boundary event of a sub-process that catches an event thrown inside it
# (an escalation from an intermediate throw event, say) takes effect at once: SpiffWorkflow
# only noticed it after the sub-process had run on (the throw event's outgoing path too),
# so work the interruption cancels in BPMN had already happened.
_throwing_on_complete = ThrowingEvent._on_complete


def _throwing_completed(self: ThrowingEvent, my_task: Any) -> None:
    _throwing_on_complete(self, my_task)
    for boundary in _interrupting_catchers(my_task):
        if boundary.state == TaskState.READY:  # a sibling's join may have cancelled it
            _spend(boundary)
            boundary.run()  # its join cancels the sub-process, as it would have later


def _interrupting_catchers(my_task: Any) -> list[Any]:
    """Interrupting boundary events of the sub-processes (and call activities) around
    ``my_task``, and the start events of the event sub-processes of its scopes that
    ``_catching_starts`` names, that caught an event (SpiffWorkflow makes a catching event
    READY) and have not run: innermost first."""
    found = []
    workflow = my_task.workflow
    found += _catching_starts(workflow)
    while workflow.parent_task_id is not None:
        parent = workflow.parent_workflow
        activity = parent.get_task_from_id(workflow.parent_task_id)
        split = activity.parent if activity is not None else None
        if split is not None and isinstance(split.task_spec, BoundaryEventSplit):
            found += [
                t
                for t in split.children
                if isinstance(t.task_spec, BoundaryEvent)
                and t.task_spec.cancel_activity
                and t.state == TaskState.READY
            ]
        workflow = parent
        found += _catching_starts(workflow)
    return found


def _catching_starts(scope: Any) -> list[Any]:
    """READY start events of the event sub-processes of ``scope`` that must run at once:
    an interrupting one (an escalation thrown in a called process reached it, and the
    thrower must go no further; SpiffWorkflow ran the called process on before the
    caller's event sub-process), and a non-interrupting one that waits again once it ran
    (the next escalation of the called process finds it waiting)."""
    if not any(isinstance(s, SubWorkflowTask) for s in scope.spec.start.outputs):
        return []
    found = []
    for task in scope.task_tree.children:
        if task.state != TaskState.STARTED or not isinstance(task.task_spec, SubWorkflowTask):
            continue
        sub = scope.top_workflow.subprocesses.get(task.id)
        if sub is None:
            continue
        found += [
            t
            for t in _in_state(sub, TaskState.READY)
            if isinstance(t.task_spec, StartEvent)
            and (
                getattr(t.task_spec, _INTERRUPTING, False)
                or getattr(t.task_spec, _REARM, False)
                or getattr(task.task_spec, _REARM, False)
            )
        ]
    return found


ThrowingEvent._on_complete = _throwing_completed


def _throw_bpmn_error(task: Any, error: BpmnError, service: str) -> None:
    """Deliver a handler's BpmnError to the error boundary event that catches its code."""
    split = task.parent
    catchers = []
    if split is not None and isinstance(split.task_spec, BoundaryEventSplit):
        for sibling in split.children:
            definition = getattr(sibling.task_spec, "event_definition", None)
            if isinstance(definition, ErrorEventDefinition) and definition.code in (
                None,
                error.code,
            ):
                catchers.append(definition)
    if not catchers:
        raise WorkflowTaskException(
            f"service {service!r} raised BPMN error {error.code!r} ({error}) and no error "
            "boundary event on the task catches it",
            task=task,
        )
    thrown = copy.copy(catchers[0])  # same class, so the serializer knows it
    thrown.code = error.code
    thrown.throw(task)


def _failure(exc: Exception) -> Failure:
    task = getattr(exc, "task", None)
    spec = getattr(exc, "task_spec", None) or getattr(task, "task_spec", None)
    message = str(exc)
    inner = getattr(exc, "error_type", None) or type(exc).__name__
    notes = getattr(exc, "__notes__", None)
    if notes:
        message = f"{message} ({'; '.join(notes)})"
    line = getattr(exc, "line_number", None)
    return Failure(
        message=message,
        element_id=getattr(spec, "bpmn_id", None),
        task_id=str(task.id) if task is not None else None,
        error_type=inner,
        line=line if isinstance(line, int) else None,
    )


def _run_engine(workflow: BpmnWorkflow) -> None:
    with _stepping():
        workflow.do_engine_steps()


@contextmanager
def _stepping() -> Iterator[None]:
    """Whatever goes wrong inside SpiffWorkflow fails the step (the instance is failed,
    with an incident, and can be retried); nothing raw reaches the caller."""
    try:
        yield
    except (StepError, Interrupted):
        raise
    except (SpiffWorkflowException, WorkflowException) as exc:
        raise StepError(_failure(exc)) from exc
    except ExpressionError as exc:
        raise StepError(
            Failure(
                message=str(exc),
                element_id=None,
                task_id=None,
                error_type=getattr(exc, "error_type", None) or "ExpressionError",
                line=exc.line,
            )
        ) from exc
    except RecursionError as exc:
        raise StepError(
            Failure(
                message="the process nests too deeply for the engine to follow",
                element_id=None,
                task_id=None,
                error_type="RecursionError",
            )
        ) from exc
    except Exception as exc:
        raise StepError(
            Failure(
                message=f"the engine could not run this step: {type(exc).__name__}: {exc}",
                element_id=None,
                task_id=None,
                error_type=type(exc).__name__,
            )
        ) from exc


def start(
    runnable: Runnable, data: dict[str, Any], engine: ScriptEngine, *, run: bool = True
) -> BpmnWorkflow:
    """A new workflow with ``data`` on its start, run until it waits (unless ``run`` is
    false); raises ``StepError`` with the workflow in ``exc.workflow`` when an automatic
    step fails."""
    try:
        with _stepping():
            workflow = _Workflow(runnable.spec, runnable.subprocess_specs, script_engine=engine)
    except StepError as exc:
        raise DefinitionError(f"the process cannot be started: {exc.failure.message}") from exc
    workflow.task_tree.data.update(data)
    _variables.seed(workflow, data)
    for task in workflow.get_tasks(state=TaskState.READY):
        _variables.refresh(task)
    if not run:
        return workflow
    try:
        _run_engine(workflow)
    except StepError as exc:
        exc.workflow = workflow
        raise
    return workflow


def complete(workflow: BpmnWorkflow, task_id: str, data: dict[str, Any]) -> None:
    task = workflow.get_task_from_id(UUID(task_id))
    task.data.update(data)
    with _stepping():
        task.run()
    _run_engine(workflow)


def retry(workflow: BpmnWorkflow, task_id: str | None, data: dict[str, Any]) -> None:
    """Run a failed step again (after its cause was fixed), then carry on."""
    if task_id is not None:
        task = workflow.get_task_from_id(UUID(task_id))
        task.data.update(data)
        if task.state == TaskState.ERROR:
            task._ready()
    _run_engine(workflow)


def cancel(workflow: BpmnWorkflow) -> None:
    workflow.cancel()


def human_tasks(workflow: BpmnWorkflow) -> list[HumanTask]:
    """User and manual tasks that are ready for a person, in tree order."""
    workflows = [workflow, *workflow.subprocesses.values()]
    ready = [t for wf in workflows for t in wf.tasks.values() if t.state == TaskState.READY]
    return [
        HumanTask(
            id=str(t.id),
            element_id=t.task_spec.bpmn_id,
            name=t.task_spec.bpmn_name,
            lane=t.task_spec.lane,
        )
        for t in ready
        if isinstance(t.task_spec, UserTask | ManualTask)
    ]


def is_completed(workflow: BpmnWorkflow) -> bool:
    return bool(workflow.is_completed())


def task_data(workflow: BpmnWorkflow, task_id: str) -> dict[str, Any]:
    """What a task sees now: the process's variables as they are (another branch may have
    changed them since the task became ready), with its local variables over them."""
    task = workflow.get_task_from_id(UUID(task_id))
    if _process_wide(task) and task._state & _PENDING_STATES:
        return _variables.view_of(task)
    data: dict[str, Any] = task.data
    return data


def current_data(workflow: BpmnWorkflow) -> dict[str, Any]:
    """What an instance 'knows' now: its process variables."""
    return dict(_variables.store(workflow))


# -- waits: what jobs and subscriptions stand for ---------------------------------------------


@dataclass(frozen=True)
class Wait:
    """Something a workflow waits for outside itself: a timer, a service call, a message."""

    kind: str  # "timer", "service", "external" or "message"
    task_id: str
    element_id: str
    name: str | None = None  # service name, external topic or message name
    due_at: datetime | None = None
    retry_cycle: str | None = None


@dataclass(frozen=True)
class Thrown:
    """A message one instance threw that no task of its own caught."""

    name: str
    payload: dict[str, Any]
    element_id: str | None


def waits(workflow: BpmnWorkflow) -> list[Wait]:
    found: list[Wait] = []
    for task in list(workflow.event_manager.tasks.values()):
        if task.state != TaskState.WAITING:
            continue
        for definition, element_id in _caught(task.task_spec):
            if isinstance(definition, TimerEventDefinition):
                due = _timer_due(task, definition)
                if due is not None:
                    found.append(Wait("timer", str(task.id), element_id, due_at=due))
            elif isinstance(definition, MessageEventDefinition):
                found.append(Wait("message", str(task.id), element_id, name=definition.name))
    for wf in (workflow, *workflow.subprocesses.values()):
        for task in wf.tasks.values():
            spec = task.task_spec
            if task.state == TaskState.STARTED and isinstance(spec, BankflowServiceTask):
                found.append(
                    Wait(
                        "external" if spec.external else "service",
                        str(task.id),
                        spec.bpmn_id,
                        name=spec.operation_name,
                        retry_cycle=spec.retry_cycle,
                    )
                )
    found += _signal_waits(workflow)
    return found


def _caught(spec: Any) -> list[tuple[Any, str]]:
    """The events a waiting task catches, each with the element that stands for it: an
    event-based gateway waits for all the events after it at once (SpiffWorkflow moves
    their definitions onto the gateway)."""
    definition = spec.event_definition
    if not isinstance(definition, MultipleEventDefinition):
        return [(definition, spec.bpmn_id)]
    if isinstance(spec, EventBasedGateway):
        pairs = zip(definition.event_definitions, spec.outputs, strict=False)
        return [(d, output.bpmn_id) for d, output in pairs]
    return [(d, spec.bpmn_id) for d in definition.event_definitions]


def _timer_due(task: Any, definition: Any) -> datetime | None:
    value = task._get_internal_data("event_value")
    if value is None:
        return None
    try:
        if isinstance(definition, CycleTimerEventDefinition):
            if value["cycles"] == 0:
                return None
            return _aware(datetime.fromisoformat(value["next"]))
        parsed = TimerEventDefinition.parse_time_or_duration(value)
    except Exception:  # an unreadable value never fires; deploy checks the expressions
        return None
    return _aware(parsed) if isinstance(parsed, datetime) else None


def _aware(value: datetime) -> datetime:
    from datetime import UTC

    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def thrown_messages(workflow: BpmnWorkflow) -> list[Thrown]:
    """Messages thrown since the last call that must travel to another instance."""
    found = []
    for event in workflow.get_events():
        definition = event.event_definition
        if isinstance(definition, MessageEventDefinition):
            payload = event.payload if isinstance(event.payload, dict) else {}
            found.append(Thrown(definition.name, dict(payload), _thrower(workflow, definition)))
    return found


# -- signals ---------------------------------------------------------------------------------

# SpiffWorkflow hands a thrown signal to the catchers of its own instance only, and keeps it
# for the outside world only when none of them caught it. A signal is a broadcast: it must
# also reach every other instance waiting for it and start every process whose start event
# catches it, whoever caught it here. Each throw is noted on the workflow (in memory, taken
# when the change is saved: the executor turns it into a ``signal`` job).
_THROWN_SIGNALS = "_bankflow_thrown_signals"


def _throw_signal(self: SignalEventDefinition, my_task: Any) -> None:
    original = next(_signal_throws[c] for c in type(self).__mro__ if c in _signal_throws)
    original(self, my_task)
    payload: Any = None
    expression = getattr(self, "expression", None)
    if expression is not None:  # SpiffWorkflow's signal payload expression
        payload = my_task.workflow.script_engine.evaluate(my_task, expression)
    top = my_task.workflow.top_workflow
    top.__dict__.setdefault(_THROWN_SIGNALS, []).append(
        Thrown(
            self.name,
            dict(payload) if isinstance(payload, Mapping) else {},
            getattr(my_task.task_spec, "bpmn_id", None),
        )
    )


_signal_throws = {
    cls: cls.throw for cls in {SignalEventDefinition, *SignalEventDefinition.__subclasses__()}
}
for _signal_class in _signal_throws:
    _signal_class.throw = _throw_signal


# -- the path on record -------------------------------------------------------------------

# What a step did on its way, in the order it happened: the flows each gateway took, the end
# events reached, what each script, decision or service wrote, and where a person's task
# appeared or went. Noted on the top workflow in memory as it runs (a few attribute reads
# per task, nothing copied), taken when the change is saved: the executor makes history
# events of them in the same transaction.
_PATH = "_bankflow_path"


@dataclass(frozen=True)
class Step:
    """One thing a step did: ``kind`` is ``gateway_taken``, ``end_event_reached``,
    ``data_changed`` (``data``: ``{"set": {...}, "removed": [...]}``, values as the
    variables hold them), or where a person's task became ready (``task_ready``) or was
    cancelled (``task_cancelled``)."""

    kind: str
    element_id: str | None
    task_id: str
    data: dict[str, Any] | None = None


def _note(task: Any, kind: str, data: Any) -> None:
    top = getattr(task.workflow, "top_workflow", None)
    if getattr(top, "_bankflow_variables", False) is not True:
        return
    if isinstance(data, _variables.Written):
        data = {"set": data.set, "removed": data.removed}
    top.__dict__.setdefault(_PATH, []).append(
        Step(kind, _element_of(task.task_spec), str(task.id), data)
    )


def _element_of(spec: Any) -> str | None:
    """The element a task stands for (an activity with boundary events starts with a
    split named after it)."""
    bpmn_id = getattr(spec, "bpmn_id", None)
    if bpmn_id is None and spec.name.endswith(_SPLIT):
        return str(spec.name[: -len(_SPLIT)])
    return bpmn_id


_SPLIT = ".BoundaryEventSplit"


def _taken(task: Any) -> dict[str, list[str | None]]:
    """The flows a gateway's task took and the elements they lead to, in diagram order."""
    targets = [_element_of(child.task_spec) for child in task.children]
    flows: dict[str, str] = getattr(task.task_spec, _FLOWS, {})
    return {"flows": [flows.get(t or "") for t in targets], "targets": targets}


_FLOWS = "bankflow_flows"


def _name_flows(specs: Iterable[Any], roots: Iterable[Any]) -> None:
    """Give each gateway spec its outgoing sequence flows' ids by target element (SpiffWorkflow
    connects specs without keeping the flows), so history can name the flow taken."""
    outgoing: dict[str, dict[str, str]] = {}
    for root in roots:
        for flow in root.iter(q("sequenceFlow")):
            source, target, flow_id = flow.get("sourceRef"), flow.get("targetRef"), flow.get("id")
            if source and target and flow_id:
                outgoing.setdefault(source, {}).setdefault(target, flow_id)
    for spec in specs:
        for task_spec in spec.task_specs.values():
            if task_spec.bankflow_gateway and getattr(task_spec, "bpmn_id", None) in outgoing:
                setattr(task_spec, _FLOWS, outgoing[task_spec.bpmn_id])


def path(workflow: BpmnWorkflow) -> list[Step]:
    """What the workflow did since the last call, in order (see ``Step``)."""
    found: list[Step] = workflow.__dict__.pop(_PATH, [])
    return found


@dataclass(frozen=True)
class Compensated:
    """One compensation handler that ran: ``element_id`` is the activity it undid."""

    element_id: str
    handler: str
    handler_task_id: str
    activity_task_id: str
    thrown_by: str


def compensations(workflow: BpmnWorkflow) -> list[Compensated]:
    """The compensation handlers that completed since the last call, in the order they
    ran (the definitions' throw events note them on the workflow, in memory)."""
    return [
        Compensated(
            element_id=entry["element"],
            handler=entry["handler"],
            handler_task_id=entry["handler_task"],
            activity_task_id=entry["task"],
            thrown_by=entry["thrown_by"],
        )
        for entry in workflow.__dict__.pop(COMPENSATED, [])
    ]


def thrown_signals(workflow: BpmnWorkflow) -> list[Thrown]:
    """Signals thrown since the last call, to be taken to the other instances."""
    found: list[Thrown] = workflow.__dict__.pop(_THROWN_SIGNALS, [])
    return found


def _signal_waits(workflow: BpmnWorkflow) -> list[Wait]:
    """What waits for a signal: catch events, boundary events, event-based gateways and the
    signal starts of event sub-processes (armed while their scope runs)."""
    return [
        Wait("signal", str(task.id), element_id, name=definition.name)
        for task in list(workflow.event_manager.tasks.values())
        if task.state == TaskState.WAITING
        for definition, element_id in _caught(task.task_spec)
        if isinstance(definition, SignalEventDefinition)
    ]


def deliver_signal(
    workflow: BpmnWorkflow, name: str, payload: dict[str, Any], *, start: bool = False
) -> int:
    """Hand signal ``name`` to everything in the workflow waiting for it (catch events,
    boundary events, event sub-process starts, a signal start event); each catching task's
    data gains ``payload``. Returns how many caught it.

    ``start``: the signal that starts the instance, for the process's own signal start
    event only (an event sub-process of the new instance waits for the next one, as for
    messages).
    """
    carried = dict(payload)
    caught = _deliver(workflow, SignalEventDefinition, name, carried, start=start)
    if not caught:
        return 0
    # SpiffWorkflow keeps the payload aside on each catching task (``internal_data``, by
    # signal name) and merges it only into a named variable: merge it into the data, as
    # ``messages.correlate`` does, before the catching tasks run.
    for wf in (workflow, *workflow.subprocesses.values()):
        for task in wf.tasks.values():
            if task.internal_data.get(name) is carried:
                task.data.update(carried)
    _run_engine(workflow)
    return caught


def _thrower(workflow: BpmnWorkflow, definition: MessageEventDefinition) -> str | None:
    """The element that threw a message: SpiffWorkflow's event does not say, so the most
    recently completed throw event, end event or send task of that message."""
    throwers = [
        t
        for wf in (workflow, *workflow.subprocesses.values())
        for t in wf.tasks.values()
        if t.state == TaskState.COMPLETED
        and isinstance(t.task_spec, ThrowingEvent)
        and t.task_spec.event_definition == definition
    ]
    if not throwers:
        return None
    bpmn_id: str | None = max(throwers, key=lambda t: t.last_state_change).task_spec.bpmn_id
    return bpmn_id


def fire_timers(workflow: BpmnWorkflow, task_id: str) -> None:
    """Let the timer of task ``task_id`` fire if its time has come (on the current clock),
    then carry on; other overdue timers wait for their own jobs."""
    token = _FIRING.set(UUID(task_id))
    try:
        with _stepping():
            workflow.refresh_timers()
    finally:
        _FIRING.reset(token)
    _run_engine(workflow)


def task_data_of(workflow: BpmnWorkflow, task_id: str) -> dict[str, Any] | None:
    """The data of a service task still waiting for its call; None once it is done (a
    worker whose lock ran out must not call the service a second time)."""
    try:
        _started_service(workflow, task_id)
    except LookupError:
        return None
    return dict(task_data(workflow, task_id))


def _started_service(workflow: BpmnWorkflow, task_id: str) -> Any:
    task = workflow.get_task_from_id(UUID(task_id))
    if (
        task is None
        or task.state != TaskState.STARTED
        or not isinstance(task.task_spec, BankflowServiceTask)
    ):
        raise LookupError(task_id)
    return task


def complete_service(workflow: BpmnWorkflow, task_id: str, result: dict[str, Any]) -> None:
    """A service call made outside the engine (worker or external system) came back."""
    task = _started_service(workflow, task_id)
    task.data.update(result)
    with _stepping():
        task.complete()
    _run_engine(workflow)


def service_bpmn_error(
    workflow: BpmnWorkflow, task_id: str, error: BpmnError, data: dict[str, Any]
) -> None:
    """Deliver a BPMN error a worker reported to the boundary event catching its code."""
    task = _started_service(workflow, task_id)
    task.data.update(data)
    # The task is cancelled, never completed: the reported variables reach the process
    # now, so the boundary event that catches the error sees them.
    written = _variables.flush(task)
    if written is not None:
        _note(task, "data_changed", written)
    with _stepping():
        _throw_bpmn_error(task, error, task.task_spec.operation_name)
    _run_engine(workflow)


def deliver_message(
    workflow: BpmnWorkflow, name: str, payload: dict[str, Any], *, start: bool = False
) -> int:
    """Hand a message to the tasks waiting for it; their data gains ``payload``.

    ``start``: the message that starts the instance, for the process's own message start
    event only; an event sub-process of the new instance waiting for a message of the same
    name is not started by it (as in Camunda: it waits for the next one).
    """
    caught = _deliver(workflow, MessageEventDefinition, name, dict(payload), start=start)
    if caught:
        _run_engine(workflow)
    return caught


def _deliver(
    workflow: BpmnWorkflow, kind: type, name: str, payload: dict[str, Any], *, start: bool
) -> int:
    """Hand the ``kind`` event ``name`` (a message or a signal) to the tasks waiting for
    it, their data gaining ``payload``; how many caught it. ``start``: only the process's
    own start event (the event that starts an instance does not also start an event
    sub-process of it waiting for the same name, as in Camunda)."""
    waiting = [
        (t, definition)
        for t in list(workflow.event_manager.tasks.values())
        if t.state == TaskState.WAITING
        and (not start or (t.workflow is workflow and isinstance(t.task_spec, StartEvent)))
        for definition, _ in _caught(t.task_spec)
        if isinstance(definition, kind) and getattr(definition, "name", None) == name
    ]
    if not waiting:
        return 0
    for task, _ in waiting:  # an event-based gateway takes the data of the task it waits in
        task.data.update(payload)
    event = BpmnEvent(waiting[0][1], payload=payload)
    with _stepping():
        if start:
            for task, _ in waiting:
                task.task_spec.catch(task, event)
                task.task_spec._update(task)
            return len(waiting)
        return int(workflow.event_manager.catch(event, internal=False))


def message_start_element(workflow: BpmnWorkflow, name: str) -> str | None:
    """The element whose message ``name`` started ``workflow``: its message start event,
    or the instantiating receive task or event after an instantiating gateway that
    became one (``definitions/_compat.py``), so history names what the analyst drew."""
    for task in workflow.tasks.values():
        spec = task.task_spec
        if (
            isinstance(spec, StartEvent)
            and task.state == TaskState.COMPLETED
            and isinstance(spec.event_definition, MessageEventDefinition)
            and spec.event_definition.name == name
        ):
            return str(spec.bpmn_id)
    return None


def fire_start_timers(workflow: BpmnWorkflow, *, unless_started: bool = False) -> None:
    """An instance created by its process's timer start event: that timer has fired.

    ``unless_started`` (a person starting the process by hand): only when a timer start
    is all the process has, so a process that also has a none start event runs from that
    one alone, as Camunda does.
    """
    starts = [
        t
        for t in list(workflow.event_manager.tasks.values())
        if t.workflow is workflow  # an event sub-process's timer start is not the process's
        and isinstance(t.task_spec, StartEvent)
        and isinstance(t.task_spec.event_definition, TimerEventDefinition)
    ]
    if not starts:
        return
    if unless_started:
        ids = {t.id for t in starts} | _waiting_event_subprocess_tasks(workflow)
        others = [
            t
            for wf in (workflow, *workflow.subprocesses.values())
            for t in wf.tasks.values()
            if t.state in (TaskState.READY, TaskState.WAITING, TaskState.STARTED)
            and t.id not in ids
        ]
        if others or workflow.is_completed():
            return
    for task in starts:
        spec = task.task_spec
        if isinstance(spec.event_definition, CycleTimerEventDefinition) and not task.children:
            # A cycle adds the path after it at each repetition instead of predicting
            # it; this instance is one repetition, so it takes that path once.
            task._sync_children(spec.outputs, TaskState.FUTURE)
        task._set_internal_data(event_fired=True)
        with _stepping():
            spec._update(task)
    _run_engine(workflow)
