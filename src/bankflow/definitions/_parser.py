"""The only module that imports SpiffWorkflow's parsers.

It turns rewritten lxml trees into process specs and SpiffWorkflow's exceptions into
diagnostics an analyst can act on. Everything SpiffWorkflow-specific about parsing stays
here, so upgrading SpiffWorkflow touches one file.
"""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

import SpiffWorkflow.bpmn.parser as _bpmn_parser
from lxml import etree
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.parser.event_parsers import (
    CANCEL_EVENT_XPATH,
    ERROR_EVENT_XPATH,
    ESCALATION_EVENT_XPATH,
    MESSAGE_EVENT_XPATH,
    SIGNAL_EVENT_XPATH,
    TERMINATION_EVENT_XPATH,
)
from SpiffWorkflow.bpmn.parser.task_parsers import ConditionalGatewayParser
from SpiffWorkflow.bpmn.parser.util import full_tag
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.specs import defaults as bpmn_defaults
from SpiffWorkflow.bpmn.specs.defaults import EndEvent, IntermediateThrowEvent
from SpiffWorkflow.bpmn.specs.event_definitions.simple import NoneEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.multiinstance_task import LoopTask
from SpiffWorkflow.spiff.parser.event_parsers import (
    SpiffEndEventParser,
    SpiffIntermediateThrowEventParser,
)
from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser, SpiffProcessParser
from SpiffWorkflow.spiff.parser.task_spec import BusinessRuleTaskParser, SpiffTaskParser
from SpiffWorkflow.spiff.specs.defaults import (
    BusinessRuleTask,
    NoneTask,
    ParallelMultiInstanceTask,
    SequentialMultiInstanceTask,
    ServiceTask,
)
from SpiffWorkflow.util.deep_merge import DeepMerge
from SpiffWorkflow.util.task import TaskState

from bankflow._stack import deep_call
from bankflow._text import shorten
from bankflow.definitions import _io
from bankflow.definitions._bpmn import BPMN, CAMUNDA, ZEEBE, local_name, q
from bankflow.definitions._compat import rewrite
from bankflow.definitions._lint import compensation_problems
from bankflow.definitions._source import SourceFile, parse
from bankflow.language._dmn import Decision, DmnError, parse_dmn
from bankflow.language._expressions import ExpressionError, compile_expression
from bankflow.models import Diagnostic, Severity

__all__ = [
    "BuildOutcome",
    "ExpressionSite",
    "SourceDoc",
    "build",
    "build_process",
    "check_schema",
    "expression_sites",
    "service_name",
]

_SCHEMA_DIR = Path(_bpmn_parser.__file__).parent / "schema"

# SpiffWorkflow's messages, in words an analyst can act on: (pattern, rule, message).
_TRANSLATIONS: list[tuple[re.Pattern[str], str, str]] = [
    (
        re.compile(r"Unknown Time Specification"),
        "timer-definition",
        "the timer has no timeDate, timeDuration or timeCycle, so it can never be scheduled",
    ),
    (
        re.compile(r"No start event found"),
        "start-event-required",
        "the process has no start event and no element without an incoming flow to start at",
    ),
    (
        re.compile(r"Exactly one start event is required in a SubWorkflow Task; found (\d+)"),
        "start-event-required",
        "the sub-process must have exactly one start event (found {0})",
    ),
    (
        re.compile(r"Invalid Script Task\. No Script Provided"),
        "script-missing",
        "the script task has no inline script; bankflow runs only scripts written in the diagram",
    ),
    (
        re.compile(r"A multiinstance task must specify a cardinality or a"),
        "multi-instance",
        "the multi-instance activity names neither a cardinality nor a collection to loop over",
    ),
    (
        re.compile(r"A multiinstance task must specify exactly one"),
        "multi-instance",
        "the multi-instance activity names both a cardinality and a collection; keep one",
    ),
    (
        re.compile(r'No DMN Diagram available with id "([^"]*)"(: did you mean "[^"]*"\?)?'),
        "decision-ref",
        'the business rule task calls decision "{0}", which is neither in this deployment '
        "nor deployed before{1}",
    ),
    (
        re.compile(r"A loopMaximum or loopCondition must be specified"),
        "loop",
        "the loop activity needs a loopMaximum or a loopCondition",
    ),
    (
        re.compile(r"Cannot resolve data(Input|Output)Association"),
        "data-association",
        "a data {0} association refers to something that is not a data object",
    ),
    (
        re.compile(r'No "calledElement" attribute'),
        "call-activity-target",
        "the call activity does not say which process it calls (calledElement is empty)",
    ),
    (
        re.compile(r"Unsupported Catch Event.*compensateEventDefinition", re.DOTALL),
        "unsupported",
        "bankflow cannot run compensation events yet: the process is not deployed, so no "
        "case can start and then stop here",
    ),
    (
        re.compile(r"Unsupported Catch Event"),
        "unsupported",
        "bankflow cannot run this kind of catch event yet: the process is not deployed, so "
        "no case can start and then stop here",
    ),
    (
        re.compile(r"Multiple outgoing flows are not supported"),
        "no-implicit-split",
        "this element cannot have several outgoing flows; draw a gateway",
    ),
    (
        re.compile(r"Non-default exclusive outgoing sequence flow without condition"),
        "conditional-flows",
        "a flow leaving the gateway has no condition and is not the default flow",
    ),
]


@dataclass
class SourceDoc:
    """One parsed file: ``name`` is how diagnostics refer to it."""

    name: str
    root: etree._Element
    lines: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.lines:
            self.lines = {
                el.get("id", ""): el.sourceline or 0 for el in self.root.iter() if el.get("id")
            }


@dataclass
class BuildOutcome:
    """What building a deployment's specs produced.

    ``calls`` maps each call activity to the process it calls.
    """

    processes: dict[str, str] = field(default_factory=dict)  # process id -> file name
    process_names: dict[str, str | None] = field(default_factory=dict)
    decisions: dict[str, str] = field(default_factory=dict)  # decision id -> file name
    decision_names: dict[str, str | None] = field(default_factory=dict)
    calls: list[tuple[str, str, str]] = field(default_factory=list)  # file, element, called
    diagnostics: list[Diagnostic] = field(default_factory=list)


def service_name(node: etree._Element) -> str | None:
    """The handler name a host registers for a service task, in whichever dialect the
    modeller wrote it (Camunda 7 topic/delegate/class, Camunda 8 job type)."""
    if node.get(q("type", CAMUNDA)) == "external" and node.get(q("topic", CAMUNDA)):
        return node.get(q("topic", CAMUNDA))
    delegate = node.get(q("delegateExpression", CAMUNDA))
    if delegate:
        text = delegate.strip()
        if text[:2] in ("${", "#{") and text.endswith("}"):
            text = text[2:-1]
        return text.strip() or None
    java_class = node.get(q("class", CAMUNDA))
    if java_class:
        return java_class.strip().rsplit(".", 1)[-1] or None
    definition = node.find(f"{q('extensionElements')}/{q('taskDefinition', ZEEBE)}")
    if definition is not None and definition.get("type"):
        return definition.get("type")
    return None


