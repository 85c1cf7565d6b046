"""BPMN vocabulary shared by everything that reads a BPMN tree with lxml: namespaces and
the element kinds, matched by namespace URI, never by the prefix a tool chose."""

from __future__ import annotations

from lxml import etree

__all__ = [
    "ACTIVITIES",
    "BPMN",
    "CAMUNDA",
    "EVENTS",
    "FLOW_NODES",
    "GATEWAYS",
    "SPIFF",
    "SUBPROCESSES",
    "TASKS",
    "ZEEBE",
    "is_bpmn",
    "local_name",
    "q",
]

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
CAMUNDA = "http://camunda.org/schema/1.0/bpmn"
ZEEBE = "http://camunda.org/schema/zeebe/1.0"
SPIFF = "http://spiffworkflow.org/bpmn/schema/1.0/core"

TASKS = frozenset(
    {
        "task",
        "userTask",
        "manualTask",
        "serviceTask",
        "scriptTask",
        "businessRuleTask",
        "sendTask",
        "receiveTask",
        "callActivity",
    }
)
SUBPROCESSES = frozenset({"subProcess", "transaction", "adHocSubProcess"})
ACTIVITIES = TASKS | SUBPROCESSES
EVENTS = frozenset(
    {
        "startEvent",
        "endEvent",
        "intermediateCatchEvent",
        "intermediateThrowEvent",
        "boundaryEvent",
        "implicitThrowEvent",
    }
)
GATEWAYS = frozenset(
    {
        "exclusiveGateway",
        "inclusiveGateway",
        "parallelGateway",
        "eventBasedGateway",
        "complexGateway",
    }
)
FLOW_NODES = ACTIVITIES | EVENTS | GATEWAYS


def q(local: str, ns: str = BPMN) -> str:
    """Clark notation: ``{namespace}local``."""
    return f"{{{ns}}}{local}"


def local_name(el: etree._Element) -> str:
    tag = el.tag
    if not isinstance(tag, str):
        return ""
    return etree.QName(tag).localname if tag.startswith("{") else tag


def is_bpmn(el: etree._Element, *names: str) -> bool:
    tag = el.tag
    return isinstance(tag, str) and tag.startswith(f"{{{BPMN}}}") and local_name(el) in names
