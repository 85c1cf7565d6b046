"""What a BPMN document needs from other definitions: decisions and called processes."""

from __future__ import annotations

from lxml import etree

from bankflow.definitions._bpmn import CAMUNDA, SPIFF, q

__all__ = ["called_processes", "decision_refs"]


def decision_refs(root: etree._Element) -> set[str]:
    """Decision ids named by business rule tasks, in either dialect."""
    refs = set()
    for task in root.iter(q("businessRuleTask")):
        ref = task.get(q("decisionRef", CAMUNDA))
        called = task.find(f"{q('extensionElements')}/{{{SPIFF}}}calledDecisionId")
        if called is not None and called.text:
            ref = called.text.strip()
        if ref:
            refs.add(ref)
    return refs


def called_processes(root: etree._Element) -> set[str]:
    return {
        called.strip()
        for call in root.iter(q("callActivity"))
        if (called := call.get("calledElement")) and called.strip()
    }