def retry_cycle(node: etree._Element) -> str | None:
    """``camunda:failedJobRetryTimeCycle`` (e.g. ``R5/PT5M``): how often and how far apart
    a failing job is tried."""
    found = node.find(f"{q('extensionElements')}/{q('failedJobRetryTimeCycle', CAMUNDA)}")
    if found is None or not (found.text or "").strip():
        return None
    return (found.text or "").strip()


def _result_variable(node: etree._Element) -> str | None:
    return node.get(q("resultVariable", CAMUNDA))


class BankflowServiceTask(ServiceTask):  # type: ignore[misc]
    """Runs the host's registered handler through the workflow's script engine; with no
    handler, ``camunda:asyncBefore`` or an external topic the task waits (STARTED) and the
    runtime turns the wait into a job row for a worker or an external system."""

    external: bool = False
    async_before: bool = False
    retry_cycle: str | None = None

    def _execute(self, task: Any) -> bool | None:
        result: bool | None = task.workflow.script_engine.run_service(task, self)
        return result


class _ServiceTaskParser(SpiffTaskParser):  # type: ignore[misc]
    """Service tasks in any dialect; SpiffWorkflow's own requires its operator extension."""

    def create_task(self) -> Any:
        extensions = self.parse_extensions()
        operator = extensions.get("serviceTaskOperator") or {}
        task = BankflowServiceTask(
            self.spec,
            self.bpmn_id,
            operation_name=operator.get("name") or service_name(self.node) or self.bpmn_id,
            operation_params=operator.get("parameters") or {},
            result_variable=operator.get("resultVariable") or _result_variable(self.node),
            prescript=extensions.get("preScript"),
            postscript=extensions.get("postScript"),
            **self.bpmn_attributes,
        )
        task.external = self.node.get(q("type", CAMUNDA)) == "external"
        task.async_before = self.node.get(q("asyncBefore", CAMUNDA)) == "true"
        task.retry_cycle = retry_cycle(self.node)
        return task


class _DecisionRunner:
    """What SpiffWorkflow's business rule task calls (``result(task)``): bankflow's own DMN
    evaluation (all hit policies, cells in the expression sandbox), its result stored under
    ``camunda:resultVariable`` or the decision id."""

    def __init__(self, decisions: dict[str, Decision], decision_id: str, variable: str) -> None:
        self.decisions = decisions
        self.decision_id = decision_id
        self.variable = variable

    def result(self, task: Any) -> dict[str, Any]:
        from bankflow.language._decisions import evaluate_graph

        try:
            outcome = evaluate_graph(
                self.decisions, self.decision_id, task.data, origin=task.task_spec.bpmn_id
            )
        except (DmnError, ExpressionError) as exc:
            error = WorkflowTaskException(str(exc), task=task, exception=exc)
            error.error_type = getattr(exc, "error_type", None) or type(exc).__name__
            raise error from exc
        return {self.variable: outcome.result}


class _BusinessRuleTaskParser(BusinessRuleTaskParser):  # type: ignore[misc]
    """Decisions by ``spiffworkflow:calledDecisionId`` or ``camunda:decisionRef``; a
    business rule task implemented elsewhere (a class, an external topic) is a service."""

    @staticmethod
    def get_decision_ref(node: etree._Element) -> str | None:
        ref = SpiffTaskParser._parse_extensions(node).get("calledDecisionId")
        return ref or node.get(q("decisionRef", CAMUNDA))

    def create_task(self) -> Any:
        decision_ref = self.get_decision_ref(self.node)
        if decision_ref is None:
            return _ServiceTaskParser.create_task(self)
        decisions: dict[str, Decision] = self.process_parser.parser.decisions
        if decision_ref not in decisions:
            close = difflib.get_close_matches(decision_ref, sorted(decisions), n=1, cutoff=0.6)
            hint = f': did you mean "{close[0]}"?' if close else ""
            raise ValidationException(
                f'No DMN Diagram available with id "{decision_ref}"{hint}',
                node=self.node,
                file_name=self.filename,
            )
        extensions = self.parse_extensions()
        variable = self.node.get(q("resultVariable", CAMUNDA)) or decision_ref
        return BusinessRuleTask(
            self.spec,
            self.bpmn_id,
            dmnEngine=_DecisionRunner(decisions, decision_ref, variable),
            prescript=extensions.get("preScript"),
            postscript=extensions.get("postScript"),
            **self.bpmn_attributes,
        )


class PassThroughTask(NoneTask):  # type: ignore[misc]
    """A ``bpmn:task`` with no type: nothing to do, so the token passes on, as in Camunda.
    SpiffWorkflow treats it as a manual task, but nobody's inbox shows it, so an instance
    reaching one waited forever with nothing to wait for."""

    def __init__(self, wf_spec: Any, bpmn_id: str, **kwargs: Any) -> None:
        super().__init__(wf_spec, bpmn_id, **kwargs)
        self.manual = False


def _check_cardinality(my_task: Any, value: Any) -> None:
    """A multi-instance activity's cardinality must evaluate to a whole number, 0 or more.

    SpiffWorkflow creates ``range(cardinality)`` instances: with a negative number a
    sequential activity waited for instances it never created (the case stayed running
    with nothing to wait for) and a parallel one completed having run nothing; a fraction
    ran one instance too many, then waited forever. The step fails instead, naming the
    activity and the value."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return
    spec = my_task.task_spec
    label = getattr(spec, "bpmn_name", None) or spec.bpmn_id
    raise WorkflowTaskException(
        f'the loop cardinality of multi-instance activity "{shorten(label, 80)}" '
        f"(`{shorten(' '.join(str(spec.cardinality).split()), 80)}`) is "
        f"{shorten(repr(value), 80)}: it must be a whole number of instances, 0 or more",
        task=my_task,
    )


# Where a task keeps its local variables (``runtime/_variables``): the instances of a
# multi-instance activity keep their element variable and ``loopCounter`` there.
LOCALS = "bankflow_locals"


class _InstanceLocals:
    """Each instance of a multi-instance activity has its own element variable
    (``camunda:elementVariable``, the input item), output item and ``loopCounter``, as in
    Camunda: local to the instance, never merged into the process's variables (the next
    sequential instance failed with "Multiinstance input item ... already exists", and a
    process variable of the same name stopped the activity). What an instance writes
    besides goes to the process as it completes, so nothing is merged again."""

    def create_child(self: Any, my_task: Any, item: Any, key_or_index: Any = None) -> None:
        task_spec = my_task.workflow.spec.task_specs[self.task_spec]
        if not task_spec.completed_event.is_connected(self.merge_child):
            task_spec.completed_event.connect(self.merge_child)
        counter = sum(1 for c in my_task.children if c.task_spec is task_spec)
        child = my_task._add_child(task_spec, TaskState.WAITING)
        child.triggered = True
        local: dict[str, Any] = {"loopCounter": counter}
        if self.input_item is not None:
            local[self.input_item.bpmn_id] = copy.deepcopy(item)
        if self.output_item is not None:
            local.setdefault(self.output_item.bpmn_id, None)
        child.internal_data[LOCALS] = local
        child.data.update(copy.deepcopy(local))
        if key_or_index is not None:
            child.internal_data["key_or_index"] = key_or_index
        else:
            child.internal_data["item"] = item
        child.task_spec._update(child)

    def merge_child(self: Any, workflow: Any, child: Any) -> None:
        if self.data_output is not None:
            super().merge_child(workflow, child)  # type: ignore[misc]
            return
        data, child.data = child.data, {}  # its writes reached the process already
        try:
            super().merge_child(workflow, child)  # type: ignore[misc]
        finally:
            child.data = data


class CountedParallelMultiInstanceTask(_InstanceLocals, ParallelMultiInstanceTask):  # type: ignore[misc]
    """A parallel multi-instance activity whose cardinality is checked when it starts."""

    def create_children(self, my_task: Any) -> None:
        if self.data_input is None:
            _check_cardinality(
                my_task, my_task.workflow.script_engine.evaluate(my_task, self.cardinality)
            )
        super().create_children(my_task)


class CountedSequentialMultiInstanceTask(_InstanceLocals, SequentialMultiInstanceTask):  # type: ignore[misc]
    """A sequential multi-instance activity whose cardinality (evaluated once, when it
    starts) is checked before the first instance is created."""

    def get_next_index(self, my_task: Any) -> tuple[Any, Any]:
        _check_cardinality(my_task, my_task.internal_data.get("cardinality"))
        result: tuple[Any, Any] = super().get_next_index(my_task)
        return result


def _counted(parser_class: Any) -> Any:
    """``parser_class`` building bankflow's checked multi-instance activities."""
    return type(
        parser_class.__name__,
        (parser_class,),
        {
            "PARALLEL_MI_CLASS": CountedParallelMultiInstanceTask,
            "SEQUENTIAL_MI_CLASS": CountedSequentialMultiInstanceTask,
        },
    )


