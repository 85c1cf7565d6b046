"""SIGTERM stops `bankflow worker` within its grace period even in the middle of a step
that would otherwise run on (a loop allowed 100 million steps): nothing of the step is
written and its job is given back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bankflow import Engine, FixedClock, InstanceStatus

BANKFLOW = Path(sys.executable).parent / "bankflow"

PROCESS = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="t">
  <bpmn:process id="spin" isExecutable="true">
    <bpmn:startEvent id="start" name="Start"/>
    <bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="wait"/>
    <bpmn:intermediateCatchEvent id="wait" name="Wait">
      <bpmn:timerEventDefinition><bpmn:timeDuration>PT1H</bpmn:timeDuration></bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="wait" targetRef="mark"/>
    <bpmn:serviceTask id="mark" name="Mark" camunda:class="bank.Mark"/>
    <bpmn:sequenceFlow id="f2" sourceRef="mark" targetRef="again"/>
    <bpmn:scriptTask id="again" name="Again"><bpmn:script>n = n + 1</bpmn:script></bpmn:scriptTask>
    <bpmn:sequenceFlow id="f3" sourceRef="again" targetRef="mark"/>
  </bpmn:process>
</bpmn:definitions>
"""

HANDLERS = textwrap.dedent(
    """
    import os
    from pathlib import Path

    def mark(data):
        Path(os.environ["BF_MARK"]).touch()
        return {}

    def register(services):
        services.register("Mark", mark)
    """
)


def test_sigterm_interrupts_a_running_step_within_the_grace_period(
    db_url: str, tmp_path: Path
) -> None:
    start = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    (tmp_path / "spin.bpmn").write_text(PROCESS)
    (tmp_path / "spin_handlers.py").write_text(HANDLERS)
    with Engine(db_url, migrate=True, clock=FixedClock(start)) as engine:
        engine.definitions.deploy(tmp_path / "spin.bpmn")
        instance = engine.instances.start("spin", data={"n": 0})
    marker = tmp_path / "in-the-loop"
    env = {
        **os.environ,
        "PYTHONPATH": str(tmp_path),
        "BF_MARK": str(marker),
        "BANKFLOW_LIMITS": '{"max_steps": 100000000}',
    }
    now = (start + timedelta(hours=2)).isoformat()
    worker = subprocess.Popen(
        [
            str(BANKFLOW),
            "--db",
            db_url,
            "worker",
            "--handlers",
            "spin_handlers",
            "--once",
            "--now",
            now,
            "--id",
            "w1",
            "--grace",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and worker.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), worker.communicate(timeout=5)
        worker.send_signal(signal.SIGTERM)
        stopped_at = time.monotonic()
        _, stderr = worker.communicate(timeout=60)
        took = time.monotonic() - stopped_at
    finally:
        if worker.poll() is None:
            worker.kill()
    assert "Traceback" not in stderr, stderr
    assert worker.returncode in (0, 1), stderr
    assert took < 20, f"took {took:.1f} s after SIGTERM (grace 1 s)"
    with Engine(db_url) as engine:
        after = engine.instances.get(instance.id)
        assert after.revision == instance.revision
        assert after.status == InstanceStatus.RUNNING
        [job] = engine.jobs.list()
        assert (job.kind, job.lock_owner) == ("timer", None)
