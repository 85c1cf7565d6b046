"""Process variables as in Camunda (issue 10, item 3), on both backends: one set of
variables per instance that every branch reads and changes, local variables only where the
diagram makes them (a multi-instance activity's element variable and ``loopCounter``,
``camunda:inputOutput`` input parameters), a called process as a scope of its own.

Every step opens a fresh Engine (nothing cached), so what a test sees went through the
stored state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bankflow import Engine, InstanceStatus

HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="t">
  <bpmn:escalation id="note_escalation" name="Note" escalationCode="NOTE"/>
"""
TAIL = "</bpmn:definitions>\n"


def script(element_id: str, text: str, extra: str = "") -> str:
    return (
        f'<bpmn:scriptTask id="{element_id}" scriptFormat="python">{extra}'
        f"<bpmn:script>{text}</bpmn:script></bpmn:scriptTask>"
    )


def user(element_id: str, extra: str = "") -> str:
    return (
        f'<bpmn:userTask id="{element_id}" camunda:candidateUsers="clerk">{extra}</bpmn:userTask>'
    )


def flows(*pairs: str) -> str:
    found = []
    for pair in pairs:
        source, target = pair.split(">")
        found.append(
            f'<bpmn:sequenceFlow id="{source}_to_{target}" sourceRef="{source}" '
            f'targetRef="{target}"/>'
        )
    return "".join(found)


def process(process_id: str, body: str, extra: str = "") -> str:
    return (
        f'{HEAD}<bpmn:process id="{process_id}" isExecutable="true">{body}</bpmn:process>'
        f"{extra}{TAIL}"
    )


class Steps:
    def __init__(self, url: str, tmp_path: Path) -> None:
        self.url = url
        self.tmp_path = tmp_path

    def deploy(self, key: str, source: str) -> None:
        path = self.tmp_path / f"{key}.bpmn"
        path.write_text(source)
        with self.engine() as engine:
            engine.definitions.deploy(path)

    def engine(self) -> Engine:
        return Engine(self.url, migrate=True, cache_size=0)

    def start(self, key: str, data: dict[str, Any] | None = None) -> str:
        with self.engine() as engine:
            return engine.instances.start(key, data=data or {}).id

    def complete(self, instance_id: str, element_id: str, data: dict[str, Any]) -> None:
        with self.engine() as engine:
            (task,) = [
                t for t in engine.instances.get(instance_id).tasks if t.element_id == element_id
            ]
            engine.tasks.complete(task.id, user="clerk", data=data)

    def data(self, instance_id: str) -> dict[str, Any]:
        with self.engine() as engine:
            instance = engine.instances.get(instance_id)
            assert instance.failure is None, instance.failure
            return dict(instance.data)

    def waiting(self, instance_id: str) -> list[str]:
        with self.engine() as engine:
            return sorted(t.element_id for t in engine.instances.get(instance_id).tasks)

    def status(self, instance_id: str) -> InstanceStatus:
        with self.engine() as engine:
            return engine.instances.get(instance_id).status


@pytest.fixture
def steps(db_url: str, tmp_path: Path) -> Steps:
    return Steps(db_url, tmp_path)


# -- parallel branches share the process's variables -------------------------------------

PARALLEL_APPEND = process(
    "parallel_append",
    '<bpmn:startEvent id="start"/><bpmn:parallelGateway id="split"/>'
    + user("review_a")
    + user("review_b")
    + script("note_a", "log = log + ['a:' + str(score_a)]")
    + script("note_b", "log = log + ['b:' + str(score_a)]")
    + '<bpmn:parallelGateway id="join"/>'
    + script("after", "count = len(log)")
    + user("final")
    + '<bpmn:endEvent id="end"/>'
    + flows(
        "start>split",
        "split>review_a",
        "split>review_b",
        "review_a>note_a",
        "review_b>note_b",
        "note_a>join",
        "note_b>join",
        "join>after",
        "after>final",
        "final>end",
    ),
)


