"""``bankflow show`` and ``bankflow task show`` as a subprocess, on both databases: an
instance waiting at a user task, the timer on its boundary and a message catch shows all
three waiting points (the timer's due time, the message's name); a task shows its
candidates, due date, priority, form fields and data; an unknown id is refused (exit 1),
as one JSON error under ``--json``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

BANKFLOW = Path(sys.executable).parent / "bankflow"

PROCESS = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="defs" targetNamespace="t">
  <bpmn:message id="msg_docs" name="documents_received"/>
  <bpmn:process id="onboarding" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:parallelGateway id="fork"/>
    <bpmn:userTask id="review" name="Review application" camunda:candidateGroups="kyc"
        camunda:candidateUsers="anna" camunda:dueDate="P2D" camunda:priority="70">
      <bpmn:extensionElements>
        <camunda:formData>
          <camunda:formField id="approved" label="Approved?" type="boolean"/>
        </camunda:formData>
      </bpmn:extensionElements>
    </bpmn:userTask>
    <bpmn:boundaryEvent id="reminder" attachedToRef="review" cancelActivity="false">
      <bpmn:timerEventDefinition><bpmn:timeDuration>PT1H</bpmn:timeDuration>
      </bpmn:timerEventDefinition>
    </bpmn:boundaryEvent>
    <bpmn:intermediateCatchEvent id="wait_docs">
      <bpmn:messageEventDefinition messageRef="msg_docs"/>
    </bpmn:intermediateCatchEvent>
    <bpmn:endEvent id="reminded"/>
    <bpmn:endEvent id="reviewed"/>
    <bpmn:endEvent id="docs_in"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="fork"/>
    <bpmn:sequenceFlow id="f2" sourceRef="fork" targetRef="review"/>
    <bpmn:sequenceFlow id="f3" sourceRef="fork" targetRef="wait_docs"/>
    <bpmn:sequenceFlow id="f4" sourceRef="review" targetRef="reviewed"/>
    <bpmn:sequenceFlow id="f5" sourceRef="reminder" targetRef="reminded"/>
    <bpmn:sequenceFlow id="f6" sourceRef="wait_docs" targetRef="docs_in"/>
  </bpmn:process>
</bpmn:definitions>
"""


@pytest.fixture
def cli(db_url: str, tmp_path: Path) -> Any:
    if not BANKFLOW.exists():
        pytest.skip("the bankflow console script is not installed next to this Python")
    env = {**os.environ, "COLUMNS": "250"}

    def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(BANKFLOW), "--db", db_url, *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env=env,
        )
        assert "Traceback" not in result.stdout + result.stderr, result.stderr
        if ok:
            assert result.returncode == 0, result.stderr
        return result

    run("db", "upgrade")
    path = tmp_path / "onboarding.bpmn"
    path.write_text(PROCESS, encoding="utf-8")
    run("deploy", "-q", str(path))
    return run


def test_show_lists_every_waiting_point_and_task_show(cli: Any) -> None:
    before = datetime.now(UTC)
    started = cli(
        "start", "onboarding", "--business-key", "CUST-7", "--data", '{"amount": 5000}', "--json"
    )
    instance_id = json.loads(started.stdout)["id"]

    shown = json.loads(cli("show", instance_id, "--json").stdout)
    waits = {w["kind"]: w for w in shown["waits"]}
    assert sorted(waits) == ["message", "timer", "user_task"]
    assert (waits["user_task"]["element_id"], waits["user_task"]["name"]) == (
        "review",
        "Review application",
    )
    timer_due = datetime.fromisoformat(waits["timer"]["due_at"])
    assert waits["timer"]["element_id"] == "reminder"
    assert before + timedelta(minutes=59) < timer_due < datetime.now(UTC) + timedelta(hours=1)
    assert (waits["message"]["element_id"], waits["message"]["name"]) == (
        "wait_docs",
        "documents_received",
    )

    text = cli("show", instance_id[:8]).stdout  # a unique prefix is taken
    assert "Review application" in text
    assert "timer" in text
    assert "reminder" in text
    assert timer_due.isoformat()[:16] in text
    assert "message" in text
    assert "documents_received" in text

    task_id = waits["user_task"]["task_id"]
    body = json.loads(cli("task", "show", task_id, "--json").stdout)
    task = body["task"]
    assert (task["element_id"], task["name"], task["instance_id"]) == (
        "review",
        "Review application",
        instance_id,
    )
    assert (task["process_key"], task["business_key"]) == ("onboarding", "CUST-7")
    assert (task["candidate_groups"], task["candidate_users"]) == (["kyc"], ["anna"])
    assert (task["assignee"], task["priority"]) == (None, 70)
    assert datetime.fromisoformat(task["due_at"]) > before + timedelta(days=1, hours=23)
    assert [(f["id"], f["label"], f["type"]) for f in body["form"]] == [
        ("approved", "Approved?", "boolean")
    ]
    assert body["data"] == {"amount": 5000}

    text = cli("task", "show", task_id[:8]).stdout
    for expected in (
        "step: Review application (review)",
        f"instance: {instance_id}",
        "business key: CUST-7",
        "candidate groups: kyc",
        "candidate users: anna",
        "priority: 70",
        "Approved?",
        '"amount": 5000',
    ):
        assert expected in text, text


def test_unknown_ids_are_refused(cli: Any) -> None:
    missing = "00000000-0000-0000-0000-000000000000"
    refused = cli("task", "show", missing, "--json", ok=False)
    assert refused.returncode == 1
    assert refused.stdout == ""
    error = json.loads(refused.stderr)["error"]
    assert error["type"] == "NotFound"
    assert error["kind"] == "task"
    text = cli("task", "show", missing, ok=False)
    assert text.returncode == 1
    assert text.stderr.startswith("error: ")
