"""Rewrite what real modellers write into what SpiffWorkflow 3.2 can build.

Every rewrite here is a valid BPMN construct SpiffWorkflow rejects or misreads, never a
guess at what a broken file meant. The tree is changed in place before it reaches the
parser; the stored source stays the analyst's file, so the same rewrite runs again
whenever a definition is loaded. Rewrites that lose information return a warning.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator

from lxml import etree

from bankflow.definitions._bpmn import (
    CAMUNDA,
    FLOW_NODES,
    GATEWAYS,
    ZEEBE,
    is_bpmn,
    local_name,
    q,
)
from bankflow.language._juel import juel_to_python
from bankflow.models import Diagnostic, Severity

_SCOPES = {"process", "subProcess", "transaction"}
# ISO-8601 as Camunda writes timers unquoted: durations, repeating intervals, date-times.
_ISO_TIMER = re.compile(
    r"^(R\d*/[^\s]+|-?P(?=\d|T\d)[\dYMWD.,]*(T[\dHMS.,]*)?|\d{4}-\d{2}-\d{2}(T[\d:.,]+(Z|[+-][\d:]+)?)?)$"
)
_IDENTIFIER = re.compile(r"^[A-Za-z_]\w*$")


class _Rewriter:
    def __init__(self, root: etree._Element, file: str) -> None:
        self.root = root
        self.file = file
        self.ids = {el.get("id") for el in root.iter() if el.get("id")}
        self.diagnostics: list[Diagnostic] = []

    def warn(self, el: etree._Element, rule: str, message: str) -> None:
        self.diagnostics.append(
            Diagnostic(
                file=self.file,
                line=el.sourceline,
                element_id=el.get("id"),
                rule=rule,
                message=message,
                severity=Severity.WARNING,
            )
        )

    def new_id(self, base: str) -> str:
        candidate, n = base, 1
        while candidate in self.ids:
            n += 1
            candidate = f"{base}_{n}"
        self.ids.add(candidate)
        return candidate

    # -- scopes -----------------------------------------------------------------------

    def scopes(self) -> Iterator[etree._Element]:
        for process in self.root.iter(q("process")):
            if process.get("isExecutable", "true").strip() != "true":
                continue
            yield process
            for el in process.iter():
                if el is not process and is_bpmn(el, *_SCOPES):
                    yield el

    @staticmethod
    def nodes(scope: etree._Element) -> list[etree._Element]:
        return [c for c in scope if is_bpmn(c, *FLOW_NODES)]

    @staticmethod
    def flows(scope: etree._Element) -> list[etree._Element]:
        return [c for c in scope if is_bpmn(c, "sequenceFlow")]

    def add_flow(self, scope: etree._Element, source: str, target: str) -> etree._Element:
        flow = etree.SubElement(scope, q("sequenceFlow"))
        flow.set("id", self.new_id(f"{source}_to_{target}"))
        flow.set("sourceRef", source)
        flow.set("targetRef", target)
        return flow

    # -- rewrites -----------------------------------------------------------------------

    def empty_conditions(self) -> None:
        """An empty ``conditionExpression`` (Bonita, bpmn.io) means no condition."""
        for condition in list(self.root.iter(q("conditionExpression"))):
            parent = condition.getparent()
            if parent is not None and not (condition.text or "").strip():
                parent.remove(condition)

    def empty_scope(self, scope: etree._Element) -> bool:
        """A process with no flow nodes has nothing to run; an empty (collapsed)
        sub-process completes at once, as BPMN's implicit start and end imply."""
        if self.nodes(scope) or scope.get("triggeredByEvent") == "true":
            return False
        if local_name(scope) == "process":
            scope.set("isExecutable", "false")
            self.warn(scope, "empty-process", "the process has no flow elements: not deployed")
            return True
        start = etree.SubElement(scope, q("startEvent"))
        start.set("id", self.new_id(f"{scope.get('id', 'scope')}_implicitStart"))
        end = etree.SubElement(scope, q("endEvent"))
        end.set("id", self.new_id(f"{scope.get('id', 'scope')}_implicitEnd"))
        self.add_flow(scope, start.get("id", ""), end.get("id", ""))
        self.warn(
            scope,
            "empty-subprocess",
            f'sub-process "{scope.get("name") or scope.get("id")}" has no content: it '
            "completes as soon as it starts",
        )
        return True

    def instantiating(self, scope: etree._Element) -> None:
        """Instantiating receive tasks and event-based gateways become message start
        events (see ``instantiation_problem``); the gateway itself goes, and a timer after
        it, which can never start an instance, is left with no way in (lint warns)."""
        if not is_bpmn(scope, "process"):
            return
        starts = message_starts(scope)
        for gateway in instantiating_elements(scope):
            if local_name(gateway) != "eventBasedGateway":
                continue
            for flow in _outgoing(gateway):
                target = _by_id(scope, flow.get("targetRef"))
                if target is not None:
                    for ref in target.findall(q("incoming")):
                        target.remove(ref)
                scope.remove(flow)
            scope.remove(gateway)
        for node in starts:
            _as_message_start(node)

    def implicit_start(self, scope: etree._Element) -> None:
        """BPMN §10.5.2: with no start event, every node without an incoming flow starts."""
        if scope.get("triggeredByEvent") == "true":
            return
        nodes = self.nodes(scope)
        if not nodes or any(local_name(n) == "startEvent" for n in nodes):
            return
        targets = {f.get("targetRef") for f in self.flows(scope)}
        starts = [
            n
            for n in nodes
            if n.get("id")
            and n.get("id") not in targets
            and local_name(n) != "boundaryEvent"
            and n.get("triggeredByEvent") != "true"
            and n.get("isForCompensation") != "true"
            and n.find(q("linkEventDefinition")) is None
        ]
        if not starts:
            return
        start = etree.Element(q("startEvent"))
        start.set("id", self.new_id(f"{scope.get('id', 'scope')}_implicitStart"))
        scope.insert(0, start)
        for node in starts:
            self.add_flow(scope, start.get("id", ""), node.get("id", ""))

    def links(self, scope: etree._Element) -> None:
        """A link throw event goes on at the link catch event of the same name in its
        scope (BPMN's "off-page connector"), which SpiffWorkflow does not know: a sequence
        flow from each throw to its catch says the same, and both events become none
        events that pass through, keeping their ids (history and traces show them). A
        throw with no catch, or a name caught twice, is an error at validate
        (``link-event``) and is left alone here."""
        links = [n for n in self.nodes(scope) if n.find(q("linkEventDefinition")) is not None]
        catches: dict[str, list[etree._Element]] = {}
        for node in links:
            if local_name(node) == "intermediateCatchEvent":
                name = _link_name(node)
                catches.setdefault(name, []).append(node)
        for node in links:
            if local_name(node) != "intermediateThrowEvent":
                continue
            targets = catches.get(_link_name(node), [])
            if len(targets) != 1 or not _link_name(node):
                continue
            self.add_flow(scope, node.get("id", ""), targets[0].get("id", ""))
            _drop_link_definition(node)
        for found in catches.values():
            if len(found) == 1 and _link_name(found[0]):
                _drop_link_definition(found[0])

    def implicit_splits(self, scope: etree._Element) -> None:
        """An activity or event with several outgoing flows forks: unconditional flows all
        run (a parallel split), conditional ones run when true (an inclusive split).

        An activity's ``default`` flow runs only when none of its conditional flows is
        true, whatever its unconditional flows do: those leave through a parallel split,
        and the conditional flows with the default through an inclusive gateway carrying
        the default (an inclusive gateway's own unconditional flow would count as true and
        starve the default)."""
        by_source: dict[str, list[etree._Element]] = {}
        for flow in self.flows(scope):
            by_source.setdefault(flow.get("sourceRef", ""), []).append(flow)
        for node in self.nodes(scope):
            kind = local_name(node)
            outgoing = by_source.get(node.get("id", ""), [])
            if kind in GATEWAYS or kind == "startEvent" or len(outgoing) < 2:
                continue
            conditional = [f for f in outgoing if f.find(q("conditionExpression")) is not None]
            default = node.attrib.pop("default", None)
            default_flow = next(
                (f for f in outgoing if f.get("id") == default and f not in conditional), None
            )
            bare = [f for f in outgoing if f not in conditional and f is not default_flow]
            node_id = node.get("id", "")
            if not conditional:
                self._split(scope, node_id, "parallelGateway", outgoing)
            elif default_flow is None:
                for flow in bare:
                    _set_condition(flow, "True")
                self._split(scope, node_id, "inclusiveGateway", outgoing)
            elif not bare:
                choice = self._split(scope, node_id, "inclusiveGateway", outgoing)
                choice.set("default", default_flow.get("id", ""))
            else:
                fork = self._split(scope, node_id, "parallelGateway", bare)
                choice = self._split(
                    scope, fork.get("id", ""), "inclusiveGateway", [*conditional, default_flow]
                )
                choice.set("default", default_flow.get("id", ""))

    def _split(
        self, scope: etree._Element, source: str, kind: str, flows: list[etree._Element]
    ) -> etree._Element:
        """A ``kind`` gateway after ``source`` that ``flows`` now leave from."""
        gateway = etree.SubElement(scope, q(kind))
        gateway_id = self.new_id(f"{source}_implicitSplit")
        gateway.set("id", gateway_id)
        for flow in flows:
            flow.set("sourceRef", gateway_id)
        self.add_flow(scope, source, gateway_id)
        return gateway

    def gateway_defaults(self, scope: etree._Element) -> None:
        """A forking exclusive/inclusive gateway's flow without a condition is taken when
        nothing else is (Camunda evaluates it as true): one such flow becomes the default."""
        by_source: dict[str, list[etree._Element]] = {}
        for flow in self.flows(scope):
            by_source.setdefault(flow.get("sourceRef", ""), []).append(flow)
        for node in self.nodes(scope):
            if local_name(node) not in {"exclusiveGateway", "inclusiveGateway"}:
                continue
            outgoing = by_source.get(node.get("id", ""), [])
            if len(outgoing) < 2:
                continue
            default = node.get("default")
            bare = [
                f
                for f in outgoing
                if f.find(q("conditionExpression")) is None and f.get("id") != default
            ]
            if len(bare) == 1 and default is None:
                node.set("default", bare[0].get("id", ""))
            else:
                for flow in bare:
                    _set_condition(flow, "True")

    def quote_timers(self) -> None:
        """Camunda writes ``PT48H``; SpiffWorkflow evaluates timer text as an expression."""
        for tag in ("timeDate", "timeDuration", "timeCycle"):
            for el in self.root.iter(q(tag)):
                text = (el.text or "").strip()
                if _ISO_TIMER.match(text):
                    el.text = f'"{text}"'

    def juel_conditions(self) -> None:
        """``${amount > 10000 && !approved}`` becomes ``amount > 10000 and not approved``,
        in conditions and in every other expression Camunda models write as JUEL (timers
        such as ``${reminderDate}``, loop cardinalities); JUEL beyond the subset stays as
        written and is reported at deploy."""
        tags = (
            "conditionExpression",
            "activationCondition",
            "completionCondition",
            "condition",
            "loopCardinality",
            "timeDate",
            "timeDuration",
            "timeCycle",
        )
        for condition in self.root.iter(*(q(tag) for tag in tags)):
            python = juel_to_python(condition.text or "")
            if python is None:
                continue
            try:
                ast.parse(python, mode="eval")
            except (SyntaxError, ValueError):
                continue
            condition.text = python

    def empty_timers(self) -> None:
        """BPMN lets every timer child be absent; interchange files often leave them out.

        Camunda refuses such files. bankflow loads them, loudly: a timer start event with
        no schedule is a plain start event, and any other such timer never fires (it
        becomes a condition that is never true, so no job is ever scheduled for it).
        """
        kinds = [q(k) for k in ("timeDate", "timeDuration", "timeCycle")]
        for timer in list(self.root.iter(q("timerEventDefinition"))):
            if any((c.text or "").strip() for c in timer if c.tag in kinds):
                continue
            event = timer.getparent()
            if event is None:
                continue
            label = event.get("name") or event.get("id")
            if local_name(event) == "startEvent":
                event.remove(timer)
                self.warn(
                    event,
                    "timer-definition",
                    f'timer start event "{label}" has no timeDate, timeDuration or '
                    "timeCycle: the process starts only when called",
                )
                continue
            never = etree.Element(q("conditionalEventDefinition"))
            etree.SubElement(never, q("condition")).text = "False"
            event.replace(timer, never)
            self.warn(
                event,
                "timer-definition",
                f'timer "{label}" has no timeDate, timeDuration or timeCycle: it never fires',
            )

    def data_stores(self) -> None:
        """Data stores need a host implementation SpiffWorkflow cannot have; bankflow keeps
        them in the diagram only."""
        for store in list(self.root.iter(q("dataStore"))):
            self.warn(
                store,
                "data-store",
                f'data store "{store.get("name") or store.get("id")}" is shown in the '
                "diagram only: bankflow does not read or write it",
            )
            parent = store.getparent()
            if parent is not None:
                parent.remove(store)

    def data_associations(self) -> None:
        """Keep only associations SpiffWorkflow can resolve to a data object of the
        element's own or enclosing scope; drop the rest with a warning."""
        references = {el.get("id"): el for el in self.root.iter(q("dataObjectReference"))}
        for tag, ref_tag in (
            ("dataInputAssociation", "sourceRef"),
            ("dataOutputAssociation", "targetRef"),
        ):
            for assoc in list(self.root.iter(q(tag))):
                owner = assoc.getparent()
                refs = [r.text.strip() for r in assoc.findall(q(ref_tag)) if r.text]
                if owner is None:
                    continue
                if refs and all(self._resolves(owner, references, r) for r in refs):
                    continue
                self.warn(
                    owner,
                    "data-association",
                    f"{tag} of {local_name(owner)} {owner.get('id')!r} refers to "
                    f"{', '.join(refs) or 'nothing'}, which is not a data object here; "
                    "bankflow ignores it",
                )
                owner.remove(assoc)

    @staticmethod
    def _resolves(
        owner: etree._Element, references: dict[str | None, etree._Element], ref: str
    ) -> bool:
        reference = references.get(ref)
        if reference is None:
            return False
        object_id = reference.get("dataObjectRef")
        # SpiffWorkflow looks in the element's scope and the one above it, no further.
        scope = owner.getparent()
        for _ in range(2):
            if scope is None:
                return False
            if any(d.get("id") == object_id for d in scope.findall(q("dataObject"))):
                return True
            scope = scope.getparent()
        return False

    def multi_instance_collections(self) -> None:
        """Camunda 7 (``camunda:collection``) and Camunda 8 (``zeebe:loopCharacteristics``)
        name the collection outside the BPMN standard; SpiffWorkflow reads only
        ``loopDataInputRef``."""
        for loop in self.root.iter(q("multiInstanceLoopCharacteristics")):
            if loop.find(q("loopCardinality")) is not None:
                continue
            if loop.find(q("loopDataInputRef")) is not None:
                continue
            collection = loop.get(q("collection", CAMUNDA))
            element = loop.get(q("elementVariable", CAMUNDA))
            zeebe = loop.find(f"{q('extensionElements')}/{q('loopCharacteristics', ZEEBE)}")
            if zeebe is not None:
                collection = zeebe.get("inputCollection")
                element = zeebe.get("inputElement")
            name = _plain_name(collection)
            if name is None:
                continue
            ref = etree.SubElement(loop, q("loopDataInputRef"))
            ref.text = name
            if element and _IDENTIFIER.match(element):
                item = etree.SubElement(loop, q("inputDataItem"))
                item.set("id", self.new_id(element))
                item.set("name", element)