class _EndEventParser(SpiffEndEventParser):  # type: ignore[misc]
    """SpiffWorkflow 3.2's end event parser leaves signals out of the definitions it
    reads, so a signal end event became a none end event: its signal reached nobody, in
    the instance or elsewhere, and a catch waiting for it waited forever."""

    def create_task(self) -> Any:
        if _compensate_definition(self.node) is not None:
            task = _compensation_spec(self, CompensationEndEvent)
            task.connect(self.spec.end)
            return task
        if self.node.find(q("cancelEventDefinition")) is not None:
            task = CancelEndEvent(
                self.spec,
                self.bpmn_id,
                event_definition=self.get_event_definition([CANCEL_EVENT_XPATH]),
                **self.bpmn_attributes,
            )
            task.connect(self.spec.end)
            return task
        definition = self.get_event_definition(
            [
                MESSAGE_EVENT_XPATH,
                SIGNAL_EVENT_XPATH,
                CANCEL_EVENT_XPATH,
                ERROR_EVENT_XPATH,
                ESCALATION_EVENT_XPATH,
                TERMINATION_EVENT_XPATH,
            ]
        )
        task = self._create_task(definition)
        task.connect(self.spec.end)
        return task


# -- compensation ------------------------------------------------------------------------------
#
# SpiffWorkflow 3.2 knows no compensation. A compensation boundary event only says which
# activity (its ``attachedToRef``) the handler (an activity with ``isForCompensation``,
# connected by an association) undoes, so it is no catch event here: the activity's spec
# records each of its completions on its scope's root task (``COMPENSABLE``, kept by the
# serializer), and the handler is a spec connected to nothing. A compensation throw event
# (intermediate or end) takes the completions of its scope not yet compensated, newest
# first (those of ``activityRef`` alone when it names one), and runs their handlers as its
# own children one after the other, as a sequential multi-instance activity runs its
# instances; it goes on when the last one completed (``waitForCompletion``). Everything
# is wired when the spec is built, so a state reloaded on another engine carries on.

COMPENSABLE = "bankflow_compensable"  # scope root: [{task, element, handler}], in order
COMPENSATING = "bankflow_compensating"  # throw task: the completions still to compensate
COMPENSATION = "bankflow_compensation"  # handler task: the completion it compensates
# The handlers that completed during one step, on the top workflow (in memory only): the
# runtime takes them for the history (``activity_compensated``).
COMPENSATED = "_bankflow_compensated"


def _compensate_definition(node: etree._Element) -> etree._Element | None:
    return node.find(q("compensateEventDefinition"))


def _record_completion(workflow: Any, task: Any) -> None:
    """An activity with a compensation handler completed: note it, in order, on its scope."""
    spec = task.task_spec
    handler = getattr(spec, "bankflow_compensation_handler", None)
    entry: dict[str, Any] = {"task": str(task.id), "element": spec.bpmn_id, "handler": handler}
    own = task.internal_data.get(LOCALS)
    if own:
        # An instance of a multi-instance activity: its handler sees its local variables
        # (element variable, loopCounter) as they were when it completed, as in Camunda.
        entry["locals"] = copy.deepcopy(own)
    if handler is None:
        # A sub-process with no handler of its own is compensated by compensating what
        # completed inside it (BPMN's default), or by its compensation event sub-process
        # (which compensates that itself): those completions move to its entry.
        sub = task.workflow.top_workflow.subprocesses.get(task.id)
        inner = sub.task_tree.internal_data.get(COMPENSABLE) if sub is not None else None
        pending = [e for e in inner or () if not e.get("compensated")]
        entry["handler"] = getattr(spec, "bankflow_inner_handler", None)
        if not pending and entry["handler"] is None:
            return
        for inside in pending:
            inside["compensated"] = True  # its parent's entry compensates it now
        entry["inner"] = [
            {
                **{k: v for k, v in e.items() if k != "compensated"},
                **({"locals": {**own, **e.get("locals", {})}} if own else {}),
            }
            for e in pending
        ]
    done = task.workflow.task_tree.internal_data.setdefault(COMPENSABLE, [])
    done.append(entry)


def _newest_first(entries: Any) -> list[dict[str, Any]]:
    """The handlers to run for ``entries`` (newest first): a sub-process's entry stands for
    what completed inside it, undone newest first too."""
    found = []
    for entry in entries:
        if entry["handler"] is None:
            found += _newest_first(reversed(entry["inner"]))
        else:  # with "inner": a compensation event sub-process, given what it compensates
            found.append({k: v for k, v in entry.items() if k != "compensated"})
    return found


def _compensation_record(my_task: Any) -> list[dict[str, Any]]:
    """The completions a throw compensates: those of its scope; inside an event
    sub-process, those of the scope around it; inside a compensation event sub-process,
    those inside the sub-process it compensates (handed to it by the throw that runs
    it)."""
    scope = my_task.workflow
    if scope.parent_task_id is None or not getattr(scope.spec, "bankflow_event_scope", False):
        record: list[dict[str, Any]] = scope.task_tree.internal_data.get(COMPENSABLE) or []
        return record
    around = scope.parent_workflow
    started_by = around.get_task_from_id(scope.parent_task_id)
    entry = started_by.internal_data.get(COMPENSATION) if started_by is not None else None
    if entry is not None:
        inner: list[dict[str, Any]] = entry.get("inner") or []
        return inner
    record = around.task_tree.internal_data.get(COMPENSABLE) or []
    return record


