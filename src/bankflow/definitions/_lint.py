"""Modelling checks run on a BPMN file before it is deployed.

The rules follow bpmnlint's names and meaning (https://github.com/bpmn-io/bpmnlint), so an
analyst who has seen them in Camunda Modeler recognises them, plus a few of bankflow's own.
Severity tells the analyst what happens on deploy: an ERROR means bankflow cannot run the
file as drawn, a WARNING means it runs but probably not the way the picture suggests.

This module only reads the lxml tree: it never imports SpiffWorkflow, so it can explain
problems SpiffWorkflow would only report as a stack trace, and it runs on any file a
modelling tool produced, however odd.
"""

from __future__ import annotations

import ast
import contextlib
import difflib
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

from lxml import etree

from bankflow._text import shorten
from bankflow.definitions import _io
from bankflow.definitions._bpmn import (
    ACTIVITIES,
    BPMN,
    CAMUNDA,
    EVENTS,
    FLOW_NODES,
    GATEWAYS,
    SPIFF,
    SUBPROCESSES,
)
from bankflow.definitions._compat import instantiating_elements, instantiation_problem
from bankflow.definitions._timers import looks_like_iso, timer_problem
from bankflow.language._expressions import ExpressionError, compile_expression
from bankflow.language._juel import juel_to_python
from bankflow.models import Diagnostic, Severity

__all__ = ["compensation_problems", "juel_to_python", "lint_bpmn"]

_HUMAN_TASKS = frozenset({"userTask", "manualTask"})
_ASSIGNMENT_ATTRIBUTES = tuple(
    f"{{{CAMUNDA}}}{name}" for name in ("candidateGroups", "candidateUsers", "assignee")
)
_PYTHON_LANGUAGES = frozenset({"python", "py", "python3", "x-python"})


# --- reading the tree without ever raising ----------------------------------------------------


def _kind(el: etree._Element) -> str:
    """BPMN local name, or "" for foreign elements, comments and processing instructions,
    whatever prefix the tool chose."""
    tag = el.tag
    prefix = f"{{{BPMN}}}"
    if not isinstance(tag, str) or not tag.startswith(prefix):
        return ""
    return tag[len(prefix) :]


def _children(el: etree._Element, *kinds: str) -> Iterator[etree._Element]:
    for child in el:
        kind = _kind(child)
        if kind and (not kinds or kind in kinds):
            yield child


def _descendants(el: etree._Element, kind: str) -> Iterator[etree._Element]:
    for child in el.iter(f"{{{BPMN}}}{kind}"):
        if child is not el:
            yield child


def _attr(el: etree._Element, name: str) -> str:
    return " ".join((el.get(name) or "").split())


def _id(el: etree._Element) -> str:
    return _attr(el, "id")


def _is_true(el: etree._Element, name: str) -> bool:
    return _attr(el, name).lower() == "true"


def _raw_text(el: etree._Element) -> str:
    return "".join(str(part) for part in el.itertext())


def _text(el: etree._Element) -> str:
    return _raw_text(el).strip()


def _has_definition(event: etree._Element, definition: str | None = None) -> bool:
    """Whether an event has a trigger; with ``definition``, whether it has that one."""
    for child in _children(event):
        kind = _kind(child)
        if kind == "eventDefinitionRef" and definition is None:
            return True
        if kind.endswith("EventDefinition") and definition in (None, kind):
            return True
    return False


def _condition(flow: etree._Element) -> str | None:
    """A flow's condition text; an empty ``conditionExpression`` counts as none, as it does
    for SpiffWorkflow."""
    return next((text for c in _children(flow, "conditionExpression") if (text := _text(c))), None)


def _is_event_subprocess(el: etree._Element) -> bool:
    return _kind(el) in SUBPROCESSES and _is_true(el, "triggeredByEvent")


def _is_link_event(el: etree._Element) -> bool:
    return _kind(el) in EVENTS and _has_definition(el, "linkEventDefinition")


_WORD_BOUNDARY = re.compile(r"(?<=[a-z])(?=[A-Z])")


def _describe(el: etree._Element) -> str:
    """``user task "Approve loan"``: what the analyst sees on the diagram, falling back to
    the id when the element has no label."""
    kind = _kind(el)
    if _is_event_subprocess(el):
        label = "event subprocess"
    else:
        label = _WORD_BOUNDARY.sub(" ", kind).lower().replace("sub process", "subprocess")
    name = _attr(el, "name")
    if name:
        return f'{label} "{shorten(name, 80)}"'
    return f"{label} {shorten(_id(el), 80) or '(without id)'}"


# --- the file and its flow scopes -----------------------------------------------------------


@dataclass(frozen=True)
class _File:
    """Facts about the whole file that rules inside one scope need."""

    name: str
    expression_language: str
    lane_members: frozenset[str]
    compensation_targets: frozenset[str]
    kinds: dict[str, str]  # id -> BPMN kind of every element of the file's model

    @classmethod
    def of(cls, root: etree._Element, name: str) -> _File:
        boundaries = {
            _id(event)
            for event in _descendants(root, "boundaryEvent")
            if _has_definition(event, "compensateEventDefinition")
        }
        targets = {
            _attr(association, "targetRef")
            for association in _descendants(root, "association")
            if _attr(association, "sourceRef") in boundaries
        }
        return cls(
            name=name,
            expression_language=_attr(root, "expressionLanguage"),
            lane_members=frozenset(_text(ref) for ref in _descendants(root, "flowNodeRef")),
            compensation_targets=frozenset(targets - {""}),
            kinds={i: _kind(el) for el in root.iter(f"{{{BPMN}}}*") if (i := _id(el))},
        )

    def diagnostic(
        self, el: etree._Element, rule: str, severity: Severity, message: str
    ) -> Diagnostic:
        return Diagnostic(
            file=self.name,
            line=el.sourceline,
            element_id=_id(el) or None,
            rule=rule,
            message=message,
            severity=severity,
        )

    def is_compensation(self, node: etree._Element) -> bool:
        return _is_true(node, "isForCompensation") or _id(node) in self.compensation_targets