# -- instantiating receive tasks and event-based gateways -------------------------------------
#
# BPMN 2.0 (§10.5.6, §10.6.6): a receive task or an exclusive event-based gateway with
# ``instantiate="true"`` and no incoming flow starts its process when its message comes, as
# a message start event does. SpiffWorkflow 3.2 knows only start events for that, so each
# such element becomes a message start event with the same id before SpiffWorkflow parses
# (history and traces name the analyst's element); lint refuses what does not fit, with the
# reason ``instantiation_problem`` gives, and ``message_starts`` tells deploy which elements
# start the process (their start triggers).


def _incoming(node: etree._Element) -> list[etree._Element]:
    scope = node.getparent()
    if scope is None or not node.get("id"):
        return []
    return [f for f in scope if is_bpmn(f, "sequenceFlow") and f.get("targetRef") == node.get("id")]


def _outgoing(node: etree._Element) -> list[etree._Element]:
    scope = node.getparent()
    if scope is None or not node.get("id"):
        return []
    return [f for f in scope if is_bpmn(f, "sequenceFlow") and f.get("sourceRef") == node.get("id")]


def _by_id(scope: etree._Element, element_id: str | None) -> etree._Element | None:
    return next((n for n in scope if n.get("id") == element_id), None)


def _instantiates(node: etree._Element) -> bool:
    return (node.get("instantiate") or "").strip().lower() == "true"