def test_parallel_branches_append_to_one_list(steps: Steps) -> None:
    steps.deploy("parallel_append", PARALLEL_APPEND)
    instance = steps.start("parallel_append", {"log": [], "score_a": 0})
    assert steps.waiting(instance) == ["review_a", "review_b"]
    steps.complete(instance, "review_a", {"score_a": 7})
    assert steps.data(instance)["log"] == ["a:7"]
    # Branch b sees what branch a wrote while b waited.
    steps.complete(instance, "review_b", {"score_b": 3})
    data = steps.data(instance)
    assert data["log"] == ["a:7", "b:7"]
    assert (data["count"], data["score_a"], data["score_b"]) == (2, 7, 3)
    assert steps.waiting(instance) == ["final"]


def test_the_order_of_the_branches_decides_the_order_of_the_items(steps: Steps) -> None:
    steps.deploy("parallel_append", PARALLEL_APPEND)
    instance = steps.start("parallel_append", {"log": [], "score_a": 0})
    steps.complete(instance, "review_b", {"score_b": 3})
    steps.complete(instance, "review_a", {"score_a": 9})
    assert steps.data(instance)["log"] == ["b:0", "a:9"]


# -- an event sub-process and an embedded sub-process write to the process ----------------

EVENT_SUB_PROCESS = process(
    "esp_writes",
    '<bpmn:startEvent id="start"/>'
    + '<bpmn:subProcess id="work"><bpmn:startEvent id="work_start"/>'
    + script("inner", "steps = steps + ['inner']")
    + '<bpmn:intermediateThrowEvent id="raise_note">'
    '<bpmn:escalationEventDefinition escalationRef="note_escalation"/>'
    "</bpmn:intermediateThrowEvent>"
    + user("wait_in_work")
    + '<bpmn:endEvent id="work_end"/>'
    + flows(
        "work_start>inner", "inner>raise_note", "raise_note>wait_in_work", "wait_in_work>work_end"
    )
    + '<bpmn:subProcess id="on_note" triggeredByEvent="true">'
    '<bpmn:startEvent id="note_start" isInterrupting="false">'
    '<bpmn:escalationEventDefinition escalationRef="note_escalation"/></bpmn:startEvent>'
    + script("handle_note", "steps = steps + ['handled']; handled = True")
    + '<bpmn:endEvent id="note_end"/>'
    + flows("note_start>handle_note", "handle_note>note_end")
    + "</bpmn:subProcess></bpmn:subProcess>"
    + script("after", "steps = steps + ['after:' + str(handled)]")
    + '<bpmn:endEvent id="end"/>'
    + flows("start>work", "work>after", "after>end"),
)


def test_what_an_event_sub_process_writes_reaches_the_process(steps: Steps) -> None:
    steps.deploy("esp_writes", EVENT_SUB_PROCESS)
    instance = steps.start("esp_writes", {"steps": []})
    assert steps.waiting(instance) == ["wait_in_work"]
    assert steps.data(instance)["steps"] == ["inner", "handled"]
    steps.complete(instance, "wait_in_work", {"checked": "yes"})
    assert steps.status(instance) == InstanceStatus.COMPLETED
    data = steps.data(instance)
    assert data["steps"] == ["inner", "handled", "after:True"]
    assert (data["handled"], data["checked"]) == (True, "yes")


# -- multi-instance: the element variable and loopCounter are the instance's own ----------


def test_multi_instance_items_are_local_and_writes_reach_the_process(steps: Steps) -> None:
    source = process(
        "mi_locals",
        '<bpmn:startEvent id="start"/>'
        '<bpmn:subProcess id="check">'
        '<bpmn:multiInstanceLoopCharacteristics isSequential="true" '
        'camunda:collection="${documents}" camunda:elementVariable="document"/>'
        '<bpmn:startEvent id="check_start"/>'
        + user("look")
        + script("note", "checked = checked + [document + '#' + str(loopCounter) + ':' + verdict]")
        + '<bpmn:endEvent id="check_end"/>'
        + flows("check_start>look", "look>note", "note>check_end")
        + "</bpmn:subProcess>"
        + script("sum_up", "total = len(checked)")
        + user("final")
        + '<bpmn:endEvent id="end"/>'
        + flows("start>check", "check>sum_up", "sum_up>final", "final>end"),
    )
    steps.deploy("mi_locals", source)
    instance = steps.start("mi_locals", {"documents": ["passport", "payslip"], "checked": []})
    steps.complete(instance, "look", {"verdict": "ok"})
    steps.complete(instance, "look", {"verdict": "unreadable"})
    data = steps.data(instance)
    assert data["checked"] == ["passport#0:ok", "payslip#1:unreadable"]
    assert data["total"] == 2
    assert "document" not in data
    assert "loopCounter" not in data
    assert data["verdict"] == "unreadable"  # a process variable: the last write


