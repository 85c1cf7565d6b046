"""The only module that imports SpiffWorkflow's workflow, task and serializer classes.

It gives the services a small vocabulary: build a runnable definition from stored sources,
start a workflow, complete a human task, retry a failed step, and dump/load state *without*
the process spec, which lives once per definition in an in-process cache instead of inside
every instance (about two thirds of SpiffWorkflow's own JSON).
"""

from __future__ import annotations

import copy
import json
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from decimal import Decimal
from typing import Any
from uuid import UUID

import SpiffWorkflow.bpmn.specs.event_definitions.timer as _timer_module
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter
from SpiffWorkflow.bpmn.serializer.workflow import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.specs.control import BoundaryEventSplit
from SpiffWorkflow.bpmn.specs.event_definitions.item_aware_event import ErrorEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.multiple import MultipleEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import (
    CycleTimerEventDefinition,
    TimerEventDefinition,
)
from SpiffWorkflow.bpmn.specs.mixins.events.event_types import ThrowingEvent
from SpiffWorkflow.bpmn.specs.mixins.events.intermediate_event import EventBasedGateway
from SpiffWorkflow.bpmn.specs.mixins.events.start_event import StartEvent
from SpiffWorkflow.bpmn.specs.mixins.manual_task import ManualTask
from SpiffWorkflow.bpmn.specs.mixins.user_task import UserTask
from SpiffWorkflow.bpmn.util import BpmnEvent
from SpiffWorkflow.bpmn.util.task import BpmnTaskIterator
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.exceptions import SpiffWorkflowException, WorkflowException
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG
from SpiffWorkflow.util.task import TaskIterator, TaskState

from bankflow.definitions._parser import BankflowServiceTask, build_process
from bankflow.errors import BpmnError, InvalidData
from bankflow.language._expressions import ExpressionError, compile_expression
from bankflow.runtime._data import check_data
from bankflow.services import ServiceRegistry

__all__ = [
    "Failure",
    "HumanTask",
    "Runnable",
    "ScriptEngine",
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
    spec, subprocess_specs = build_process(process_key, sources)
    return Runnable(spec=spec, subprocess_specs=subprocess_specs)


class _Workflow(BpmnWorkflow):  # type: ignore[misc]
    """SpiffWorkflow's engine loop, finding READY tasks by scanning the task table instead
    of walking the tree from the root for every step: the same order (tasks are stored in
    creation order) without the quadratic cost a long loop otherwise pays."""

    def update_waiting_tasks(self) -> None:
        for task in [t for t in self.tasks.values() if t.state == TaskState.WAITING]:
            if task.state == TaskState.WAITING:
                task.task_spec._update(task)

    def _do_engine_steps(
        self, will_complete_task: Any = None, did_complete_task: Any = None
    ) -> bool:
        def update_workflow(wf: Any) -> int:
            count = 0
            ready = [t for t in wf.tasks.values() if t.state == TaskState.READY]
            for task in ready:
                if not task.task_spec.manual and task.state == TaskState.READY:
                    task.run()
                    count += 1
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
            registry.convert(workflow), cls=_SERIALIZER._encoder_cls, separators=(",", ":")
        )
    finally:
        registry._encoder_mode = False
    return zlib.compress(text.encode(), 1)


def load_state(state: bytes, runnable: Runnable, engine: ScriptEngine) -> BpmnWorkflow:
    dct = json.loads(zlib.decompress(state))
    dct["spec"] = runnable.spec
    dct["subprocess_specs"] = runnable.subprocess_specs
    workflow = _SERIALIZER.registry.restore(dct)
    workflow.script_engine = engine
    return workflow


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