def _run_next_handler(my_task: Any) -> None:
    """Start the next handler of a compensation throw, or let the throw go on."""
    queue = my_task.internal_data.get(COMPENSATING) or []
    if not queue:
        if my_task.state == TaskState.STARTED:  # it waited for them (waitForCompletion)
            my_task._set_state(TaskState.READY)
        return
    entry, my_task.internal_data[COMPENSATING] = queue[0], queue[1:]
    spec = my_task.workflow.spec.task_specs[entry["handler"]]
    child = my_task._add_child(spec, TaskState.WAITING)
    child.triggered = True  # not an output: SpiffWorkflow must not sync it away
    child.internal_data[COMPENSATION] = entry
    if entry.get("locals"):
        child.internal_data[LOCALS] = copy.deepcopy(entry["locals"])
    spec._update(child)


def _handler_completed(workflow: Any, child: Any) -> None:
    entry = child.internal_data.get(COMPENSATION)
    throw = child.parent
    if entry is None or throw is None or not isinstance(throw.task_spec, _CompensationThrow):
        return
    top = child.workflow.top_workflow
    top.__dict__.setdefault(COMPENSATED, []).append(
        {**entry, "handler_task": str(child.id), "thrown_by": throw.task_spec.bpmn_id}
    )
    _run_next_handler(throw)


class _CompensationThrow:
    """What a compensation intermediate throw event and end event do when reached."""

    activity_ref: str | None = None
    wait_for_completion: bool = True
    bpmn_id: str

    def _update_hook(self, my_task: Any) -> bool | None:
        if my_task.state == TaskState.STARTED:
            return None  # its handlers run; the last one lets it go on
        super()._update_hook(my_task)  # type: ignore[misc]
        record = _compensation_record(my_task)
        chosen = [
            entry
            for entry in reversed(record)
            if not entry.get("compensated") and self.activity_ref in (None, entry["element"])
        ]
        if not chosen:
            return True
        for entry in chosen:
            entry["compensated"] = True  # compensated once: a later throw leaves it
        my_task.internal_data[COMPENSATING] = _newest_first(chosen)
        if not self.wait_for_completion:
            _run_next_handler(my_task)  # the handlers run one after another meanwhile
            return True
        my_task._set_state(TaskState.STARTED)
        _run_next_handler(my_task)
        return None


class CompensationThrowEvent(_CompensationThrow, IntermediateThrowEvent):  # type: ignore[misc]
    """An intermediate throw event with ``compensateEventDefinition``."""


class CompensationEndEvent(_CompensationThrow, EndEvent):  # type: ignore[misc]
    """An end event with ``compensateEventDefinition``."""


class CancelEndEvent(_CompensationThrow, EndEvent):  # type: ignore[misc]
    """A cancel end event: BPMN cancels a transaction by first compensating what completed
    in it (newest first), then taking its cancel boundary event."""


def _compensation_spec(parser: Any, spec_class: Any) -> Any:
    definition = _compensate_definition(parser.node)
    task = spec_class(
        parser.spec,
        parser.bpmn_id,
        event_definition=NoneEventDefinition(),
        **parser.bpmn_attributes,
    )
    ref = definition.get("activityRef") if definition is not None else None
    task.activity_ref = (ref or "").strip() or None
    wait = definition.get("waitForCompletion") if definition is not None else None
    task.wait_for_completion = (wait or "true").strip().lower() != "false"
    return task


class _IntermediateThrowEventParser(SpiffIntermediateThrowEventParser):  # type: ignore[misc]
    """SpiffWorkflow reads no compensation definition: such a throw passed through."""

    def create_task(self) -> Any:
        if _compensate_definition(self.node) is None:
            return super().create_task()
        return _compensation_spec(self, CompensationThrowEvent)


class _CompensationProcessParser(SpiffProcessParser):  # type: ignore[misc]
    """A process or sub-process whose compensation boundary events are read as "this
    activity is undone by that handler" (SpiffWorkflow's boundary parser refused them),
    and whose handlers are built although no sequence flow reaches them."""

    def _index_process_nodes(self) -> None:
        super()._index_process_nodes()
        for attached, events in list(self.boundary_events_by_attached.items()):
            kept = [e for e in events if _compensate_definition(e) is None]
            if kept:
                self.boundary_events_by_attached[attached] = kept
            else:
                del self.boundary_events_by_attached[attached]

    def add_tasks(self) -> None:
        super().add_tasks()
        for activity_id, handler_node in compensation_handlers(self.node).items():
            activity = self.spec.task_specs.get(activity_id)
            if activity is None:
                continue  # never reached, so never completes
            self.parse_node(handler_node)
            handler = self.spec.task_specs[handler_node.get("id")]
            activity = _each_completion(self.spec, activity)
            activity.bankflow_compensation_handler = handler.name
            if activity not in handler.inputs:
                # An input, though no flow: SpiffWorkflow refuses to run a spec without.
                handler._connect_notify(activity)
            if not activity.completed_event.is_connected(_record_completion):
                activity.completed_event.connect(_record_completion)
            if not handler.completed_event.is_connected(_handler_completed):
                handler.completed_event.connect(_handler_completed)
            handler.bankflow_handles = activity.name
        for node in self.node.iterchildren(q("subProcess"), q("transaction")):
            self._compensate_inside(node)
        for node in self.node.iterchildren(q("subProcess")):
            if node.get("triggeredByEvent") == "true":
                self._event_scope(node)

    def _event_scope(self, node: etree._Element) -> None:
        """An event sub-process's throw events compensate the scope around it, so the
        scope's handlers are known to it too. A compensation event sub-process is this
        scope's handler: SpiffWorkflow read its start as a none start and ran it as soon
        as the scope started; it runs only when the scope is compensated."""
        task_spec = self.spec.task_specs.get(node.get("id"))
        parser = self.parser.process_parsers.get(node.get("id"))
        if task_spec is None or parser is None:
            return
        spec = parser.get_spec()
        spec.bankflow_event_scope = True
        for handler in list(self.spec.task_specs.values()):
            if getattr(handler, "bankflow_handles", None) is not None:
                spec.task_specs.setdefault(handler.name, handler)
        starts = [s for s in node.iterchildren(q("startEvent"))]
        if not any(_compensate_definition(start) is not None for start in starts):
            return
        # Not a branch from the scope's start (its input stays: every spec that runs
        # needs one), nor something the scope's end waits for.
        start, end = self.spec.start, self.spec.end
        for names, name in (
            (start._outputs, task_spec.name),
            (task_spec._outputs, end.name),
            (end._inputs, task_spec.name),
        ):
            while name in names:
                names.remove(name)
        if not task_spec.completed_event.is_connected(_handler_completed):
            task_spec.completed_event.connect(_handler_completed)
        task_spec.bankflow_handles = self.spec.name
        self.spec.bankflow_inner_handler = task_spec.name

    def _compensate_inside(self, node: etree._Element) -> None:
        """A sub-process with handlers inside it and none of its own: its completion
        carries what completed inside (``_record_completion``), and the handlers inside
        are known to this scope too, whose throw events run them. A spec is found by its
        name when a state is loaded, and ids are unique in a file, so the same spec object
        under its own name is all it takes."""
        activity = self.spec.task_specs.get(node.get("id"))
        inner = self.parser.process_parsers.get(node.get("id"))
        if activity is None or inner is None or node.get("triggeredByEvent") == "true":
            return
        activity = _each_completion(self.spec, activity)
        if getattr(activity, "bankflow_compensation_handler", None) is not None:
            return  # its own handler undoes it, as in Camunda
        inner_spec = inner.get_spec()
        handlers = [
            spec
            for spec in inner_spec.task_specs.values()
            if getattr(spec, "bankflow_handles", None) is not None
        ]
        if not handlers:
            return
        activity.bankflow_inner_handler = getattr(inner_spec, "bankflow_inner_handler", None)
        for handler in handlers:
            self.spec.task_specs.setdefault(handler.name, handler)
        if not activity.completed_event.is_connected(_record_completion):
            activity.completed_event.connect(_record_completion)