def test_a_process_variable_named_like_the_element_variable_is_shadowed(steps: Steps) -> None:
    source = process(
        "mi_shadow",
        '<bpmn:startEvent id="start"/>'
        + script(
            "each",
            "seen = seen + [document]",
            '<bpmn:multiInstanceLoopCharacteristics camunda:collection="${documents}" '
            'camunda:elementVariable="document"/>',
        )
        + user("final")
        + '<bpmn:endEvent id="end"/>'
        + flows("start>each", "each>final", "final>end"),
    )
    steps.deploy("mi_shadow", source)
    instance = steps.start(
        "mi_shadow", {"documents": ["a", "b", "c"], "document": "mine", "seen": []}
    )
    data = steps.data(instance)
    assert data["seen"] == ["a", "b", "c"]
    assert data["document"] == "mine"


# -- camunda:inputOutput: input parameters are local, output parameters go out -------------

INPUT_OUTPUT = process(
    "io_scopes",
    '<bpmn:startEvent id="start"/>'
    + script(
        "assess",
        "limit = limit * 2; risk = amount / limit; trace = trace + ['assess']",
        "<bpmn:extensionElements><camunda:inputOutput>"
        '<camunda:inputParameter name="limit">${base_limit + 100}</camunda:inputParameter>'
        '<camunda:inputParameter name="channel">branch</camunda:inputParameter>'
        '<camunda:inputParameter name="tags"><camunda:list>'
        "<camunda:value>kyc</camunda:value><camunda:value>${segment}</camunda:value>"
        "</camunda:list></camunda:inputParameter>"
        '<camunda:outputParameter name="assessed_limit">${limit}</camunda:outputParameter>'
        '<camunda:outputParameter name="summary">${channel} ${tags[1]}</camunda:outputParameter>'
        "</camunda:inputOutput></bpmn:extensionElements>",
    )
    + user("final")
    + '<bpmn:endEvent id="end"/>'
    + flows("start>assess", "assess>final", "final>end"),
)


def test_input_parameters_stay_local_and_outputs_reach_the_process(steps: Steps) -> None:
    steps.deploy("io_scopes", INPUT_OUTPUT)
    instance = steps.start(
        "io_scopes", {"base_limit": 900, "amount": 500, "segment": "retail", "trace": []}
    )
    data = steps.data(instance)
    assert data["assessed_limit"] == 2000  # the local limit, doubled by the script
    assert data["risk"] == 0.25  # written by the script: a process variable
    assert data["summary"] == "branch retail"
    assert data["trace"] == ["assess"]
    for local in ("limit", "channel", "tags"):
        assert local not in data
    with steps.engine() as engine:
        (task,) = engine.instances.get(instance).tasks
        assert "limit" not in engine.tasks.data(task.id)


def test_an_input_parameter_that_fails_fails_the_step_naming_the_element(steps: Steps) -> None:
    steps.deploy("io_scopes", INPUT_OUTPUT)
    with steps.engine() as engine:
        started = engine.instances.start("io_scopes", data={"amount": 1, "trace": []})
    assert started.status == InstanceStatus.FAILED
    assert started.failure is not None
    assert started.failure.element_id == "assess"
    assert "base_limit" in started.failure.message


# -- a called process is a scope of its own -----------------------------------------------

CALLER = process(
    "caller",
    '<bpmn:startEvent id="start"/>'
    '<bpmn:callActivity id="call" calledElement="callee"/>'
    + script("after", "trace = trace + ['after:' + str(result)]")
    + user("final")
    + '<bpmn:endEvent id="end"/>'
    + flows("start>call", "call>after", "after>final", "final>end"),
    extra='<bpmn:process id="callee" isExecutable="true"><bpmn:startEvent id="c_start"/>'
    + script("child", "trace = trace + ['child:' + str(amount)]; result = amount * 2")
    + user("child_wait")
    + '<bpmn:endEvent id="c_end"/>'
    + flows("c_start>child", "child>child_wait", "child_wait>c_end")
    + "</bpmn:process>",
)