class ScriptEngine(PythonScriptEngine):  # type: ignore[misc]
    """One per Engine. Conditions and scripts run in bankflow's sandboxed expression
    language, never on SpiffWorkflow's ``eval``/``exec``; service tasks run the host's
    handlers; time comes from the engine's clock."""

    def __init__(
        self,
        services: ServiceRegistry | None = None,
        *,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__()
        self.services = services or ServiceRegistry()
        self.now = now

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
        task.data.update({k: v for k, v in result.items() if k not in extra})
        return True

    def run_service(self, task: Any, spec: Any) -> bool | None:
        """True when done, None while it waits for an external worker."""
        name = spec.operation_name
        if getattr(spec, "async_before", False):
            return None
        handler = self.services.get(name)
        if handler is None:
            return None
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
            task.data.update(check_data(result, what=f"the result of service {name!r}"))
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
    try:
        workflow.do_engine_steps()
    except (SpiffWorkflowException, WorkflowException) as exc:
        raise StepError(_failure(exc)) from exc
    except RecursionError as exc:
        raise StepError(
            Failure(
                message="the process nests or loops too deeply for the engine to follow",
                element_id=None,
                task_id=None,
                error_type="RecursionError",
            )
        ) from exc


def start(runnable: Runnable, data: dict[str, Any], engine: ScriptEngine) -> BpmnWorkflow:
    """A new workflow with ``data`` on its start, run until it waits; raises ``StepError``
    with the workflow in ``exc.workflow`` when an automatic step fails."""
    workflow = _Workflow(runnable.spec, runnable.subprocess_specs, script_engine=engine)
    workflow.task_tree.data.update(data)
    for task in workflow.get_tasks(state=TaskState.READY):
        task.data.update(data)
    try:
        _run_engine(workflow)
    except StepError as exc:
        exc.workflow = workflow
        raise
    return workflow


def complete(workflow: BpmnWorkflow, task_id: str, data: dict[str, Any]) -> None:
    task = workflow.get_task_from_id(UUID(task_id))
    task.data.update(data)
    try:
        task.run()
    except (SpiffWorkflowException, WorkflowException) as exc:
        raise StepError(_failure(exc)) from exc
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
    data: dict[str, Any] = workflow.get_task_from_id(UUID(task_id)).data
    return data


def current_data(workflow: BpmnWorkflow) -> dict[str, Any]:
    """What an instance 'knows' now: the workflow's data when finished, else the data of
    the most recently completed task (SpiffWorkflow passes data along the flow)."""
    if workflow.is_completed():
        return dict(workflow.data)
    last = workflow.last_task
    if last is not None:
        return dict(last.data)
    return dict(workflow.task_tree.data)


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
        workflow.refresh_timers()
    finally:
        _FIRING.reset(token)
    _run_engine(workflow)


def task_data_of(workflow: BpmnWorkflow, task_id: str) -> dict[str, Any] | None:
    """The data of a service task still waiting for its call; None once it is done (a
    worker whose lock ran out must not call the service a second time)."""
    try:
        return dict(_started_service(workflow, task_id).data)
    except LookupError:
        return None


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
    try:
        task.complete()
    except (SpiffWorkflowException, WorkflowException) as exc:
        raise StepError(_failure(exc)) from exc
    _run_engine(workflow)


def service_bpmn_error(
    workflow: BpmnWorkflow, task_id: str, error: BpmnError, data: dict[str, Any]
) -> None:
    """Deliver a BPMN error a worker reported to the boundary event catching its code."""
    task = _started_service(workflow, task_id)
    task.data.update(data)
    if data and task.parent is not None and isinstance(task.parent.task_spec, BoundaryEventSplit):
        # The boundary event that catches the error takes its data from the split before
        # the task, not from the task: the reported variables must be there to reach it.
        task.parent.data.update(data)
    try:
        _throw_bpmn_error(task, error, task.task_spec.operation_name)
    except (SpiffWorkflowException, WorkflowException) as exc:
        raise StepError(_failure(exc)) from exc
    _run_engine(workflow)


def deliver_message(workflow: BpmnWorkflow, name: str, payload: dict[str, Any]) -> int:
    """Hand a message to the tasks waiting for it; their data gains ``payload``."""
    waiting = [
        (t, definition)
        for t in list(workflow.event_manager.tasks.values())
        if t.state == TaskState.WAITING
        for definition, _ in _caught(t.task_spec)
        if isinstance(definition, MessageEventDefinition) and definition.name == name
    ]
    if not waiting:
        return 0
    for task, _ in waiting:
        task.data.update(payload)
    event = BpmnEvent(waiting[0][1], payload=dict(payload))
    try:
        caught = int(workflow.event_manager.catch(event, internal=False))
    except (SpiffWorkflowException, WorkflowException) as exc:
        raise StepError(_failure(exc)) from exc
    _run_engine(workflow)
    return caught


def fire_start_timers(workflow: BpmnWorkflow, *, unless_started: bool = False) -> None:
    """An instance created by its process's timer start event: that timer has fired.

    ``unless_started`` (a person starting the process by hand): only when a timer start
    is all the process has, so a process that also has a none start event runs from that
    one alone, as Camunda does.
    """
    starts = [
        t
        for t in list(workflow.event_manager.tasks.values())
        if isinstance(t.task_spec, StartEvent)
        and isinstance(t.task_spec.event_definition, TimerEventDefinition)
    ]
    if not starts:
        return
    if unless_started:
        ids = {t.id for t in starts}
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
        spec._update(task)
    _run_engine(workflow)