def _each_completion(process: Any, activity: Any) -> Any:
    """The spec whose completions are compensated: of a loop or multi-instance activity,
    each instance (each is compensated, newest first), not the activity as a whole."""
    if isinstance(activity, LoopTask):
        return process.task_specs.get(activity.task_spec, activity)
    return activity


def compensation_handlers(scope: etree._Element) -> dict[str, etree._Element]:
    """Activity id -> its compensation handler, for the activities drawn directly in
    ``scope``: a compensation boundary event on the activity, associated (either way)
    with an activity of the same scope."""
    root = scope.getroottree().getroot()
    ends: dict[str, set[str]] = {}
    for association in root.iter(q("association")):
        source, target = association.get("sourceRef") or "", association.get("targetRef") or ""
        ends.setdefault(source, set()).add(target)
        ends.setdefault(target, set()).add(source)
    nodes = {child.get("id"): child for child in scope if isinstance(child.tag, str)}
    found = {}
    for event in scope.iterchildren(q("boundaryEvent")):
        if _compensate_definition(event) is None:
            continue
        handlers = [nodes[i] for i in sorted(ends.get(event.get("id") or "", ())) if i in nodes]
        attached = event.get("attachedToRef") or ""
        if handlers and attached in nodes:
            found[attached] = handlers[0]
    return found


# Where a complex gateway keeps, on its own tasks, what BPMN calls its state (§13.4.5): the
# task that fired records the tokens it consumed and the incoming flows heard from since;
# a later token of the same round is "absorbed"; a token counted by a firing "consumed".
_COMPLEX = "bankflow_complex"


class ComplexGateway(bpmn_defaults.InclusiveGateway):  # type: ignore[misc]
    """A BPMN complex gateway.

    As a split it takes every outgoing flow whose condition is true (the default flow when
    none is), like an inclusive split. As a join with an ``activationCondition`` it fires
    as soon as the condition is true of the tokens that have arrived, evaluated with the
    process variables and ``activationCount`` (tokens arrived since it last fired) and
    ``activationCounts`` (the same per incoming sequence flow id); it then waits for
    reset: a token arriving later on an incoming flow that has not delivered one in this
    round is absorbed (the branch ends there, nothing runs again). A token on a flow that
    already delivered one, or one that came round a loop from the firing, counts toward the
    next firing. Without an activation condition it joins as an inclusive gateway."""

    activation_condition: str | None = None
    incoming_flows: dict[str, str] = {}  # source element id -> flow id, set by the parser

    def _update_hook(self, my_task: Any) -> bool:
        if self.activation_condition is None:
            return bool(super()._update_hook(my_task))
        if my_task.internal_data.get(_COMPLEX) == "absorbed" or self._absorbs(my_task):
            my_task.internal_data[_COMPLEX] = "absorbed"
            return True
        arrived = self._arrived(my_task)
        fires = self._activated(my_task, arrived)
        for task in self._tokens(my_task):
            if task is not my_task and task.state == TaskState.WAITING:
                task.cancel()  # one task waits for the gateway; the others stay counted
        if not fires:
            my_task._set_state(TaskState.WAITING)
            return False
        for task in arrived:
            if task is not my_task:
                task.internal_data[_COMPLEX] = "consumed"
        my_task.internal_data[_COMPLEX] = {
            "consumed": [str(t.id) for t in arrived],
            "flows": sorted({self._flow(t) for t in arrived}),
            "reset": False,
        }
        my_task._inherit_data()
        return True

    def _run_hook(self, my_task: Any) -> bool:
        if self.activation_condition is None:
            return bool(super()._run_hook(my_task))
        if my_task.internal_data.get(_COMPLEX) == "absorbed":
            my_task._sync_children([], TaskState.FUTURE)
            return True
        consumed = set(my_task.internal_data[_COMPLEX]["consumed"])
        for task in self._tokens(my_task):
            if task is not my_task and str(task.id) in consumed:
                DeepMerge.merge(my_task.data, task.parent.data)
        my_task._inherit_data()
        matches, defaults = self._get_matching_outputs(my_task)
        if not matches and not defaults:
            raise WorkflowTaskException("No conditions satisfied on gateway", task=my_task)
        my_task._sync_children(matches or defaults, TaskState.FUTURE)
        for child in my_task.children:
            child.task_spec._predict(child, mask=TaskState.FUTURE | TaskState.PREDICTED_MASK)
        return True

    def _tokens(self, my_task: Any) -> list[Any]:
        """The gateway's tasks whose incoming branch has arrived (one per token)."""
        return [
            t
            for t in my_task.workflow.tasks.values()
            if t.task_spec is self
            and t.parent is not None
            and t.parent.state == TaskState.COMPLETED
        ]

    def _arrived(self, my_task: Any) -> list[Any]:
        """Tokens neither consumed by a firing nor absorbed."""
        return [t for t in self._tokens(my_task) if _COMPLEX not in t.internal_data]

    def _flow(self, task: Any) -> str:
        source = task.parent.task_spec
        bpmn_id = getattr(source, "bpmn_id", None) or source.name
        return str(self.incoming_flows.get(bpmn_id, bpmn_id))

    def _absorbs(self, my_task: Any) -> bool:
        """Whether ``my_task`` is a late token of a round the gateway already fired for."""
        flow = self._flow(my_task)
        every = set(self.incoming_flows.values()) or {
            getattr(s, "bpmn_id", None) or s.name for s in self.inputs
        }
        for fired in self._tokens(my_task):
            record = fired.internal_data.get(_COMPLEX)
            if not isinstance(record, dict) or record["reset"]:
                continue
            if my_task.is_descendant_of(fired):
                record["reset"] = True  # it came round a loop: a new round
                continue
            if flow in record["flows"]:
                return False  # that flow delivered already: the token waits for the next round
            record["flows"] = sorted({*record["flows"], flow})
            record["reset"] = every <= set(record["flows"])
            return True
        return False

    def _activated(self, my_task: Any, arrived: list[Any]) -> bool:
        counts: dict[str, int] = {}
        for task in arrived:
            counts[self._flow(task)] = counts.get(self._flow(task), 0) + 1
        context = {
            **my_task.parent.data,
            **my_task.data,
            "activationCount": len(arrived),
            "activationCounts": counts,
        }
        return bool(
            my_task.workflow.script_engine.evaluate(
                my_task, self.activation_condition, external_context=context
            )
        )


