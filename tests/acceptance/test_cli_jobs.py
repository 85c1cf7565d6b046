"""Jobs through the CLI as a subprocess: a message by business key, a service job that
fails into an incident and is retried after the fix, a deadline fired by
``bankflow worker --once --now``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BANKFLOW = Path(sys.executable).parent / "bankflow"

PROCESS = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="defs" targetNamespace="t">
  <bpmn:message id="Msg_docs" name="documents_received"/>
  <bpmn:process id="cli_jobs" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="wait_docs"/>
    <bpmn:intermediateCatchEvent id="wait_docs">
      <bpmn:messageEventDefinition messageRef="Msg_docs"/>
    </bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="f2" sourceRef="wait_docs" targetRef="score"/>
    <bpmn:serviceTask id="score" camunda:asyncBefore="true" camunda:type="external"
        camunda:topic="score">
      <bpmn:extensionElements>
        <camunda:failedJobRetryTimeCycle>R2/PT1M</camunda:failedJobRetryTimeCycle>
      </bpmn:extensionElements>
    </bpmn:serviceTask>
    <bpmn:sequenceFlow id="f3" sourceRef="score" targetRef="review"/>
    <bpmn:userTask id="review" camunda:candidateGroups="risk"/>
    <bpmn:sequenceFlow id="f4" sourceRef="review" targetRef="done"/>
    <bpmn:boundaryEvent id="deadline" attachedToRef="review">
      <bpmn:timerEventDefinition><bpmn:timeDuration>PT48H</bpmn:timeDuration>
      </bpmn:timerEventDefinition>
    </bpmn:boundaryEvent>
    <bpmn:sequenceFlow id="f5" sourceRef="deadline" targetRef="escalate"/>
    <bpmn:userTask id="escalate" camunda:candidateGroups="supervisor"/>
    <bpmn:sequenceFlow id="f6" sourceRef="escalate" targetRef="done"/>
    <bpmn:endEvent id="done"/>
  </bpmn:process>
</bpmn:definitions>
"""

HANDLERS = """
from pathlib import Path

FIXED = Path({fixed!r})


def register(services):
    def score(data):
        if not FIXED.exists():
            raise ConnectionError("credit bureau unreachable")
        return {{"score": data["docs"] * 100}}

    services.register("score", score)
"""


@pytest.fixture
def cli(db_url: str, tmp_path: Path) -> Any:
    if not BANKFLOW.exists():
        pytest.skip("the bankflow console script is not installed next to this Python")
    (tmp_path / "cli_jobs_handlers.py").write_text(
        HANDLERS.format(fixed=str(tmp_path / "fixed")), encoding="utf-8"
    )
    env = {**os.environ, "COLUMNS": "200", "PYTHONPATH": str(tmp_path)}

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
    process = tmp_path / "cli_jobs.bpmn"
    process.write_text(PROCESS, encoding="utf-8")
    run("deploy", "-q", str(process))
    return run


def _worker(cli: Any, now: str) -> list[dict[str, Any]]:
    result = cli("worker", "--once", "--now", now, "--handlers", "cli_jobs_handlers", "--json")
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def test_message_incident_retry_and_deadline(cli: Any, tmp_path: Path) -> None:
    instance_id = cli("start", "cli_jobs", "--business-key", "B-1").stdout.splitlines()[0]
    assert json.loads(cli("jobs", "--json").stdout) == []

    unknown = cli("message", "no_such_message", "--business-key", "B-1", ok=False)
    assert unknown.returncode == 1
    assert unknown.stderr.startswith("error: no instance is waiting for message 'no_such_message'")
    assert len(unknown.stderr.strip().splitlines()) == 1

    delivered = json.loads(
        cli(
            "message",
            "documents_received",
            "--business-key",
            "B-1",
            "--data",
            '{"docs": 3}',
            "--json",
        ).stdout
    )
    assert [i["id"] for i in delivered] == [instance_id]
    jobs = json.loads(cli("jobs", "--json").stdout)
    assert [(j["kind"], j["topic"], j["attempts"]) for j in jobs] == [("external", "score", 0)]

    # Not due before its time: a worker at an earlier "now" leaves it alone.
    assert _worker(cli, "2000-01-01T00:00:00Z") == []
    first = _worker(cli, "2099-01-01T00:00:00Z")
    assert [(o["kind"], o["result"]) for o in first] == [("external", "retry")]
    assert "credit bureau unreachable" in first[0]["message"]
    job = json.loads(cli("jobs", "--json").stdout)[0]
    assert (job["attempts"], job["due_at"]) == (1, "2099-01-01T00:01:00Z")

    second = _worker(cli, "2099-01-01T00:02:00Z")
    assert [o["result"] for o in second] == ["incident"]
    incidents = json.loads(cli("incidents", "--json").stdout)
    assert [(i["id"], i["kind"], i["element_id"], i["attempts"]) for i in incidents] == [
        (instance_id, "job", "score", 2)
    ]
    assert json.loads(cli("show", instance_id, "--json").stdout)["instance"]["status"] == "failed"
    assert _worker(cli, "2099-01-02T00:00:00Z") == []  # an incident waits for a person

    (tmp_path / "fixed").write_text("yes", encoding="utf-8")
    retried = cli("retry", instance_id)
    assert "running" in retried.stdout
    assert "no incidents" in cli("incidents").stdout
    third = _worker(cli, "2099-01-02T00:00:00Z")
    assert [o["result"] for o in third] == ["completed"]
    shown = json.loads(cli("show", instance_id, "--json").stdout)["instance"]
    assert shown["data"]["score"] == 300
    assert [t["element_id"] for t in shown["tasks"]] == ["review"]

    # The review deadline runs from when the review task appeared (the worker's "now").
    assert _worker(cli, "2099-01-03T23:59:00Z") == []
    fired = _worker(cli, "2099-01-04T00:00:01Z")
    assert [(o["kind"], o["element_id"], o["result"]) for o in fired] == [
        ("timer", "deadline", "fired")
    ]
    tasks = json.loads(cli("tasks", "--instance", instance_id, "--json").stdout)
    assert [t["element_id"] for t in tasks] == ["escalate"]
    history = json.loads(cli("show", instance_id, "--json").stdout)["history"]
    kinds = [e["type"] for e in history]
    for expected in (
        "message_received",
        "job_failed",
        "instance_failed",
        "instance_retried",
        "service_completed",
        "timer_fired",
        "task_cancelled",
    ):
        assert expected in kinds, kinds