@dataclass(frozen=True)
class _Scope:
    """A process or subprocess: the flow nodes drawn directly in it and the sequence flows
    that connect them, indexed once by source and target."""

    element: etree._Element
    nodes: tuple[etree._Element, ...]
    flows: tuple[etree._Element, ...]
    incoming: dict[str, list[etree._Element]]
    outgoing: dict[str, list[etree._Element]]

    @classmethod
    def of(cls, element: etree._Element) -> _Scope:
        flows = tuple(_children(element, "sequenceFlow"))
        incoming: dict[str, list[etree._Element]] = defaultdict(list)
        outgoing: dict[str, list[etree._Element]] = defaultdict(list)
        for flow in flows:
            outgoing[_attr(flow, "sourceRef")].append(flow)
            incoming[_attr(flow, "targetRef")].append(flow)
        return cls(
            element=element,
            nodes=tuple(_children(element, *FLOW_NODES)),
            flows=flows,
            incoming=dict(incoming),
            outgoing=dict(outgoing),
        )

    def ins(self, node: etree._Element) -> list[etree._Element]:
        return self.incoming.get(_id(node), []) if _id(node) else []

    def outs(self, node: etree._Element) -> list[etree._Element]:
        return self.outgoing.get(_id(node), []) if _id(node) else []

    @property
    def is_ad_hoc(self) -> bool:
        return _kind(self.element) == "adHocSubProcess"


def _scopes(root: etree._Element) -> Iterator[_Scope]:
    # A process without ``isExecutable`` deploys (bankflow, like SpiffWorkflow, takes the
    # attribute's absence as executable), so it is checked like one: only an explicit
    # ``isExecutable="false"`` (a pool drawn for documentation) is left alone.
    for process in _children(root, "process"):
        if (process.get("isExecutable") or "true").strip().lower() == "true":
            yield from _walk(process)


def _walk(element: etree._Element) -> Iterator[_Scope]:
    scope = _Scope.of(element)
    yield scope
    for node in scope.nodes:
        if _kind(node) in SUBPROCESSES:
            yield from _walk(node)


# --- rules ----------------------------------------------------------------------------------

_Rule = Callable[[_File, _Scope], Iterable[Diagnostic]]


def _start_event_required(file: _File, scope: _Scope) -> Iterator[Diagnostic]:
    """bankflow starts a scope without start event at the elements nothing flows into (the
    BPMN rule for implicit starts): a guess worth a warning, and an error when there is
    nothing to start from. An event subprocess only runs through its own start event."""
    if scope.is_ad_hoc or any(_kind(node) == "startEvent" for node in scope.nodes):
        return
    if _kind(scope.element) == "process" and instantiating_elements(scope.element):
        return  # its message starts it (an instantiating receive task or gateway)
    what = _describe(scope.element)
    if _is_event_subprocess(scope.element):
        yield file.diagnostic(
            scope.element,
            "start-event-required",
            Severity.ERROR,
            f"{what} has no start event, so nothing can trigger it: "
            "add a start event with its trigger (message, timer, error...)",
        )
        return
    starts = [
        _id(node) or "(without id)"
        for node in scope.nodes
        if not scope.ins(node)
        and _kind(node) != "boundaryEvent"
        and not _is_event_subprocess(node)
        and not file.is_compensation(node)
        and not (_kind(node) == "intermediateCatchEvent" and _is_link_event(node))
    ]
    if starts:
        yield file.diagnostic(
            scope.element,
            "start-event-required",
            Severity.WARNING,
            f"{what} has no start event; bankflow starts it at {', '.join(starts)} "
            "(the elements with no incoming flow)",
        )
    elif not scope.nodes:
        return  # an empty scope completes at once; the rewrite that runs it warns
    else:
        yield file.diagnostic(
            scope.element,
            "start-event-required",
            Severity.ERROR,
            f"{what} has no start event and every element in it has an incoming flow, so "
            "bankflow has nowhere to start it: add a start event",
        )


def _end_event_required(file: _File, scope: _Scope) -> Iterator[Diagnostic]:
    """Without an end event the reader cannot tell where the procedure is meant to finish."""
    if scope.is_ad_hoc or not scope.nodes:
        return
    if not any(_kind(node) == "endEvent" for node in scope.nodes):
        yield file.diagnostic(
            scope.element,
            "end-event-required",
            Severity.WARNING,
            f"{_describe(scope.element)} has no end event: add one where the procedure ends",
        )


def _single_blank_start_event(file: _File, scope: _Scope) -> Iterator[Diagnostic]:
    """Several start events without trigger make it ambiguous where an instance begins."""
    blank = [
        node for node in scope.nodes if _kind(node) == "startEvent" and not _has_definition(node)
    ]
    if len(blank) > 1:
        ids = ", ".join(_id(node) or "(without id)" for node in blank)
        yield file.diagnostic(
            blank[1],
            "single-blank-start-event",
            Severity.ERROR,
            f"{_describe(scope.element)} has {len(blank)} start events without a trigger "
            f"({ids}), so it is ambiguous where an instance begins: keep one and give "
            "the others a trigger (message, timer...)",
        )


def _no_disconnected(file: _File, scope: _Scope) -> Iterator[Diagnostic]:
    """A node no flow reaches or leaves is never run: usually a forgotten connection.
    Boundary events, event subprocesses, compensation handlers and link events are
    reached without sequence flows, and ad-hoc subprocesses have no flow by design."""
    if scope.is_ad_hoc:
        return
    candidates = [
        node
        for node in scope.nodes
        if not node.get("attachedToRef")
        and _kind(node) != "boundaryEvent"
        and not _is_event_subprocess(node)
        and not file.is_compensation(node)
        and not _is_link_event(node)
        and not (_is_event_subprocess(scope.element) and _kind(node) == "startEvent")
    ]
    if len(candidates) < 2:
        return
    for node in candidates:
        if not scope.ins(node) and not scope.outs(node):
            yield file.diagnostic(
                node,
                "no-disconnected",
                Severity.WARNING,
                f"{_describe(node)} is not connected to anything, so it never runs: "
                "connect it with sequence flows or remove it",
            )


def _no_duplicate_sequence_flows(file: _File, scope: _Scope) -> Iterator[Diagnostic]:
    """Two identical flows between the same elements run the target twice."""
    seen: set[tuple[str, str, str]] = set()
    for flow in scope.flows:
        key = (_attr(flow, "sourceRef"), _attr(flow, "targetRef"), _condition(flow) or "")
        if key in seen:
            yield file.diagnostic(
                flow,
                "no-duplicate-sequence-flows",
                Severity.ERROR,
                f"{_describe(flow)} duplicates another flow from {key[0]} to {key[1]}, "
                "so the target would run twice: delete one of them",
            )
        seen.add(key)