def _event_definitions(node: etree._Element) -> list[str]:
    return [local_name(c) for c in node if local_name(c).endswith("EventDefinition")]


def _receive_problem(node: etree._Element) -> str | None:
    """Why receive task ``node`` cannot be the message start of its process."""
    scope = node.getparent()
    if not (node.get("messageRef") or "").strip():
        return "names no message (messageRef)"
    if any(local_name(c) in _LOOPS for c in node):
        return "is a loop or multi-instance activity"
    if scope is not None and any(
        is_bpmn(b, "boundaryEvent") and b.get("attachedToRef") == node.get("id")
        for b in scope.iter(q("boundaryEvent"))
    ):
        return "has a boundary event"
    return None


_LOOPS = {"standardLoopCharacteristics", "multiInstanceLoopCharacteristics"}


def instantiation_problem(node: etree._Element) -> str | None:
    """Why an instantiating receive task or event-based gateway cannot start its process
    as a message start event would; None when it can."""
    scope = node.getparent()
    if scope is None or not is_bpmn(scope, "process"):
        return "is not drawn directly in the process (only a process is instantiated)"
    if _incoming(node):
        return "has an incoming sequence flow"
    if local_name(node) == "receiveTask":
        return _receive_problem(node)
    if (node.get("eventGatewayType") or "Exclusive").strip() != "Exclusive":
        return 'has eventGatewayType="Parallel" (all its events in one instance)'
    messages = 0
    for flow in _outgoing(node):
        target = _by_id(scope, flow.get("targetRef"))
        if target is None:
            continue
        label = target.get("name") or target.get("id")
        if len(_incoming(target)) != 1:
            return f'leads to "{label}", which other sequence flows also reach'
        kind, definitions = local_name(target), _event_definitions(target)
        if kind == "receiveTask":
            problem = _receive_problem(target)
            if problem:
                return f'leads to receive task "{label}", which {problem}'
            messages += 1
        elif kind == "intermediateCatchEvent" and definitions == ["messageEventDefinition"]:
            messages += 1
        elif not (kind == "intermediateCatchEvent" and definitions == ["timerEventDefinition"]):
            return f'leads to "{label}": only message events and receive tasks start a process'
    if not messages:
        return "leads to no message event or receive task"
    return None