def test_a_called_process_gets_the_callers_variables_and_returns_its_own(steps: Steps) -> None:
    steps.deploy("caller", CALLER)
    instance = steps.start("caller", {"amount": 21, "trace": []})
    assert steps.waiting(instance) == ["child_wait"]
    # The caller's variables are not the child's until the child returns.
    assert "result" not in steps.data(instance)
    steps.complete(instance, "child_wait", {"child_note": "done"})
    data = steps.data(instance)
    assert data["trace"] == ["child:21", "after:42"]
    assert (data["result"], data["child_note"]) == (42, "done")


# -- a handler and an external worker see the input parameters; outputs map their result --

IO_SERVICE = """
    <bpmn:extensionElements><camunda:inputOutput>
      <camunda:inputParameter name="account">${customer_id + '-01'}</camunda:inputParameter>
      <camunda:outputParameter name="balance_seen">${balance}</camunda:outputParameter>
    </camunda:inputOutput></bpmn:extensionElements>"""


def io_service_process(key: str, task: str) -> str:
    return process(
        key,
        '<bpmn:startEvent id="start"/>'
        + task.replace("{io}", IO_SERVICE)
        + user("final")
        + '<bpmn:endEvent id="end"/>'
        + flows("start>lookup", "lookup>final", "final>end"),
    )


def test_an_inline_handler_gets_the_input_parameters_and_outputs_map_its_result(
    steps: Steps,
) -> None:
    source = io_service_process(
        "io_handler",
        '<bpmn:serviceTask id="lookup" camunda:delegateExpression="${balances}">{io}'
        "</bpmn:serviceTask>",
    )
    seen: list[dict[str, Any]] = []

    def balances(data: dict[str, Any]) -> dict[str, Any]:
        seen.append(dict(data))
        return {"balance": 120}

    steps.deploy("io_handler", source)
    with steps.engine() as engine:
        engine.services.register("balances", balances)
        instance = engine.instances.start("io_handler", data={"customer_id": "C7"})
    assert [(s["account"], s["customer_id"]) for s in seen] == [("C7-01", "C7")]
    data = steps.data(instance.id)
    assert (data["balance_seen"], data["balance"]) == (120, 120)
    assert "account" not in data


def test_an_external_worker_gets_the_input_parameters(steps: Steps) -> None:
    source = io_service_process(
        "io_external",
        '<bpmn:serviceTask id="lookup" camunda:type="external" camunda:topic="balances">{io}'
        "</bpmn:serviceTask>",
    )
    steps.deploy("io_external", source)
    instance = steps.start("io_external", {"customer_id": "C9"})
    with steps.engine() as engine:
        (locked,) = engine.external.fetch_and_lock(["balances"], worker_id="w1")
        assert locked.variables["account"] == "C9-01"
    with steps.engine() as engine:
        engine.external.complete(locked.id, worker_id="w1", variables={"balance": 75})
    data = steps.data(instance)
    assert (data["balance_seen"], data["balance"]) == (75, 75)
    assert "account" not in data
    assert steps.waiting(instance) == ["final"]


# -- an instance stored before process variables existed ----------------------------------


def test_an_instance_stored_before_process_variables_carries_on_with_its_data(
    steps: Steps, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bankflow.runtime import _spiff

    steps.deploy("parallel_append", PARALLEL_APPEND)
    # Stored the way bankflow did before: each task with its own copy of the data, the
    # workflow's data empty and unmarked.
    monkeypatch.setattr(_spiff._Workflow, "_bankflow_variables", False)
    instance = steps.start("parallel_append", {"log": ["old"], "score_a": 0})
    with steps.engine() as engine:
        assert engine.instances.get(instance).data == {"log": ["old"], "score_a": 0}
    monkeypatch.undo()
    steps.complete(instance, "review_a", {"score_a": 4})
    steps.complete(instance, "review_b", {"score_b": 1})
    data = steps.data(instance)
    assert data["log"] == ["old", "a:4", "b:4"]
    assert (data["count"], data["score_b"]) == (3, 1)