class _ComplexGatewayParser(ConditionalGatewayParser):  # type: ignore[misc]
    """Reads the ``activationCondition`` and the incoming flows' ids; an outgoing flow
    without a condition is always taken (as from an inclusive split)."""

    def create_task(self) -> Any:
        task = super().create_task()
        found = self.xpath("./bpmn:activationCondition")
        text = (found[0].text or "").strip() if found else ""
        task.activation_condition = text or None
        scope = self.node.getparent()
        task.incoming_flows = {
            flow.get("sourceRef"): flow.get("id")
            for flow in (scope if scope is not None else ())
            if flow.tag == q("sequenceFlow") and flow.get("targetRef") == self.bpmn_id
        }
        return task

    def connect_outgoing(
        self, outgoing_task: Any, sequence_flow_node: Any, is_default: bool
    ) -> None:
        if is_default or self.parse_condition(sequence_flow_node) is not None:
            super().connect_outgoing(outgoing_task, sequence_flow_node, is_default)
        else:
            self.task.connect_outgoing_if("True", outgoing_task)


class BankflowBpmnParser(SpiffBpmnParser):  # type: ignore[misc]
    """SpiffWorkflow's parser with bankflow's service and business rule tasks and checked
    multi-instance cardinalities; decisions are bankflow's own (``decisions``), not
    SpiffWorkflow's DMN parser."""

    def __init__(self) -> None:
        super().__init__()
        self.decisions: dict[str, Decision] = {}

    PROCESS_PARSER_CLASS = _CompensationProcessParser
    OVERRIDE_PARSER_CLASSES = {
        tag: (_counted(parser_class), spec_class)
        for tag, (parser_class, spec_class) in {
            **SpiffBpmnParser.PARSER_CLASSES,
            **SpiffBpmnParser.OVERRIDE_PARSER_CLASSES,
            full_tag("task"): (SpiffTaskParser, PassThroughTask),
            full_tag("serviceTask"): (_ServiceTaskParser, ServiceTask),
            full_tag("businessRuleTask"): (_BusinessRuleTaskParser, BusinessRuleTask),
            full_tag("endEvent"): (_EndEventParser, EndEvent),
            full_tag("complexGateway"): (_ComplexGatewayParser, ComplexGateway),
            full_tag("intermediateThrowEvent"): (
                _IntermediateThrowEventParser,
                IntermediateThrowEvent,
            ),
        }.items()
    }


@cache
def _schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(_SCHEMA_DIR / "BPMN20.xsd")))


# XSD findings that do not change how a process runs: reported, but never block a deploy.
_LENIENT_XSD = (
    "is not a valid value of the atomic type 'xs:ID'",
    "Missing child element(s)",
    "{http://www.omg.org/spec/BPMN/20100524/MODEL}extensionElements': This element is not expected",
)


def check_schema(root: etree._Element, *, file: str) -> list[Diagnostic]:
    """Validate against the BPMN 2.0 XSD; layout (DI) and vendor content only warn."""
    # bpmn-js writes formalExpression where the schema wants messagePath (as SpiffWorkflow
    # does, rename it so the real problems stay visible).
    for expr in root.iter(q("formalExpression")):
        parent = expr.getparent()
        if parent is not None and local_name(parent) == "correlationPropertyRetrievalExpression":
            expr.tag = q("messagePath")
    schema = _schema()
    if schema.validate(root):
        return []
    diagnostics = []
    for error in schema.error_log:
        element = _element_at(root, error.line)
        message = error.message
        model_element = message.startswith(f"Element '{{{BPMN}}}")
        lenient = not model_element or any(m in message for m in _LENIENT_XSD)
        diagnostics.append(
            Diagnostic(
                file=file,
                line=error.line,
                element_id=element.get("id") if element is not None else None,
                rule="xsd",
                message=message.replace(f"{{{BPMN}}}", "bpmn:"),
                severity=Severity.WARNING if lenient else Severity.ERROR,
            )
        )
    return diagnostics


def _element_at(root: etree._Element, line: int) -> etree._Element | None:
    """The element the schema complained about, or its nearest ancestor with an id, so the
    diagnostic names something the analyst can find in the modeller."""
    for el in root.iter():
        if el.sourceline == line:
            node: etree._Element | None = el
            while node is not None and not node.get("id"):
                node = node.getparent()
            return node
    return None


def _translate(exc: Exception) -> tuple[str, str]:
    text = str(exc)
    for pattern, rule, message in _TRANSLATIONS:
        match = pattern.search(text)
        if match:
            # "Input"/"Output" read as words; ids (a decision's) keep their case
            groups = (g.lower() if g in ("Input", "Output") else g or "" for g in match.groups())
            return rule, message.format(*groups)
    if isinstance(exc, ValidationException):
        return "bpmn", text
    return "unsupported", f"bankflow cannot build this element ({type(exc).__name__}: {text})"


def _diagnostic(exc: Exception, docs: dict[str, SourceDoc], default_file: str) -> Diagnostic:
    rule, message = _translate(exc)
    element_id = getattr(exc, "id", None) or None
    file = getattr(exc, "file_name", None) or default_file
    doc = docs.get(file) or docs.get(default_file)
    line = doc.lines.get(element_id) if doc is not None and element_id else None
    return Diagnostic(file=file, line=line, element_id=element_id, rule=rule, message=message)


def build(
    bpmn: Sequence[SourceDoc], dmn: Sequence[SourceDoc], *, extra_dmn: Sequence[SourceDoc] = ()
) -> BuildOutcome:
    """Build every executable process and decision in the documents.

    ``extra_dmn`` are decisions deployed earlier that business rule tasks may call. Each
    process is built on its own so one broken process does not hide another's problems.
    SpiffWorkflow parses lazily; building here is what makes deploy-time errors real. The
    parser recurses along sequence flows, so it runs on a deep stack (``deep_call``).
    """
    return deep_call(_build, bpmn, dmn, extra_dmn=extra_dmn)


