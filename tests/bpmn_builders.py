"""Small builders for inline BPMN in tests, and a step runner that opens a fresh Engine
(nothing cached) for every step.

A diagram is written as its elements in order, e.g.::

    definitions(
        process("p", start(), script("a"), script("b"), end(), flows("start>a", "a>b", "b>end"))
    )

Script tasks built by :func:`script` append their id to the instance variable ``trace``;
service tasks built by :func:`service` call a handler of the same name that
:class:`Steps` registers, which appends the id to ``Steps.ran`` (a list kept by the test,
so it shows what ran on every Engine, whatever the instance's data semantics).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from bankflow import Engine, FixedClock

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
GROUPS = ["ops"]

HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn"
    xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"
    id="defs" targetNamespace="t">
  <bpmn:error id="rejected_error" name="Rejected" errorCode="REJECTED"/>
  <bpmn:escalation id="big_escalation" name="Too big" escalationCode="TOO_BIG"/>
  <bpmn:signal id="go_signal" name="go"/>
"""
TAIL = "</bpmn:definitions>\n"

ERROR = '<bpmn:errorEventDefinition errorRef="rejected_error"/>'
ESCALATION = '<bpmn:escalationEventDefinition escalationRef="big_escalation"/>'
TERMINATE = "<bpmn:terminateEventDefinition/>"
CANCEL = "<bpmn:cancelEventDefinition/>"
SIGNAL = '<bpmn:signalEventDefinition signalRef="go_signal"/>'


def message_definition(message_id: str, payload: str | None = None) -> str:
    """``payload``: SpiffWorkflow's ``messagePayload`` expression of a thrown message."""
    if payload is None:
        return f'<bpmn:messageEventDefinition messageRef="{message_id}"/>'
    return (
        f'<bpmn:messageEventDefinition messageRef="{message_id}"><bpmn:extensionElements>'
        f"<spiffworkflow:messagePayload>{escape(payload)}</spiffworkflow:messagePayload>"
        "</bpmn:extensionElements></bpmn:messageEventDefinition>"
    )


def timer_duration(duration: str) -> str:
    return (
        f"<bpmn:timerEventDefinition><bpmn:timeDuration>{duration}</bpmn:timeDuration>"
        "</bpmn:timerEventDefinition>"
    )


def definitions(*processes: str, extra: str = "") -> str:
    """A BPMN file: ``extra`` holds definitions-level elements (messages, …)."""
    return HEAD + extra + "".join(processes) + TAIL


def process(key: str, *parts: str) -> str:
    return f'<bpmn:process id="{key}" isExecutable="true">{"".join(parts)}</bpmn:process>'


def start(element_id: str = "start", definition: str = "", *, interrupting: bool = True) -> str:
    flag = "" if interrupting else ' isInterrupting="false"'
    return f'<bpmn:startEvent id="{element_id}"{flag}>{definition}</bpmn:startEvent>'


def end(element_id: str = "end", definition: str = "") -> str:
    return f'<bpmn:endEvent id="{element_id}">{definition}</bpmn:endEvent>'


def throw(element_id: str, definition: str = "") -> str:
    return (
        f'<bpmn:intermediateThrowEvent id="{element_id}">{definition}</bpmn:intermediateThrowEvent>'
    )


def catch(element_id: str, definition: str) -> str:
    return (
        f'<bpmn:intermediateCatchEvent id="{element_id}">{definition}</bpmn:intermediateCatchEvent>'
    )


def boundary(element_id: str, attached_to: str, definition: str, *, cancel: bool = True) -> str:
    flag = "true" if cancel else "false"
    return (
        f'<bpmn:boundaryEvent id="{element_id}" attachedToRef="{attached_to}" '
        f'cancelActivity="{flag}">{definition}</bpmn:boundaryEvent>'
    )


def script(element_id: str, code: str | None = None, *, attrs: str = "", inner: str = "") -> str:
    """A script task; by default it appends its id to ``trace``."""
    code = f"trace = trace + [{element_id!r}]" if code is None else code
    return (
        f'<bpmn:scriptTask id="{element_id}" scriptFormat="python"{attrs}>{inner}'
        f"<bpmn:script>{escape(code)}</bpmn:script></bpmn:scriptTask>"
    )


