"""Per-element metadata that SpiffWorkflow drops: who may act on a task, due dates, forms.

It reads the analyst's lxml tree, not SpiffWorkflow's specs, because the specs no longer
hold the Camunda attributes. Deploying must not fail because of metadata, so anything odd
here becomes a missing value, never an exception.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from lxml import etree

from bankflow.definitions._bpmn import BPMN, CAMUNDA, FLOW_NODES, SUBPROCESSES, local_name, q
from bankflow.definitions._compat import message_starts
from bankflow.models import ElementInfo, FormField

__all__ = ["extract_elements", "form_field"]

# Resource assignments we can read without an expression engine: `user(x)`, `group(x)`
# (Activiti/Flowable style) or a bare name, as Signavio and Trisotech write it.
_FUNCTION = re.compile(r"(user|group)\(\s*([^()]*?)\s*\)")
_PLAIN_NAME = re.compile(r"[\w.@ -]+")
_TOP_LEVEL_COMMA = re.compile(r",(?![^()]*\))")


def extract_elements(root: etree._Element, *, process_id: str) -> list[ElementInfo]:
    """One row per flow node of ``process_id``, subprocess contents included, in document
    order. An unknown process id yields an empty list."""
    for process in root.iter(q("process")):
        if _attr(process, "id") == process_id:
            lanes = _lanes(process)
            return list(_walk(process, process_id, lanes, None))
    return []


def _walk(
    container: etree._Element, process_id: str, lanes: dict[str, str], inherited: str | None
) -> Iterator[ElementInfo]:
    # Instantiating receive tasks and the message events after an instantiating
    # event-based gateway start the process too (``_compat.message_starts``).
    starters = message_starts(container) if local_name(container) == "process" else []
    for el in _children(container, *FLOW_NODES):
        element_id = _attr(el, "id")
        lane = lanes.get(element_id or "", inherited)
        if element_id is not None:
            # Only a start event directly in the process starts the process; one in an
            # event sub-process (or sub-process) starts that, inside a running instance.
            starts = local_name(container) == "process" and (
                local_name(el) == "startEvent" or any(el is s for s in starters)
            )
            yield _info(el, element_id, process_id, lane, starts_process=starts)
        if local_name(el) in SUBPROCESSES:
            yield from _walk(el, process_id, lanes, lane)


def _info(
    el: etree._Element,
    element_id: str,
    process_id: str,
    lane: str | None,
    *,
    starts_process: bool = False,
) -> ElementInfo:
    groups = _split(_attr(el, "candidateGroups", CAMUNDA))
    users = _split(_attr(el, "candidateUsers", CAMUNDA))
    if not groups and not users:
        groups, users = _resource_assignments(el)
    return ElementInfo(
        element_id=element_id,
        element_type=local_name(el),
        name=_attr(el, "name"),
        process_id=process_id,
        lane=lane,
        documentation=_documentation(el),
        candidate_groups=groups,
        candidate_users=users,
        assignee=_attr(el, "assignee", CAMUNDA),
        due_date=_attr(el, "dueDate", CAMUNDA),
        priority=_attr(el, "priority", CAMUNDA),
        form_key=_attr(el, "formKey", CAMUNDA) or _attr(el, "formRef", CAMUNDA),
        form_fields=tuple(_form_fields(el)),
        line=el.sourceline,
        trigger=_trigger(el) if starts_process else None,
    )


def _trigger(el: etree._Element) -> dict[str, str] | None:
    """What starts a process by itself: a message or a signal (by the name SpiffWorkflow
    matches on) or a timer (its expression, quotes from the compatibility rewrite
    removed)."""
    signal = el.find(q("signalEventDefinition"))
    if signal is not None:
        ref = _attr(signal, "signalRef")
        name = ref
        for candidate in el.getroottree().getroot().iter(q("signal")):
            if ref is not None and candidate.get("id") == ref:
                name = _attr(candidate, "name") or ref
        return {"kind": "signal", "name": name} if name else None
    message = el.find(q("messageEventDefinition"))
    if message is not None or local_name(el) == "receiveTask":
        ref = _attr(el if message is None else message, "messageRef")
        name = ref
        for candidate in el.getroottree().getroot().iter(q("message")):
            if ref is not None and candidate.get("id") == ref:
                name = _attr(candidate, "name") or ref
        return {"kind": "message", "name": name} if name else None
    timer = el.find(q("timerEventDefinition"))
    if timer is not None:
        for kind in ("timeCycle", "timeDate", "timeDuration"):
            found = timer.find(q(kind))
            if found is not None and (found.text or "").strip():
                value = (found.text or "").strip().strip("'\"")
                return {"kind": "timer", "type": kind, "value": value}
    return None


def _lanes(process: etree._Element) -> dict[str, str]:
    """Element id -> name of the deepest named lane listing it.

    Modellers list a node in every enclosing lane, so depth decides; an unnamed lane says
    nothing about the role and leaves the enclosing lane's name in place.
    """
    found: dict[str, tuple[int, str]] = {}

    def visit(lane_set: etree._Element, depth: int) -> None:
        for lane in _children(lane_set, "lane"):
            name = _attr(lane, "name")
            if name is not None:
                for ref in _children(lane, "flowNodeRef"):
                    node = (ref.text or "").strip()
                    if node and depth > found.get(node, (-1, ""))[0]:
                        found[node] = (depth, name)
            for child_set in _children(lane, "childLaneSet"):
                visit(child_set, depth + 1)

    for lane_set in process.iter(q("laneSet")):
        visit(lane_set, 0)
    return {node: name for node, (_, name) in found.items()}


def _resource_assignments(el: etree._Element) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Groups and users from standard ``potentialOwner``/``humanPerformer`` elements.

    A bare name means a group: that is how the tools without Camunda attributes write a
    role. Expressions that need evaluating (``${...}``, scripts) are skipped whole.
    """
    groups: list[str] = []
    users: list[str] = []
    for role in _children(el, "potentialOwner", "humanPerformer"):
        for assignment in _children(role, "resourceAssignmentExpression"):
            for expression in _children(assignment, "formalExpression"):
                parsed = _parse_assignment(_text(expression))
                if parsed is not None:
                    groups += parsed[0]
                    users += parsed[1]
    return tuple(dict.fromkeys(groups)), tuple(dict.fromkeys(users))


