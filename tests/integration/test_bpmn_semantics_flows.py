"""BPMN flow semantics SpiffWorkflow needs bankflow's help with, on both databases: an
activity's default flow, multi-instance counts, ad-hoc sub-processes (refused).

Every step runs on a fresh Engine (nothing from the in-process cache), and what ran is read
from the instance: the ``trace`` its script tasks build, the human tasks it waits for.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bankflow import Engine, InstanceStatus

HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="t">"""
TAIL = "</bpmn:definitions>\n"
OPS = ["ops"]


def _script(element_id: str, script: str) -> str:
    return (
        f'<bpmn:scriptTask id="{element_id}" name="{element_id}" scriptFormat="python">'
        f"<bpmn:script>{script}</bpmn:script></bpmn:scriptTask>"
    )


def _user(element_id: str) -> str:
    return f'<bpmn:userTask id="{element_id}" name="{element_id}" camunda:candidateGroups="ops"/>'


def _flow(flow_id: str, source: str, target: str, condition: str | None = None) -> str:
    if condition is None:
        return f'<bpmn:sequenceFlow id="{flow_id}" sourceRef="{source}" targetRef="{target}"/>'
    return (
        f'<bpmn:sequenceFlow id="{flow_id}" sourceRef="{source}" targetRef="{target}">'
        f"<bpmn:conditionExpression>{condition}</bpmn:conditionExpression></bpmn:sequenceFlow>"
    )


def _process(key: str, body: str) -> str:
    process = f'<bpmn:process id="{key}" name="{key}" isExecutable="true">'
    return f"{HEAD}{process}{body}</bpmn:process>{TAIL}"


def _deploy(url: str, folder: Path, key: str, body: str) -> None:
    path = folder / f"{key}.bpmn"
    path.write_text(_process(key, body), encoding="utf-8")
    with Engine(url, migrate=True) as engine:
        engine.definitions.deploy(path)


def fresh(url: str) -> Engine:
    return Engine(url, migrate=True, cache_size=0)


def _finish_all(url: str, instance_id: str) -> list[str]:
    """Complete the waiting human tasks one by one, each on a fresh Engine; returns them."""
    done = []
    while True:
        with fresh(url) as engine:
            instance = engine.instances.get(instance_id)
            if not instance.tasks:
                assert instance.status == InstanceStatus.COMPLETED, instance
                return done
            task = instance.tasks[0]
            engine.tasks.complete(task.id, user="anna", groups=OPS)
            done.append(task.element_id)


# -- 1. an activity's default flow ---------------------------------------------------------

# check: a script task with a conditional flow (big), an unconditional one (always) and its
# default flow (fallback), each to a human task.
DEFAULT_FLOW = "".join(
    (
        '<bpmn:startEvent id="start" name="start"/>',
        _script("check", "trace = ['check']").replace(
            'name="check"', 'name="check" default="to_fallback"'
        ),
        _user("big"),
        _user("always"),
        _user("fallback"),
        '<bpmn:endEvent id="end_big" name="end"/><bpmn:endEvent id="end_always" name="end"/>',
        '<bpmn:endEvent id="end_fallback" name="end"/>',
        _flow("f0", "start", "check"),
        _flow("to_big", "check", "big", "amount &gt; 1000"),
        _flow("to_always", "check", "always"),
        _flow("to_fallback", "check", "fallback"),
        _flow("f1", "big", "end_big"),
        _flow("f2", "always", "end_always"),
        _flow("f3", "fallback", "end_fallback"),
    )
)


@pytest.mark.parametrize(
    ("amount", "waiting"),
    [(5000, ["always", "big"]), (10, ["always", "fallback"])],
    ids=["condition-true", "condition-false"],
)
def test_an_activitys_default_flow_runs_only_when_no_condition_holds(
    db_url: str, tmp_path: Path, amount: int, waiting: list[str]
) -> None:
    """BPMN: every unconditional flow runs; the default only when no conditional flow is
    true (an unconditional flow is not a condition that holds)."""
    _deploy(db_url, tmp_path, "fork", DEFAULT_FLOW)
    with fresh(db_url) as engine:
        started = engine.instances.start("fork", data={"amount": amount})
    assert started.status == InstanceStatus.RUNNING
    assert started.data["trace"] == ["check"]
    assert sorted(t.element_id for t in started.tasks) == waiting
    assert sorted(_finish_all(db_url, started.id)) == waiting


def test_an_activitys_default_flow_with_conditional_flows_only(db_url: str, tmp_path: Path) -> None:
    body = (
        DEFAULT_FLOW.replace(_flow("to_always", "check", "always"), "")
        .replace(_user("always"), "")
        .replace(_flow("f2", "always", "end_always"), "")
        .replace('<bpmn:endEvent id="end_always" name="end"/>', "")
    )
    _deploy(db_url, tmp_path, "fork", body)
    for amount, waiting in ((5000, ["big"]), (10, ["fallback"])):
        with fresh(db_url) as engine:
            started = engine.instances.start("fork", data={"amount": amount})
        assert [t.element_id for t in started.tasks] == waiting
        assert _finish_all(db_url, started.id) == waiting