def _flow_shape(file: _File, scope: _Scope) -> Iterator[Diagnostic]:
    """Splits and joins drawn without gateways, and gateways that do nothing or do two
    things at once: all run, but rarely the way the drawing reads."""
    for node in scope.nodes:
        what, ins, outs = _describe(node), scope.ins(node), scope.outs(node)
        if _kind(node) in GATEWAYS:
            if len(ins) > 1 and len(outs) > 1:
                yield file.diagnostic(
                    node,
                    "no-gateway-join-fork",
                    Severity.WARNING,
                    f"{what} both joins {len(ins)} flows and splits into {len(outs)}: "
                    "draw one gateway to join and another to split",
                )
            elif len(ins) == 1 and len(outs) == 1:
                yield file.diagnostic(
                    node,
                    "superfluous-gateway",
                    Severity.WARNING,
                    f"{what} has one incoming and one outgoing flow, so it does nothing: remove it",
                )
            continue
        default = _attr(node, "default")
        plain = [f for f in outs if _condition(f) is None and _id(f) != default]
        if len(plain) > 1:
            yield file.diagnostic(
                node,
                "no-implicit-split",
                Severity.WARNING,
                f"{what} has {len(plain)} outgoing flows without conditions: this is an "
                "implicit parallel split; bankflow runs every branch. Draw a parallel "
                "gateway to make it explicit",
            )
        if len(ins) > 1:
            yield file.diagnostic(
                node,
                "fake-join",
                Severity.WARNING,
                f"{what} has {len(ins)} incoming flows: it runs once per arriving flow; "
                "use a gateway to join",
            )


def _conditional_flows(file: _File, scope: _Scope) -> Iterator[Diagnostic]:
    """A decision needs a condition (or the default mark) on every way out; a condition on
    a flow leaving a task hides a decision the diagram should show with a gateway."""
    for node in scope.nodes:
        kind, outs = _kind(node), scope.outs(node)
        if kind in ("exclusiveGateway", "inclusiveGateway") and len(outs) > 1:
            default = _attr(node, "default")
            missing = [f for f in outs if _condition(f) is None and _id(f) != default]
            for flow in missing:
                hint = (
                    "bankflow treats it as the default flow; mark it as default to say so"
                    if len(missing) == 1 and not default
                    else "give it a condition or mark it as the gateway's default flow"
                )
                yield file.diagnostic(
                    flow,
                    "conditional-flows",
                    Severity.WARNING,
                    f"{_describe(flow)} leaving {_describe(node)} has no condition: {hint}",
                )
        elif kind in ACTIVITIES:
            for flow in outs:
                if _condition(flow) is not None:
                    yield file.diagnostic(
                        flow,
                        "conditional-flows",
                        Severity.WARNING,
                        f"{_describe(flow)} leaving {_describe(node)} has a condition: "
                        "draw an exclusive gateway after the task to make the decision "
                        "visible",
                    )


def _label_required(file: _File, scope: _Scope) -> Iterator[Diagnostic]:
    """Task lists, audit trails and error messages name elements by their label. Like
    bpmnlint, joining and parallel gateways, subprocesses (labelled by their content) and
    unconditional flows may stay blank."""
    unlabeled: list[etree._Element] = []
    for node in scope.nodes:
        kind = _kind(node)
        if kind in ("parallelGateway", "eventBasedGateway") or kind in SUBPROCESSES:
            continue
        if kind in GATEWAYS and len(scope.outs(node)) < 2:
            continue
        unlabeled.append(node)
    unlabeled += [flow for flow in scope.flows if _condition(flow) is not None]
    for lane_set in _children(scope.element, "laneSet"):
        unlabeled += _descendants(lane_set, "lane")
    for el in unlabeled:
        if not _attr(el, "name"):
            yield file.diagnostic(
                el,
                "label-required",
                Severity.WARNING,
                f"{_describe(el)} has no label: name it so people can tell what it is",
            )


def _human_task_unassigned(file: _File, scope: _Scope) -> Iterator[Diagnostic]:
    """bankflow offers a human task to the groups of its lane or of its camunda
    assignment; with neither, no one sees it in their task list and the case stalls."""
    for node in scope.nodes:
        if _kind(node) not in _HUMAN_TASKS or _id(node) in file.lane_members:
            continue
        if any(_attr(node, name) for name in _ASSIGNMENT_ATTRIBUTES):
            continue
        if next(_children(node, "potentialOwner", "humanPerformer"), None) is not None:
            continue
        yield file.diagnostic(
            node,
            "human-task-unassigned",
            Severity.WARNING,
            f"{_describe(node)} is in no lane and has no assignment, so nobody can act "
            "on it: put it in a lane or give it camunda:candidateGroups",
        )


def _expressions(file: _File, scope: _Scope) -> Iterator[Diagnostic]:
    """Conditions and scripts are only evaluated when reached; checking them now turns a
    stuck case in production into a message at deploy time."""
    for flow in scope.flows:
        for expression in _children(flow, "conditionExpression"):
            yield from _check_condition(file, flow, expression)
    for node in scope.nodes:
        if _kind(node) == "scriptTask":
            yield from _check_script(file, node)


def _loop_counts(file: _File, scope: _Scope) -> Iterator[Diagnostic]:
    """A multi-instance cardinality or a loopMaximum written as a number must be a whole
    number, 0 or more: SpiffWorkflow still runs an activity whose loopMaximum is negative,
    and a negative cardinality leaves the activity waiting for instances it never creates.
    Expressions are checked when they run (the step fails on such a value)."""
    for node in scope.nodes:
        label = _describe(node)
        for loop in _children(node, "multiInstanceLoopCharacteristics"):
            for cardinality in _children(loop, "loopCardinality"):
                value = _literal(_raw_text(cardinality))
                if value is not None and not _is_count(value):
                    yield file.diagnostic(
                        node,
                        "multi-instance",
                        Severity.ERROR,
                        f"the loop cardinality of {label} is {_quote(_raw_text(cardinality))}: "
                        "it must be a whole number of instances, 0 or more",
                    )
        for loop in _children(node, "standardLoopCharacteristics"):
            maximum = _attr(loop, "loopMaximum")
            try:
                count = int(maximum)
            except ValueError:
                continue  # absent, or not a number: the build says so
            if count < 0:
                yield file.diagnostic(
                    node,
                    "loop",
                    Severity.ERROR,
                    f"the loopMaximum of {label} is {count}: it must be a whole number of "
                    "iterations, 0 or more",
                )


def _literal(text: str) -> object | None:
    """The value of a text that is a literal (``-1``, ``${2.5}``, ``=3``), else None."""
    body = text.strip()
    if body[:2] in ("${", "#{") and body.endswith("}"):
        body = body[2:-1].strip()
    elif body.startswith("="):
        body = body[1:].strip()
    try:
        value: object = ast.literal_eval(body)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    return value


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