def user(element_id: str, *, attrs: str = "", inner: str = "", tag: str = "userTask") -> str:
    return (
        f'<bpmn:{tag} id="{element_id}" camunda:candidateGroups="ops"{attrs}>{inner}</bpmn:{tag}>'
    )


def service(element_id: str, *, attrs: str = "") -> str:
    """A service task whose handler (registered by :class:`Steps`) records its id."""
    return (
        f'<bpmn:serviceTask id="{element_id}" '
        f'camunda:delegateExpression="${{{element_id}}}"{attrs}/>'
    )


def gateway(kind: str, element_id: str, *, default: str | None = None) -> str:
    """``kind``: exclusive, inclusive, parallel, eventBased. ``default``: a flow id."""
    attr = f' default="{default}"' if default else ""
    return f'<bpmn:{kind}Gateway id="{element_id}"{attr}/>'


def flow_id(source: str, target: str) -> str:
    return f"{source}_to_{target}"


def flows(*pairs: str) -> str:
    """Sequence flows from "source>target" pairs; "source>target?condition" is conditional."""
    found = []
    for pair in pairs:
        edge, _, condition = pair.partition("?")
        source, target = edge.split(">")
        opening = (
            f'<bpmn:sequenceFlow id="{flow_id(source, target)}" sourceRef="{source}" '
            f'targetRef="{target}"'
        )
        if condition:
            found.append(
                f"{opening}><bpmn:conditionExpression>{escape(condition)}"
                "</bpmn:conditionExpression></bpmn:sequenceFlow>"
            )
        else:
            found.append(f"{opening}/>")
    return "".join(found)


def sub_process(element_id: str, *parts: str, tag: str = "subProcess", attrs: str = "") -> str:
    return f'<bpmn:{tag} id="{element_id}"{attrs}>{"".join(parts)}</bpmn:{tag}>'


def interleavings_of(trace: Sequence[str], *branches: Sequence[str]) -> bool:
    """Whether ``trace`` is exactly the items of ``branches``, each branch in its order."""
    positions = [0] * len(branches)
    for item in trace:
        for index, branch in enumerate(branches):
            if positions[index] < len(branch) and branch[positions[index]] == item:
                positions[index] += 1
                break
        else:
            return False
    return positions == [len(b) for b in branches]


class Steps:
    """Deploys inline BPMN, then opens a fresh Engine on the same URL for every step."""

    def __init__(self, url: str, tmp_path: Path, recorders: Sequence[str] = ()) -> None:
        self.url = url
        self.tmp_path = tmp_path
        self.clock = FixedClock(T0)
        self.recorders = tuple(recorders)
        self.ran: list[str] = []
        self._migrated = False

    def deploy(self, name: str, source: str) -> None:
        path = self.tmp_path / f"{name}.bpmn"
        path.write_text(source, encoding="utf-8")
        with self.engine() as engine:
            engine.definitions.deploy(path)

    def engine(self) -> Engine:
        engine = Engine(self.url, migrate=not self._migrated, clock=self.clock, cache_size=0)
        self._migrated = True
        for name in self.recorders:
            engine.services.register(name, self._recorder(name))
        return engine

    def _recorder(self, name: str) -> Any:
        def record(data: dict[str, Any]) -> dict[str, Any]:
            self.ran.append(name)
            return {}

        return record

    def history(self, instance_id: str) -> list[tuple[str, str | None]]:
        with self.engine() as engine:
            return [(e.type, e.element_id) for e in engine.history.for_instance(instance_id)]

    def waiting(self, instance_id: str) -> list[str]:
        """The element ids of the human tasks the instance waits for, sorted."""
        with self.engine() as engine:
            return sorted(t.element_id for t in engine.instances.get(instance_id).tasks)

    def complete(
        self, instance_id: str, element_id: str, data: dict[str, Any] | None = None
    ) -> Any:
        """Complete the one waiting task of ``element_id`` on a fresh Engine."""
        with self.engine() as engine:
            tasks = [
                t for t in engine.instances.get(instance_id).tasks if t.element_id == element_id
            ]
            assert len(tasks) == 1, (element_id, tasks)
            return engine.tasks.complete(tasks[0].id, user="ann", groups=GROUPS, data=data)
