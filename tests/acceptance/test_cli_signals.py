"""``bankflow signal`` as a subprocess, on both databases: a broadcast reaches every waiting
instance and starts the processes with a signal start event, in the order the history
shows; a signal thrown by an instance travels through ``bankflow worker --once``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BANKFLOW = Path(sys.executable).parent / "bankflow"

PROCESSES = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="defs" targetNamespace="t">
  <bpmn:signal id="sig_rates" name="rates_changed"/>
  <bpmn:process id="offer" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:intermediateCatchEvent id="wait_rates">
      <bpmn:signalEventDefinition signalRef="sig_rates"/>
    </bpmn:intermediateCatchEvent>
    <bpmn:userTask id="review" camunda:candidateGroups="pricing"/>
    <bpmn:endEvent id="end"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="wait_rates"/>
    <bpmn:sequenceFlow id="f2" sourceRef="wait_rates" targetRef="review"/>
    <bpmn:sequenceFlow id="f3" sourceRef="review" targetRef="end"/>
  </bpmn:process>
  <bpmn:process id="reprice_book" isExecutable="true">
    <bpmn:startEvent id="rates_in"><bpmn:signalEventDefinition signalRef="sig_rates"/>
    </bpmn:startEvent>
    <bpmn:endEvent id="repriced"/>
    <bpmn:sequenceFlow id="f4" sourceRef="rates_in" targetRef="repriced"/>
  </bpmn:process>
  <bpmn:process id="treasury" isExecutable="true">
    <bpmn:startEvent id="t_start"/>
    <bpmn:endEvent id="publish"><bpmn:signalEventDefinition signalRef="sig_rates"/>
    </bpmn:endEvent>
    <bpmn:sequenceFlow id="f5" sourceRef="t_start" targetRef="publish"/>
  </bpmn:process>
</bpmn:definitions>
"""


@pytest.fixture
def cli(db_url: str, tmp_path: Path) -> Any:
    if not BANKFLOW.exists():
        pytest.skip("the bankflow console script is not installed next to this Python")
    env = {**os.environ, "COLUMNS": "200"}

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
    path = tmp_path / "rates.bpmn"
    path.write_text(PROCESSES, encoding="utf-8")
    run("deploy", "-q", str(path))
    return run


def _history(cli: Any, instance_id: str) -> list[tuple[str, str | None, str | None]]:
    events = json.loads(cli("history", instance_id, "--json").stdout)
    return [(e["type"], e["element_id"], e["actor"]) for e in events]


def test_signal_broadcast_and_thrown_signal(cli: Any) -> None:
    nobody = cli("signal", "branch_closed")
    assert "nobody waits for it and no process starts with it" in nobody.stdout

    ids = [
        cli("start", "offer", "--business-key", f"OFFER-{n}").stdout.splitlines()[0] for n in (1, 2)
    ]
    result = json.loads(
        cli(
            "signal", "rates_changed", "--data", '{"rate": 4.25}', "--user", "tina", "--json"
        ).stdout
    )
    assert result["name"] == "rates_changed"
    assert [i["id"] for i in result["reached"]] == ids
    assert [[t["element_id"] for t in i["tasks"]] for i in result["reached"]] == [
        ["review"],
        ["review"],
    ]
    assert [(i["process_key"], i["status"]) for i in result["started"]] == [
        ("reprice_book", "completed")
    ]
    for instance_id in ids:
        assert _history(cli, instance_id) == [
            ("instance_started", None, None),
            ("signal_received", "wait_rates", "tina"),
            ("task_created", "review", None),
        ]

    # Thrown by an instance: a job, split by the worker, then one job per target.
    cli("start", "offer", "--business-key", "OFFER-3")
    cli("start", "treasury")
    lines = cli("worker", "--once", "--json").stdout.splitlines()
    outcomes = [json.loads(line) for line in lines if line.strip()]
    assert outcomes[0]["result"] == "broadcast"
    assert sorted((o["result"], o["process_key"]) for o in outcomes[1:]) == [
        ("delivered", "offer"),
        ("started", "reprice_book"),
    ]
    text = cli("signal", "rates_changed").stdout
    assert text.startswith("started: instance ")
    assert "(reprice_book): completed" in text

    refused = cli("signal", "rates_changed", "--data", "[1, 2]", ok=False)
    assert refused.returncode == 2
    assert refused.stderr.startswith("error: ")