def instantiating_elements(process: etree._Element) -> list[etree._Element]:
    """The instantiating receive tasks and event-based gateways drawn directly in
    ``process`` that start it (``instantiation_problem`` has nothing against them)."""
    return [
        node
        for node in process
        if is_bpmn(node, "receiveTask", "eventBasedGateway")
        and _instantiates(node)
        and instantiation_problem(node) is None
    ]


def message_starts(process: etree._Element) -> list[etree._Element]:
    """The elements of ``process`` that start it on their message besides its start
    events: instantiating receive tasks, and the message catch events and receive tasks
    right after an instantiating event-based gateway."""
    found = []
    for node in instantiating_elements(process):
        if local_name(node) == "receiveTask":
            found.append(node)
            continue
        for flow in _outgoing(node):
            target = _by_id(process, flow.get("targetRef"))
            if target is not None and (
                local_name(target) == "receiveTask"
                or _event_definitions(target) == ["messageEventDefinition"]
            ):
                found.append(target)
    return found


def _as_message_start(node: etree._Element) -> None:
    """Replace ``node`` (a receive task or a message catch event) by a message start event
    with its id, name, documentation, extensions and outgoing flows."""
    start = etree.Element(q("startEvent"))
    for name in ("id", "name"):
        if node.get(name) is not None:
            start.set(name, node.get(name, ""))
    keep = {"documentation", "extensionElements", "outgoing"}
    if local_name(node) == "intermediateCatchEvent":
        keep |= {"dataOutput", "dataOutputAssociation", "outputSet", "messageEventDefinition"}
    for child in list(node):
        if local_name(child) in keep:
            start.append(child)
    if local_name(node) == "receiveTask":
        etree.SubElement(start, q("messageEventDefinition")).set(
            "messageRef", (node.get("messageRef") or "").strip()
        )
    parent = node.getparent()
    if parent is not None:
        parent.replace(node, start)