# Elements where a token may wait for something outside the engine call (a person, a
# message, a timer, a worker or a called process), so a loop through one is bounded by that.
_WAIT_KINDS = frozenset(
    {
        "userTask",
        "manualTask",
        "receiveTask",
        "serviceTask",
        "sendTask",
        "businessRuleTask",
        "intermediateCatchEvent",
        "eventBasedGateway",
        "callActivity",
        "subProcess",
        "adHocSubProcess",
        "transaction",
    }
)


def _loop_without_exit(file: _File, scope: _Scope) -> Iterator[Diagnostic]:
    """A cycle of elements that never wait and have no way out runs until the engine's step
    budget (``Limits.max_steps``) fails the instance: say so before a case reaches it."""
    ids = {_id(node): node for node in scope.nodes if _id(node)}
    edges = {
        node_id: [t for f in scope.outs(node) if (t := _attr(f, "targetRef")) in ids]
        for node_id, node in ids.items()
    }
    exits = {_attr(b, "attachedToRef") for b in _children(scope.element, "boundaryEvent")}
    for component in _cycles(edges):
        nodes = [ids[i] for i in component]
        if any(_kind(n) in _WAIT_KINDS or _id(n) in exits for n in nodes):
            continue
        members = set(component)
        leaves = any(_attr(f, "targetRef") not in members for n in nodes for f in scope.outs(n))
        if leaves:
            continue
        ordered = sorted(nodes, key=lambda n: n.sourceline or 0)
        first = ordered[0]
        names = ", ".join(_describe(n) for n in ordered[:5])
        if len(ordered) > 5:
            names += f" and {len(ordered) - 5:,} more"
        yield file.diagnostic(
            first,
            "loop-no-exit",
            Severity.WARNING,
            f"{names} form a loop with no wait state and no way out: an instance that "
            "reaches it fails once it has run Limits.max_steps elements",
        )