def _parse_assignment(text: str) -> tuple[list[str], list[str]] | None:
    groups: list[str] = []
    users: list[str] = []
    for part in _TOP_LEVEL_COMMA.split(text):
        part = part.strip()
        if function := _FUNCTION.fullmatch(part):
            names = _split(function.group(2))
            (users if function.group(1) == "user" else groups).extend(names)
        elif _PLAIN_NAME.fullmatch(part):
            groups.append(part)
        elif part:
            return None
    return groups, users


def _form_fields(el: etree._Element) -> Iterator[FormField]:
    for extensions in _children(el, "extensionElements"):
        for form in _children(extensions, "formData", ns=CAMUNDA):
            for field in _children(form, "formField", ns=CAMUNDA):
                if (found := form_field(field)) is not None:
                    yield found


def form_field(field: etree._Element) -> FormField | None:
    """One ``camunda:formField`` element as the engine keeps it (None without an id); its
    constraints stay text here and are parsed by ``_form_rules``."""
    field_id = _attr(field, "id")
    if field_id is None:
        return None
    constraints = {
        name: _attr(c, "config")
        for v in _children(field, "validation", ns=CAMUNDA)
        for c in _children(v, "constraint", ns=CAMUNDA)
        if (name := _attr(c, "name")) is not None
    }
    return FormField(
        id=field_id,
        label=_attr(field, "label"),
        type=_attr(field, "type"),
        default_value=_attr(field, "defaultValue"),
        required=_flag(constraints, "required"),
        readonly=_flag(constraints, "readonly"),
        constraints=constraints,
        enum_values={
            value_id: _attr(v, "name")
            for v in _children(field, "value", ns=CAMUNDA)
            if (value_id := _attr(v, "id")) is not None
        },
    )


def _flag(constraints: dict[str, str | None], name: str) -> bool:
    """Camunda treats ``<constraint name="required"/>`` as on; only ``config="false"`` is
    off."""
    if name not in constraints:
        return False
    config = constraints[name]
    return config is None or config.lower() != "false"


def _documentation(el: etree._Element) -> str | None:
    texts = (_text(d).strip() for d in _children(el, "documentation"))
    return "\n".join(t for t in texts if t) or None


def _children(el: etree._Element, *names: str, ns: str = BPMN) -> Iterator[etree._Element]:
    """Direct children by namespace URI, whatever prefix the exporting tool chose."""
    tags = {q(name, ns) for name in names}
    return (child for child in el if isinstance(child.tag, str) and child.tag in tags)


def _attr(el: etree._Element, name: str, ns: str | None = None) -> str | None:
    value = el.get(q(name, ns) if ns else name)
    return (value.strip() or None) if value is not None else None


def _text(el: etree._Element) -> str:
    return "".join(t for t in el.itertext() if isinstance(t, str))


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (value or "").split(",") if part.strip())