def _build(
    bpmn: Sequence[SourceDoc], dmn: Sequence[SourceDoc], *, extra_dmn: Sequence[SourceDoc]
) -> BuildOutcome:
    outcome = BuildOutcome()
    docs = {d.name: d for d in [*bpmn, *dmn, *extra_dmn]}
    parser = BankflowBpmnParser()
    for doc in extra_dmn:
        _add_decisions(doc, parser, None)
    for doc in dmn:
        _add_decisions(doc, parser, outcome)
    parameters: dict[str, _io.Mapping] = {}
    for doc in bpmn:
        parameters.update(_io.mappings(doc.root))
        try:
            parser.add_bpmn_xml(doc.root, filename=doc.name)
        except Exception as exc:
            outcome.diagnostics.append(_diagnostic(exc, docs, doc.name))
            continue
    for process_id in parser.get_process_ids():
        process_parser = parser.get_process_parser(process_id)
        if process_parser.node.tag != q("process"):
            continue  # an embedded sub-process, built as part of its process
        file = process_parser.filename or ""
        try:
            spec = parser.get_spec(process_id)  # SpiffWorkflow parses lazily: this is the check
            reached = _sub_specs(parser, spec)
        except Exception as exc:
            outcome.diagnostics.append(_diagnostic(exc, docs, file))
            continue
        for built in (spec, *(v for v in reached.values() if v)):
            _attach_parameters(built, parameters)
        sites = expression_sites(spec, {k: v for k, v in reached.items() if v})
        refused = [
            _expression_diagnostic(site, error, docs, file)
            for site in sites
            if (error := _compile_error(site)) is not None
        ]
        refused += _unsupported(process_parser.node, docs.get(file), file)
        outcome.diagnostics += [d for d in refused if d.severity == Severity.WARNING]
        if any(d.severity == Severity.ERROR for d in refused):
            outcome.diagnostics += [d for d in refused if d.severity == Severity.ERROR]
            continue
        outcome.processes[process_id] = file
        outcome.process_names[process_id] = process_parser.node.get("name")
        for call in process_parser.node.iter(q("callActivity")):
            called = (call.get("calledElement") or "").strip()
            if called:
                outcome.calls.append((file, call.get("id", ""), called))
    return outcome


def _unsupported(process: etree._Element, doc: SourceDoc | None, file: str) -> list[Diagnostic]:
    """What SpiffWorkflow 3.2 builds but cannot run, refused so that no instance starts and
    then stops there. An ad-hoc sub-process fails as soon as one of its activities
    completes (its path bookkeeping expects data objects every process has not) and
    evaluates its completion condition before anything ran."""
    found = []
    for node in process.iter(q("adHocSubProcess")):
        label = node.get("name") or node.get("id") or "ad-hoc sub-process"
        found.append(
            Diagnostic(
                file=file,
                line=(doc.lines.get(node.get("id", "")) if doc is not None else None)
                or node.sourceline,
                element_id=node.get("id"),
                rule="unsupported",
                message=f'bankflow cannot run ad-hoc sub-processes yet ("{shorten(label, 80)}"): '
                "the process is not deployed, so no case can start and then stop here",
            )
        )
    found += _reserved_ids(process, doc, file)
    found += compensation_problems(process, file=file)
    return found


# SpiffWorkflow names its own task specs of every process and sub-process ``Start``, ``End``
# and ``<id>.EndJoin``, in the same namespace as the diagram's element ids: an element with
# one of those ids replaced SpiffWorkflow's, and the process deployed and then could not
# start ("No output task connected").
_RESERVED_IDS = frozenset({"Start", "End", "Root"})


def _reserved_ids(process: etree._Element, doc: SourceDoc | None, file: str) -> list[Diagnostic]:
    found = []
    for node in process.iter():
        element_id = node.get("id") if isinstance(node.tag, str) else None
        if element_id is None or node.tag in (q("sequenceFlow"), q("process")):
            continue
        if element_id in _RESERVED_IDS or element_id.endswith(".EndJoin"):
            found.append(
                Diagnostic(
                    file=file,
                    line=(doc.lines.get(element_id) if doc is not None else None)
                    or node.sourceline,
                    element_id=element_id,
                    rule="reserved-id",
                    message=f"the id {element_id!r} is one the engine uses for itself: "
                    "rename the element (Camunda Modeler's ids such as StartEvent_1 are "
                    "fine)",
                )
            )
    return found


# -- expressions SpiffWorkflow will evaluate ---------------------------------------------------


@dataclass(frozen=True)
class ExpressionSite:
    """One text SpiffWorkflow hands to the script engine when the element runs."""

    element_id: str
    element: str  # how an analyst knows it: its name, or its id
    what: str  # e.g. "the cardinality of the multi-instance activity"
    text: str
    mode: Literal["eval", "exec"]


# (attribute of a task spec, mode, what it is). Gateway conditions and script tasks are
# checked by the linter on the XML (rule expression-parse) before the build.
_SPEC_EXPRESSIONS: tuple[tuple[str, Literal["eval", "exec"], str], ...] = (
    ("prescript", "exec", "pre-script"),
    ("postscript", "exec", "post-script"),
    ("cardinality", "eval", "loop cardinality"),
    ("condition", "eval", "loop or completion condition"),
    ("activation_condition", "eval", "activation condition"),
)


def expression_sites(spec: Any, subprocess_specs: dict[str, Any]) -> list[ExpressionSite]:
    """Every expression of a built process (and the sub-processes and called processes it
    carries) that SpiffWorkflow evaluates at run time, apart from gateway conditions and
    scripts: multi-instance cardinality and completion condition, loop conditions,
    pre/post-scripts, ad-hoc completion conditions, timer values, conditional events,
    message and event payload expressions, correlation retrieval expressions
    (``messagePath``) and service task parameters. ``tests/unit/test_spiff_evaluation_sites.py``
    ties each to the place in SpiffWorkflow's source that evaluates it."""
    found: list[ExpressionSite] = []
    for process in (spec, *subprocess_specs.values()):
        condition = getattr(process, "completion_condition", None)
        if isinstance(condition, str) and condition.strip():
            found.append(
                ExpressionSite(
                    process.name,
                    process.name,
                    "completion condition of the ad-hoc sub-process",
                    condition,
                    "eval",
                )
            )
        for task_spec in process.task_specs.values():
            found += _task_expressions(task_spec)
    return found


def _sub_specs(parser: BankflowBpmnParser, spec: Any) -> dict[str, Any]:
    """The specs of the sub-processes and called processes ``spec`` reaches that this
    parser knows (a called process deployed earlier is checked when it was deployed)."""
    found: dict[str, Any] = {}
    pending = [spec]
    while pending:
        current = pending.pop()
        for task_spec in current.task_specs.values():
            name = getattr(task_spec, "spec", None)
            if isinstance(name, str) and name not in found:
                sub = parser.get_spec(name, required=False)
                found[name] = sub
                if sub is not None:
                    pending.append(sub)
    return found


def _task_expressions(task_spec: Any) -> list[ExpressionSite]:
    element_id = getattr(task_spec, "bpmn_id", None)
    if not element_id:
        return []
    element = getattr(task_spec, "bpmn_name", None) or element_id
    found = []

    def add(what: str, text: Any, mode: Literal["eval", "exec"] = "eval") -> None:
        if isinstance(text, str) and text.strip():
            found.append(ExpressionSite(element_id, element, what, text, mode))

    for attribute, mode, what in _SPEC_EXPRESSIONS:
        add(f"the {what}", getattr(task_spec, attribute, None), mode)
    for kind in ("input", "output"):
        for name, expression in getattr(task_spec, f"bankflow_{kind}s", None) or ():
            add(f"the {kind} parameter {name!r}", expression)
    for name, parameter in (getattr(task_spec, "operation_params", None) or {}).items():
        if isinstance(parameter, dict):
            add(f"the service parameter {name!r}", parameter.get("value"))
    definition = getattr(task_spec, "event_definition", None)
    definitions = [definition, *getattr(definition, "event_definitions", ())]
    for event in definitions:
        if event is None:
            continue
        kind = type(event).__name__.replace("EventDefinition", "").lower() or "event"
        add(f"the {kind} expression", getattr(event, "expression", None))
        for prop in getattr(event, "correlation_properties", None) or ():
            add(
                f"the correlation property {prop.name!r} (messagePath)",
                getattr(prop, "retrieval_expression", None),
            )
    return found