def _cycles(edges: dict[str, list[str]]) -> list[list[str]]:
    """The strongly connected components that contain a cycle (Tarjan's algorithm with an
    explicit stack, so a long chain cannot hit the recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in edges:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, position = work.pop()
            if position == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            targets = edges.get(node, [])
            if position < len(targets):
                work.append((node, position + 1))
                target = targets[position]
                if target not in index:
                    work.append((target, 0))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in edges.get(node, []):
                    found.append(component)
    return found


_GLOBAL_TASKS = frozenset(
    {
        "globalTask",
        "globalUserTask",
        "globalManualTask",
        "globalScriptTask",
        "globalBusinessRuleTask",
    }
)


def _unsupported(file: _File, scope: _Scope) -> Iterator[Diagnostic]:
    """Constructs SpiffWorkflow 3.2 builds but bankflow cannot run as BPMN means: each
    deploys and then stalls, fails or silently does something else, so it is refused by
    name. A boundary event or event sub-process start that can never fire only warns: the
    rest of the process runs as drawn, just never takes that extra path."""
    root = scope.element.getroottree().getroot()
    global_tasks = {_id(el) for el in _children(root) if _kind(el) in _GLOBAL_TASKS} - {""}
    for node in scope.nodes:
        kind, what = _kind(node), _describe(node)
        problem, severity = "", Severity.ERROR
        if kind in EVENTS and next(_children(node, "eventDefinitionRef"), None) is not None:
            problem = (
                "refers to a global event definition (eventDefinitionRef), which "
                "bankflow does not support yet: put the event definition inside the event"
            )
        elif (
            kind == "startEvent"
            and not _is_event_subprocess(scope.element)
            and _has_definition(node, "conditionalEventDefinition")
        ):
            # Intermediate, boundary and event sub-process conditional events are checked
            # after every step (runtime/_spiff.py); a process's own conditional start has
            # no instance whose variables could be checked.
            problem = (
                "is a conditional start event of a process, which bankflow does not "
                "support: start the process by a call, a message, a signal or a timer"
            )
        elif kind in ("eventBasedGateway", "receiveTask") and _is_true(node, "instantiate"):
            # It starts the process on its message (``_compat.instantiation_problem``).
            reason = instantiation_problem(node)
            if reason is not None:
                problem = (
                    f'instantiates the process (instantiate="true") but {reason}, which '
                    "bankflow cannot run: draw it with no incoming flow, directly in the "
                    "process, followed by message events, or use message start events"
                )
        elif kind == "intermediateCatchEvent" and _after_instantiating_gateway(node, scope):
            if _has_definition(node, "timerEventDefinition"):
                problem = (
                    "follows an instantiating event-based gateway, where a timer never "
                    "fires: no instance exists before a message starts one"
                )
                severity = Severity.WARNING
        elif kind == "callActivity" and _attr(node, "calledElement") in global_tasks:
            problem = (
                f"calls the global task {shorten(_attr(node, 'calledElement'), 80)}, which "
                "bankflow does not support yet: call a process, or draw the task here"
            )
        if not problem and kind in ACTIVITIES:
            for name in ("startQuantity", "completionQuantity"):
                value = _attr(node, name)
                if value and value != "1":
                    problem = (
                        f"has {name}={shorten(value, 20)}, which bankflow does not support "
                        "yet (it runs an activity once per arriving token and leaves with "
                        "one): remove it and use gateways"
                    )
            for loop in _children(node, "multiInstanceLoopCharacteristics"):
                # BPMN's behaviors differ only in the events the instances throw (through
                # noneBehaviorEventRef, oneBehaviorEventRef, complexBehaviorDefinition);
                # the token leaves when the activity completes whatever the behavior, so
                # without such an event "None", "One" and "Complex" run as "All" does.
                behavior = _attr(loop, "behavior")
                throws = (
                    _attr(loop, "noneBehaviorEventRef")
                    or _attr(loop, "oneBehaviorEventRef")
                    or next(_children(loop, "complexBehaviorDefinition"), None) is not None
                )
                if behavior and behavior != "All" and throws:
                    problem = (
                        f'has the multi-instance behavior "{shorten(behavior, 20)}", which '
                        "bankflow does not support yet (it throws no events from "
                        "instances): leave the default, All"
                    )
        if problem:
            yield file.diagnostic(node, "unsupported", severity, f"{what} {problem}")


def _after_instantiating_gateway(node: etree._Element, scope: _Scope) -> bool:
    """Whether ``node`` is reached from an event-based gateway that starts the process."""
    nodes = {_id(n): n for n in scope.nodes}
    for flow in scope.ins(node):
        source = nodes.get(_attr(flow, "sourceRef"))
        if (
            source is not None
            and _kind(source) == "eventBasedGateway"
            and _is_true(source, "instantiate")
            and instantiation_problem(source) is None
        ):
            return True
    return False


def _link_events(file: _File, scope: _Scope) -> Iterator[Diagnostic]:
    """A link throw event goes on at the link catch event of the same name in its own
    scope (the rewrite draws that flow): a throw with no such catch would end its path
    silently, and two catches of one name leave it ambiguous where the flow goes on."""
    catches: dict[str, list[etree._Element]] = {}
    throws: list[tuple[etree._Element, str]] = []
    for node in scope.nodes:
        if not _is_link_event(node):
            continue
        names = [_attr(d, "name") for d in _children(node, "linkEventDefinition")]
        name = names[0] if names else ""
        if not name:
            yield file.diagnostic(
                node,
                "link-event",
                Severity.ERROR,
                f"{_describe(node)} is a link event without a link name: name the link "
                "(the same name on the throw and on the catch event)",
            )
        elif _kind(node) == "intermediateCatchEvent":
            catches.setdefault(name, []).append(node)
        elif _kind(node) == "intermediateThrowEvent":
            throws.append((node, name))
    for name, found in catches.items():
        for node in found[1:]:
            yield file.diagnostic(
                node,
                "link-event",
                Severity.ERROR,
                f"{_describe(node)} catches link {shorten(name, 80)!r}, as "
                f"{_describe(found[0])} in the same scope already does, so a link throw "
                "event cannot tell where the flow goes on: give each catch its own name",
            )
    for node, name in throws:
        if name not in catches:
            yield file.diagnostic(
                node,
                "link-event",
                Severity.ERROR,
                f"{_describe(node)} throws link {shorten(name, 80)!r}, which no link catch "
                f"event in {_describe(scope.element)} catches, so the flow would stop "
                "there: add an intermediate catch event with that link name in the same "
                "scope",
            )


# --- expressions ----------------------------------------------------------------------------


def _is_python(language: str) -> bool:
    return language.lower().rsplit("/", 1)[-1] in _PYTHON_LANGUAGES


def _is_juel(language: str) -> bool:
    return any(marker in language.lower() for marker in ("juel", "jsp", "jakarta.el"))


def _python_error(text: str, mode: Literal["eval", "exec"]) -> SyntaxError | None:
    """What bankflow's sandboxed language refuses in ``text`` (syntax, or a construct it
    forbids), as a SyntaxError carrying the line; None when it compiles."""
    try:
        compile_expression(text, mode=mode)
    except ExpressionError as error:
        refused = SyntaxError(error.message)
        refused.lineno = error.line
        return refused
    return None


def _quote(text: str) -> str:
    return f"`{shorten(text, 80)}`"


def _check_condition(
    file: _File, flow: etree._Element, expression: etree._Element
) -> Iterator[Diagnostic]:
    """Camunda models write JUEL, Camunda 8 FEEL, SpiffWorkflow Python; bankflow evaluates
    Python and the JUEL subset it can translate, and says which of the rest it skips."""
    text = _text(expression)
    if not text:
        return
    what = f"the condition {_quote(text)} on {_describe(flow)}"
    language = _attr(expression, "language")
    if language and not _is_python(language) and not _is_juel(language):
        yield file.diagnostic(
            flow,
            "expression-language",
            Severity.WARNING,
            f"{what} is in language {language}, which bankflow does not evaluate",
        )
        return
    if not language and text.startswith("="):
        yield file.diagnostic(
            flow,
            "expression-language",
            Severity.WARNING,
            f"{what} is a FEEL expression (Camunda 8), which bankflow does not evaluate",
        )
        return
    if not _is_python(language) and ("${" in text or "#{" in text):
        python = juel_to_python(text)
        if python is None or _python_error(python, "eval") is not None:
            yield file.diagnostic(
                flow,
                "expression-parse",
                Severity.WARNING,
                f"{what} uses JUEL that bankflow cannot translate to Python: "
                "rewrite it as a Python expression",
            )
        return
    error = _python_error(text, "eval")
    if error is None:
        return
    default = file.expression_language
    if not language and default and not _is_python(default) and not _is_juel(default):
        yield file.diagnostic(
            flow,
            "expression-language",
            Severity.WARNING,
            f"{what} is in the file's expression language {default}, which bankflow "
            "does not evaluate",
        )
        return
    yield file.diagnostic(
        flow,
        "expression-parse",
        Severity.ERROR,
        f"{what} is refused by bankflow's expression language: {error.msg}",
    )


def _check_script(file: _File, task: etree._Element) -> Iterator[Diagnostic]:
    """SpiffWorkflow refuses a script task without inline script and bankflow runs Python
    only, so a script in another language fails the case when reached."""
    what = _describe(task)
    text = "\n".join(_raw_text(script) for script in _children(task, "script"))
    if not text.strip():
        yield file.diagnostic(
            task,
            "script-missing",
            Severity.ERROR,
            f"{what} has no script: write the Python script into the task (bankflow "
            "does not load external script resources)",
        )
        return
    language = _attr(task, "scriptFormat")
    if language and not _is_python(language):
        yield file.diagnostic(
            task,
            "script-language",
            Severity.WARNING,
            f"{what} is written in {language}: bankflow runs Python scripts only; "
            "this task fails when reached",
        )
        return
    error = _python_error(text, "exec")
    if error is not None:
        where = f" (line {error.lineno} of the script)" if error.lineno else ""
        yield file.diagnostic(
            task,
            "expression-parse",
            Severity.ERROR,
            f"the script of {what} is refused by bankflow's expression language{where}: "
            f"{error.msg}",
        )


# --- references --------------------------------------------------------------------------

# (attribute, the kinds of element it must name) on event definitions and tasks.
_ROOT_REFERENCES = {
    "messageRef": ("message",),
    "errorRef": ("error",),
    "escalationRef": ("escalation",),
    "signalRef": ("signal",),
}


def _suggest(ref: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(ref, sorted(set(candidates)), n=1, cutoff=0.6)
    return f': did you mean "{shorten(close[0], 80)}"?' if close else ""


def _references(file: _File, scope: _Scope) -> Iterator[Diagnostic]:
    """Every id one element gives to name another must name one of the right kind: a
    sequence flow's source and target (in the same (sub-)process), a default flow (one
    leaving the element), a boundary event's activity, the message, error, escalation or
    signal of an event or task. SpiffWorkflow reports a dangling one at another element,
    or not at all. A called process may live in another file or deployment: that is
    ``call-activity-target``, resolved at run time as in Camunda."""
    nodes = {_id(node): node for node in scope.nodes if _id(node)}
    activities = {i for i, n in nodes.items() if _kind(n) in ACTIVITIES}
    where = _describe(scope.element)

    def broken(el: etree._Element, attribute: str, ref: str, problem: str) -> Diagnostic:
        return file.diagnostic(
            el,
            "reference",
            Severity.ERROR,
            f'{_describe(el)}: {attribute}="{shorten(ref, 80)}" {problem}',
        )

    for flow in scope.flows:
        for attribute in ("sourceRef", "targetRef"):
            ref = _attr(flow, attribute)
            if not ref:
                yield file.diagnostic(
                    flow,
                    "reference",
                    Severity.ERROR,
                    f"{_describe(flow)} has no {attribute}: connect both of its ends",
                )
            elif ref not in nodes:
                kind = file.kinds.get(ref)
                problem = (
                    f"names a {kind} that is not drawn in {where}: a sequence flow "
                    "connects elements of one (sub-)process"
                    if kind
                    else f"names no element{_suggest(ref, nodes)}"
                )
                yield broken(flow, attribute, ref, problem)
    for node in scope.nodes:
        kind = _kind(node)
        default = _attr(node, "default")
        outs = {_id(f) for f in scope.outs(node)}
        if default and default not in outs:
            problem = (
                "is a sequence flow that does not leave it: the default must be one of "
                "its outgoing flows"
                if file.kinds.get(default) == "sequenceFlow"
                else f"names no outgoing flow{_suggest(default, outs)}"
            )
            yield broken(node, "default", default, problem)
        attached = _attr(node, "attachedToRef")
        if kind == "boundaryEvent" and attached and attached not in activities:
            yield broken(
                node,
                "attachedToRef",
                attached,
                f"names no activity of {where}{_suggest(attached, activities)}",
            )
        definitions = [c for c in _children(node) if _kind(c).endswith("EventDefinition")]
        for holder in (node, *definitions):
            for attribute, kinds in _ROOT_REFERENCES.items():
                ref = _attr(holder, attribute)
                if not ref or file.kinds.get(ref) in kinds:
                    continue
                candidates = [i for i, k in file.kinds.items() if k in kinds]
                yield broken(
                    node,
                    attribute,
                    ref,
                    f"names no {kinds[0]} of this file{_suggest(ref, candidates)}",
                )


# --- exclusive-gateway-default ----------------------------------------------------------------


def _exclusive_gateway_default(file: _File, scope: _Scope) -> Iterator[Diagnostic]:
    """An exclusive gateway whose every way out has a condition and none is the default
    fails the instance when no condition holds (``conditional-flows`` covers flows
    without a condition). Quiet when two conditions negate each other (a yes/no decision
    always has its way out) and when a condition is in a language bankflow does not read
    (``expression-language`` and ``expression-parse`` say so)."""
    for node in scope.nodes:
        outs = scope.outs(node)
        if _kind(node) != "exclusiveGateway" or not outs or _attr(node, "default"):
            continue
        conditions = [_condition(flow) for flow in outs]
        if None in conditions:
            continue  # a flow without condition: conditional-flows
        forms = [_negation_form(c) for c in conditions if c is not None]
        if None not in forms and not _one_always_holds(forms):
            yield file.diagnostic(
                node,
                "exclusive-gateway-default",
                Severity.WARNING,
                f"{_describe(node)} has a condition on each of its {len(outs)} outgoing "
                "flow(s) and no default flow: an instance fails there when no condition "
                "holds; mark one flow as the default, or make sure one condition always "
                "holds",
            )


_COMPLEMENTS = {
    ast.Lt: ast.GtE,
    ast.GtE: ast.Lt,
    ast.Gt: ast.LtE,
    ast.LtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
}
_MIRRORED = {ast.Lt: ast.Gt, ast.Gt: ast.Lt, ast.LtE: ast.GtE, ast.GtE: ast.LtE}


def _one_always_holds(parsed: list[tuple[str, str] | None]) -> bool:
    """Whether two of the conditions (``_negation_form``) are each other's negation
    (``${approved}`` and ``${!approved}``, ``amount < 1000`` and ``amount >= 1000``), so
    one of them always holds: the usual way to draw a yes/no decision, which needs no
    default."""
    forms = [p for p in parsed if p is not None]
    return any(a[1] == b[0] or a[0] == b[1] for i, a in enumerate(forms) for b in forms[i + 1 :])


def _negation_form(condition: str) -> tuple[str, str] | None:
    """(the condition, its negation) in one canonical form each (a dump of the Python
    AST); None when it does not parse."""
    text = condition.strip()
    if text[:2] in ("${", "#{"):
        text = juel_to_python(text) or ""
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None
    if isinstance(tree, ast.UnaryOp) and isinstance(tree.op, ast.Not):
        return _canonical(tree), _canonical(tree.operand)
    if isinstance(tree, ast.Compare) and len(tree.ops) == 1:
        op, left, right = type(tree.ops[0]), tree.left, tree.comparators[0]
        boolean = isinstance(right, ast.Constant) and isinstance(right.value, bool)
        if boolean and op in (ast.Eq, ast.NotEq):  # x == True, x != False: x; else not x
            positive = getattr(right, "value", None) == (op is ast.Eq)
            negated = ast.UnaryOp(ast.Not(), left)
            kept, other = (left, negated) if positive else (negated, left)
            return _canonical(kept), _canonical(other)
        if op in _COMPLEMENTS:
            other = ast.Compare(left=left, ops=[_COMPLEMENTS[op]()], comparators=[right])
            return _canonical(tree), _canonical(other)
    return _canonical(tree), _canonical(ast.UnaryOp(ast.Not(), tree))


def _is_not(tree: ast.expr | None) -> bool:
    return isinstance(tree, ast.UnaryOp) and isinstance(tree.op, ast.Not)


def _canonical(tree: ast.expr) -> str:
    """``b > a`` and ``a < b`` (and ``b == a``, ``a == b``) read the same."""
    inner = tree.operand if isinstance(tree, ast.UnaryOp) else None
    if isinstance(tree, ast.UnaryOp) and isinstance(tree.op, ast.Not) and _is_not(inner):
        return _canonical(inner.operand)  # type: ignore[union-attr]
    if isinstance(tree, ast.Compare) and len(tree.ops) == 1:
        op, left, right = type(tree.ops[0]), tree.left, tree.comparators[0]
        if ast.dump(left) > ast.dump(right) and (op in _MIRRORED or op in (ast.Eq, ast.NotEq)):
            op, left, right = _MIRRORED.get(op, op), right, left
        return ast.dump(ast.Compare(left=left, ops=[op()], comparators=[right]))
    return ast.dump(tree)


# --- timer-definition -----------------------------------------------------------------------

_TIMER_KINDS = ("timeDate", "timeDuration", "timeCycle")
_TIMER_EXAMPLES = {
    "timeDuration": "a duration such as PT24H or P2D",
    "timeDate": "a date-time such as 2026-12-01T09:00:00Z",
    "timeCycle": "a repeating interval such as R3/PT1H or R/PT24H",
}
_IDENTIFIER = re.compile(r"^[A-Za-z_]\w*$")


def _timer_values(file: _File, scope: _Scope) -> Iterator[Diagnostic]:
    """A timer value is read when the timer is armed: one that is no ISO 8601 value fails
    the instance there (``P24H`` was read as a variable: ``NameError``). An ISO 8601
    attempt (``P24H``, ``PT``), a quoted text or a JUEL literal that is no valid value of
    its kind, and a bare word in a file not written in SpiffWorkflow's Python dialect
    (Camunda reads ``tomorrow`` as text, bankflow as a variable) are errors. Expressions
    (``${reminderDate}``, ``"PT48H"``) are left to the expression check; a cron cycle
    warns at build."""
    spiff_dialect = SPIFF in (scope.element.getroottree().getroot().nsmap or {}).values()
    for node in scope.nodes:
        for definition in _children(node, "timerEventDefinition"):
            for value in _children(definition, *_TIMER_KINDS):
                kind, text = _kind(value), _text(value)
                problem = _timer_value_problem(kind, text, spiff_dialect=spiff_dialect)
                if problem is None:
                    continue
                yield file.diagnostic(
                    node,
                    "timer-definition",
                    Severity.ERROR,
                    f"the {kind} of {_describe(node)} is {_quote(text)}: {problem}; write "
                    f"{_TIMER_EXAMPLES[kind]}, or an expression such as ${{dueDate}}",
                )


def _timer_value_problem(kind: str, text: str, *, spiff_dialect: bool) -> str | None:
    if not text or _is_cron(text):
        return None  # an empty timer: the rewrite says it never fires; cron warns at build
    literal: object = None
    if text[:2] in ("${", "#{") and text.endswith("}"):
        python = juel_to_python(text)
        if python is None:
            return None  # reported by the expression check
        literal = _literal(python)
    elif looks_like_iso(text):
        literal = text
    else:
        literal = _literal(text)
        if literal is None and _IDENTIFIER.match(text) and not spiff_dialect:
            return (
                f"bankflow would read it as a variable named {text!r} and Camunda as text, "
                "which is no ISO 8601 value"
            )
    if not isinstance(literal, str):
        return None  # an expression: its value is checked when the timer is armed
    problem = timer_problem(kind, literal)
    if problem is None:
        return None
    fixed = "PT" + literal.strip()[1:]
    if literal.strip()[:2].upper() != "PT" and timer_problem("timeDuration", fixed) is None:
        problem += f" (did you mean {fixed}? hours, minutes and seconds come after a T)"
    return f"{problem}, so the timer fails when armed"


def _is_cron(text: str) -> bool:
    fields = text.split()
    return 5 <= len(fields) <= 7 and all(re.match(r"^[\d*?/,LW#A-Z-]+$", f) for f in fields)


# --- parallel-write ---------------------------------------------------------------------------


def _parallel_write(file: _File, scope: _Scope) -> Iterator[Diagnostic]:
    """Branches after a parallel (or inclusive) split share the process's variables (as in
    Camunda): a variable two branches both set ends with the value of whichever branch
    happens to write last, which depends on when people and systems answer. Say so at
    validate."""
    ids = {_id(node): node for node in scope.nodes if _id(node)}
    for split in scope.nodes:
        if _kind(split) not in ("parallelGateway", "inclusiveGateway", "complexGateway"):
            continue
        branches = [_attr(f, "targetRef") for f in scope.outs(split)]
        if len(branches) < 2:
            continue
        reached = [_reach(scope, ids, start, stop=_id(split)) for start in branches]
        shared = {n for i, r in enumerate(reached) for n in r if any(
            n in other for j, other in enumerate(reached) if j != i)}  # fmt: skip
        writers: dict[str, list[etree._Element]] = defaultdict(list)
        for branch in reached:
            seen_here: dict[str, etree._Element] = {}
            for node_id in branch - shared:
                for variable in _writes(ids[node_id]):
                    seen_here.setdefault(variable, ids[node_id])
            for variable, node in seen_here.items():
                writers[variable].append(node)
        for variable, nodes in sorted(writers.items()):
            if len(nodes) < 2:
                continue
            ordered = sorted(nodes, key=lambda n: n.sourceline or 0)
            names = " and ".join(_describe(n) for n in ordered[:2])
            yield file.diagnostic(
                split,
                "parallel-write",
                Severity.WARNING,
                f'variable "{shorten(variable, 60)}" is written on parallel branches after '
                f"{_describe(split)} (by {names}): both change the one process variable, "
                "so its value after the join depends on which branch writes last; give "
                "each branch its own variable unless that is intended",
            )


def _reach(scope: _Scope, ids: dict[str, etree._Element], start: str, *, stop: str) -> set[str]:
    """The elements of the scope reachable from ``start`` without passing ``stop``."""
    found: set[str] = set()
    pending = [start]
    while pending:
        node_id = pending.pop()
        if node_id in found or node_id == stop or node_id not in ids:
            continue
        found.add(node_id)
        pending += [_attr(f, "targetRef") for f in scope.outs(ids[node_id])]
    return found


def _writes(node: etree._Element) -> set[str]:
    """The variables an element sets: a script's assignments, a form's fields, a result
    variable, Camunda output parameters."""
    written: set[str] = set()
    kind = _kind(node)
    if kind == "scriptTask":
        text = "\n".join(_raw_text(script) for script in _children(node, "script"))
        with contextlib.suppress(ExpressionError):  # reported by the expression rules
            written |= compile_expression(text, mode="exec").assigned
    result = _attr(node, f"{{{CAMUNDA}}}resultVariable")
    if result:
        written.add(result)
    for field in node.iter(f"{{{CAMUNDA}}}formField", f"{{{CAMUNDA}}}outputParameter"):
        name = _attr(field, "id") or _attr(field, "name")
        if name:
            written.add(name)
    return written


def _parameters(file: _File, scope: _Scope) -> Iterator[Diagnostic]:
    """``camunda:inputOutput`` parameters bankflow cannot evaluate: a script is left out
    with a warning, anything else it cannot read (an unknown value kind, a name that is no
    variable name) refuses the file, since the activity would run without it."""
    for node in scope.nodes:
        for reason, skipped in _io.problems(node):
            severity = Severity.WARNING if skipped else Severity.ERROR
            yield file.diagnostic(node, "unsupported", severity, f"{_describe(node)}: {reason}")


# --- compensation ----------------------------------------------------------------------------

_COMPENSATE = "compensateEventDefinition"


def _loops(activity: etree._Element) -> bool:
    loop = ("multiInstanceLoopCharacteristics", "standardLoopCharacteristics")
    return next(_children(activity, *loop), None) is not None


def _compensation(file: _File, scope: _Scope) -> Iterator[Diagnostic]:
    """Compensation as bankflow runs it (``definitions/_parser``): a compensation boundary
    event on an activity, associated with its handler (an activity of the same scope with
    ``isForCompensation``), and throw events that compensate their scope's completed
    activities (in an event sub-process: those of the scope around it), a completed
    sub-process by its compensation event sub-process or its inner handlers, each
    instance of a loop or multi-instance activity. What it does not run yet is refused by
    name (rule ``unsupported``): a compensation event sub-process not directly in an
    embedded sub-process, a loop, transaction or ad-hoc handler. A handler with no
    boundary event, a boundary event with no handler and an ``activityRef`` naming nothing
    to compensate are modelling errors (rule ``compensation``)."""
    nodes = {_id(node): node for node in scope.nodes if _id(node)}
    associated: dict[str, set[str]] = defaultdict(set)
    root = scope.element.getroottree().getroot()
    for association in _descendants(root, "association"):
        source, target = _attr(association, "sourceRef"), _attr(association, "targetRef")
        associated[source].add(target)
        associated[target].add(source)
    compensated: dict[str, etree._Element] = {}  # activity id -> its compensation boundary

    def refuse(node: etree._Element, problem: str) -> Diagnostic:
        return file.diagnostic(node, "unsupported", Severity.ERROR, f"{_describe(node)} {problem}")

    def wrong(node: etree._Element, problem: str) -> Diagnostic:
        return file.diagnostic(node, "compensation", Severity.ERROR, f"{_describe(node)} {problem}")

    for node in scope.nodes:
        if _kind(node) != "boundaryEvent" or not _has_definition(node, _COMPENSATE):
            continue
        activity = nodes.get(_attr(node, "attachedToRef"))
        handlers = [nodes[i] for i in sorted(associated.get(_id(node), ())) if i in nodes]
        if activity is not None:
            compensated[_id(activity)] = node
        if not handlers:
            yield wrong(
                node,
                "has no compensation handler: connect it by an association to an activity "
                'of the same (sub-)process marked isForCompensation="true"',
            )
            continue
        handler = handlers[0]
        if not _is_true(handler, "isForCompensation"):
            yield wrong(
                handler,
                f"handles {_describe(node)} but is not marked "
                'isForCompensation="true": mark it, or it is not a compensation handler',
            )

    for node in scope.nodes:
        kind = _kind(node)
        if _is_true(node, "isForCompensation") and kind in ACTIVITIES:
            if scope.ins(node) or scope.outs(node):
                yield wrong(
                    node,
                    "is a compensation handler with sequence flows: a handler runs only when "
                    "its activity is compensated; remove the flows",
                )
            if kind in ("transaction", "adHocSubProcess"):
                yield refuse(
                    node,
                    "is a compensation handler that is a transaction or an ad-hoc "
                    "sub-process, which bankflow does not run yet: use a task, an embedded "
                    "sub-process or a call activity",
                )
            elif _loops(node):
                yield refuse(
                    node,
                    "is a loop or multi-instance compensation handler, which bankflow does "
                    "not run yet: use a single task",
                )
        if kind not in EVENTS or not _has_definition(node, _COMPENSATE):
            continue
        definition = next(_children(node, _COMPENSATE))
        parent = scope.element.getparent()
        if kind == "startEvent":
            if (
                not _is_event_subprocess(scope.element)
                or parent is None
                or (_kind(parent) != "subProcess" or _is_event_subprocess(parent))
            ):
                yield refuse(
                    node,
                    "starts a compensation event sub-process that is not directly in an "
                    "embedded sub-process, which bankflow does not run (it runs when that "
                    "sub-process is compensated): draw it in the sub-process to undo, or "
                    "compensation boundary events with handlers",
                )
            continue
        if kind not in ("intermediateThrowEvent", "endEvent"):
            continue
        # A throw in an event sub-process compensates the scope around it (in a
        # compensation event sub-process: the sub-process being compensated).
        around = scope.element
        if _is_event_subprocess(scope.element) and parent is not None:
            around = parent
        in_target = {_id(n): n for n in _children(around, *FLOW_NODES) if _id(n)}
        undone = {
            _attr(b, "attachedToRef")
            for b in in_target.values()
            if _kind(b) == "boundaryEvent" and _has_definition(b, _COMPENSATE)
        }
        ref = _attr(definition, "activityRef")
        if ref and ref not in undone and _kind(in_target.get(ref, root)) not in SUBPROCESSES:
            yield wrong(
                node,
                f"compensates {shorten(ref, 80)!r}, which is no activity of "
                f"{_describe(around)} with a compensation boundary event: nothing "
                "would be compensated",
            )


def compensation_problems(process: etree._Element, *, file: str) -> list[Diagnostic]:
    """The compensation rule on one process whatever its ``isExecutable`` says: the build
    checks every process it deploys with it, so no compensation bankflow cannot run is
    deployed by way of a process the lint did not look at."""
    context = _File.of(process.getroottree().getroot(), file)
    return [d for scope in _walk(process) for d in _compensation(context, scope)]


_RULES: tuple[_Rule, ...] = (
    _start_event_required,
    _end_event_required,
    _single_blank_start_event,
    _no_disconnected,
    _no_duplicate_sequence_flows,
    _flow_shape,
    _conditional_flows,
    _label_required,
    _human_task_unassigned,
    _loop_without_exit,
    _loop_counts,
    _expressions,
    _timer_values,
    _references,
    _exclusive_gateway_default,
    _unsupported,
    _link_events,
    _compensation,
    _parallel_write,
    _parameters,
)


def lint_bpmn(root: etree._Element, *, file: str) -> list[Diagnostic]:
    """Check every executable process in a parsed BPMN ``<definitions>`` element.

    Returns diagnostics ordered by line; never raises, whatever tool wrote the file.
    """
    context = _File.of(root, file)
    diagnostics = [
        diagnostic
        for scope in _scopes(root)
        for rule in _RULES
        for diagnostic in rule(context, scope)
    ]
    return sorted(diagnostics, key=lambda d: d.line or 0)