BUREAU = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="defs" targetNamespace="t">
  <bpmn:error id="Err_nofile" errorCode="NO_FILE"/>
  <bpmn:process id="bureau_check" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="bureau"/>
    <bpmn:serviceTask id="bureau" camunda:type="external" camunda:topic="credit-bureau"/>
    <bpmn:sequenceFlow id="f2" sourceRef="bureau" targetRef="review"/>
    <bpmn:userTask id="review" camunda:candidateGroups="risk"/>
    <bpmn:sequenceFlow id="f3" sourceRef="review" targetRef="done"/>
    <bpmn:boundaryEvent id="no_file" attachedToRef="bureau">
      <bpmn:errorEventDefinition errorRef="Err_nofile"/>
    </bpmn:boundaryEvent>
    <bpmn:sequenceFlow id="f4" sourceRef="no_file" targetRef="manual"/>
    <bpmn:userTask id="manual" camunda:candidateGroups="risk"/>
    <bpmn:sequenceFlow id="f5" sourceRef="manual" targetRef="done"/>
    <bpmn:endEvent id="done"/>
  </bpmn:process>
</bpmn:definitions>
"""


def test_external_tasks_from_a_shell(cli: Any, tmp_path: Path) -> None:
    process = tmp_path / "bureau.bpmn"
    process.write_text(BUREAU, encoding="utf-8")
    cli("deploy", "-q", str(process))
    first = cli("start", "bureau_check", "--business-key", "K-1", "--data", '{"ssn": "x1"}')
    second = cli("start", "bureau_check", "--business-key", "K-2")
    first_id, second_id = first.stdout.split()[0], second.stdout.split()[0]

    def fetch(worker: str, limit: int = 1) -> list[dict[str, Any]]:
        found = cli(
            "external",
            "fetch",
            "credit-bureau",
            "--worker-id",
            worker,
            "--max",
            str(limit),
            "--json",
        )
        return list(json.loads(found.stdout))

    mine = fetch("w1")
    assert [(t["business_key"], t["variables"]) for t in mine] == [("K-1", {"ssn": "x1"})]
    other = fetch("w2", limit=5)
    assert [t["business_key"] for t in other] == ["K-2"]  # K-1 is locked by w1
    refused = cli("external", "complete", mine[0]["id"], "--worker-id", "w2", ok=False)
    assert refused.returncode == 1
    assert "is not locked by 'w2' (held by w1)" in refused.stderr
    cli("external", "extend", mine[0]["id"], "--worker-id", "w1", "--seconds", "600")
    failed = cli(
        "external",
        "fail",
        mine[0]["id"],
        "--worker-id",
        "w1",
        "--error",
        "bureau timeout",
        "--retries",
        "1",
    )
    assert failed.stdout.strip().endswith(": retry")
    again = fetch("w3")
    assert [(t["id"], t["attempts"], t["error_message"]) for t in again] == [
        (mine[0]["id"], 1, "bureau timeout")
    ]
    done = cli(
        "external", "complete", again[0]["id"], "--worker-id", "w3", "--data", '{"score": 712}'
    )
    assert "running" in done.stdout
    cli("external", "bpmn-error", other[0]["id"], "--worker-id", "w2", "--code", "NO_FILE")
    tasks = {
        t["instance_id"]: t["element_id"]
        for t in json.loads(cli("tasks", "--group", "risk", "--json").stdout)
    }
    assert tasks == {first_id: "review", second_id: "manual"}
    assert json.loads(cli("jobs", "--json").stdout) == []