def _compile_error(site: ExpressionSite) -> ExpressionError | None:
    try:
        compile_expression(site.text, mode=site.mode)
    except ExpressionError as exc:
        return exc
    return None


# Camunda's cron form of a timer cycle (``0 0 9 * * ?``): not an expression bankflow runs.
_CRON = re.compile(r"^\s*(\S+\s+){4,6}\S+\s*$")
_CRON_FIELD = re.compile(r"^[\d*?/,LW#A-Z-]+$")


def _is_cron(text: str) -> bool:
    return bool(_CRON.match(text)) and all(_CRON_FIELD.match(f) for f in text.split())


def _expression_diagnostic(
    site: ExpressionSite, error: ExpressionError, docs: dict[str, SourceDoc], file: str
) -> Diagnostic:
    doc = docs.get(file)
    line = doc.lines.get(site.element_id) if doc is not None else None
    quoted = shorten(site.text, 80)
    if "timer" in site.what and _is_cron(site.text):
        return Diagnostic(
            file=file,
            line=line,
            element_id=site.element_id,
            rule="timer-definition",
            message=f"the timer of {shorten(site.element, 80)} is a cron expression "
            f"(`{quoted}`), which "
            "bankflow does not schedule: this timer never fires; write an ISO 8601 "
            "cycle such as R/PT24H",
            severity=Severity.WARNING,
        )
    return Diagnostic(
        file=file,
        line=line,
        element_id=site.element_id,
        rule="expression-parse",
        message=f"{site.what} of {shorten(site.element, 80)} (`{quoted}`) is refused by "
        f"bankflow's expression language: {shorten(error.message)}",
    )


def build_process(
    process_key: str, sources: Iterable[tuple[str, bytes, str]]
) -> tuple[Any, dict[str, Any]]:
    """The spec and sub-process specs of a deployed process, from its stored sources
    (name, content, "bpmn"/"dmn"), rewritten exactly as deploy checked them."""
    return deep_call(_build_process, process_key, list(sources))


def _build_process(
    process_key: str, sources: Iterable[tuple[str, bytes, str]]
) -> tuple[Any, dict[str, Any]]:
    parser = BankflowBpmnParser()
    bpmn_docs = []
    for name, content, kind in sources:
        root = parse(SourceFile(display=name, name=name, content=content))
        if isinstance(root, Diagnostic):
            raise ValueError(f"stored definition {name} no longer parses: {root.message}")
        doc = SourceDoc(name=name, root=root)
        if kind == "dmn":
            _add_decisions(doc, parser, None)
        else:
            rewrite(doc.root, file=name)
            bpmn_docs.append(doc)
    parameters: dict[str, _io.Mapping] = {}
    for doc in bpmn_docs:
        parameters.update(_io.mappings(doc.root))
        parser.add_bpmn_xml(doc.root, filename=doc.name)
    spec = parser.get_spec(process_key)
    called = parser.get_subprocess_specs(process_key, require_call_activity_specs=False)
    subprocess_specs = {key: value for key, value in called.items() if value is not None}
    for process in (spec, *subprocess_specs.values()):
        _connect_loops(process)
        _attach_parameters(process, parameters)
    return spec, subprocess_specs


def _attach_parameters(process: Any, parameters: dict[str, _io.Mapping]) -> None:
    """Give each activity with ``camunda:inputOutput`` its parameters as expressions
    (``bankflow_inputs``/``bankflow_outputs``: name, expression); on a multi-instance
    activity they belong to each instance, as in Camunda."""
    for task_spec in process.task_specs.values():
        found = parameters.get(getattr(task_spec, "bpmn_id", None) or "")
        if found is None or isinstance(task_spec, LoopTask):
            continue
        task_spec.bankflow_inputs = tuple((p.name, p.expression) for p in found.inputs)
        task_spec.bankflow_outputs = tuple((p.name, p.expression) for p in found.outputs)


def _connect_loops(process: Any) -> None:
    """Tell each loop and multi-instance activity when one of its instances completes.

    SpiffWorkflow connects an instance's completion to its loop only when it creates the
    instance, on the spec object in memory; a spec built afresh for an instance restored
    from storage knew nothing of it, so an instance that waited (a user task, a timer)
    completed and its loop never heard: the case stayed running with nothing to wait for.
    """
    for task_spec in process.task_specs.values():
        if not isinstance(task_spec, LoopTask):
            continue
        child = process.task_specs.get(task_spec.task_spec)
        if child is not None and not child.completed_event.is_connected(task_spec.merge_child):
            child.completed_event.connect(task_spec.merge_child)


def _add_decisions(
    doc: SourceDoc,
    parser: BankflowBpmnParser,
    outcome: BuildOutcome | None,
) -> None:
    """Read every decision of a DMN file and compile its cells in the sandbox; a cell that
    does not compile (unparsable, or refused by the sandbox) is an error naming the rule,
    so the deployment stores nothing; a decision that is not a table is left out with a
    warning (a business rule task calling it is then an error)."""
    from bankflow.language._decisions import check

    try:
        decisions = parse_dmn(doc.root)
    except DmnError as exc:
        if outcome is not None:
            outcome.diagnostics.append(_dmn_diagnostic(exc, doc))
        return
    if not decisions and outcome is not None:
        outcome.diagnostics.append(
            Diagnostic(file=doc.name, line=doc.root.sourceline, rule="dmn", message="no decision")
        )
    for decision in decisions:
        if decision.table is None:
            if outcome is not None:
                outcome.diagnostics.append(
                    Diagnostic(
                        file=doc.name,
                        line=decision.line,
                        element_id=decision.id,
                        rule="dmn",
                        message=f'decision "{decision.name or decision.id}" is not a decision '
                        "table: bankflow does not evaluate it",
                        severity=Severity.WARNING,
                    )
                )
            continue
        problems = check(decision)
        if problems:
            if outcome is not None:
                outcome.diagnostics += [_dmn_diagnostic(p, doc) for p in problems]
                # Its errors refuse the deployment; the parser still knows it, so a
                # business rule task calling it is not also said to call a missing one.
                parser.decisions[decision.id] = decision
            continue
        parser.decisions[decision.id] = decision
        if outcome is not None:
            outcome.decisions[decision.id] = doc.name
            outcome.decision_names[decision.id] = decision.name or None


def _dmn_diagnostic(error: DmnError, doc: SourceDoc) -> Diagnostic:
    """An error: a decision that cannot be read or compiled is never deployed, and neither
    is anything deployed with it. The message quotes the cell, cut to a readable size."""
    line = error.line or (doc.lines.get(error.element_id) if error.element_id else None)
    return Diagnostic(
        file=doc.name,
        line=line or doc.root.sourceline,
        element_id=error.element_id,
        rule="dmn",
        message=shorten(error.message),
    )