def _plain_name(expression: str | None) -> str | None:
    """``${items}``, ``=items`` and ``items`` all name the variable ``items``."""
    if not expression:
        return None
    text = expression.strip()
    if text.startswith("${") and text.endswith("}"):
        text = text[2:-1].strip()
    elif text.startswith("="):
        text = text[1:].strip()
    return text if _IDENTIFIER.match(text) else None


def _link_name(event: etree._Element) -> str:
    definition = event.find(q("linkEventDefinition"))
    return "" if definition is None else " ".join((definition.get("name") or "").split())


def _drop_link_definition(event: etree._Element) -> None:
    for definition in event.findall(q("linkEventDefinition")):
        event.remove(definition)


def _set_condition(flow: etree._Element, text: str) -> None:
    condition = etree.SubElement(flow, q("conditionExpression"))
    condition.text = text


def rewrite(root: etree._Element, *, file: str) -> list[Diagnostic]:
    """Apply every rewrite to ``root`` in place; return the warnings they produced."""
    rewriter = _Rewriter(root, file)
    rewriter.quote_timers()
    rewriter.empty_conditions()
    rewriter.empty_timers()
    rewriter.juel_conditions()
    rewriter.data_stores()
    rewriter.data_associations()
    rewriter.multi_instance_collections()
    for scope in list(rewriter.scopes()):
        if rewriter.empty_scope(scope):
            continue
        rewriter.instantiating(scope)
        rewriter.implicit_start(scope)
        rewriter.links(scope)
        rewriter.gateway_defaults(scope)
        rewriter.implicit_splits(scope)
    return rewriter.diagnostics
