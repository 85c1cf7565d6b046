"""Two OS processes complete the same task at once: exactly one wins, the other gets
ConcurrencyError, and history shows a single completion."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bankflow import Engine

PROCESS = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="t">
  <bpmn:process id="approve" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:userTask id="approve_task" name="Approve" camunda:candidateGroups="risk"/>
    <bpmn:userTask id="pay" name="Pay" camunda:candidateGroups="finance"/>
    <bpmn:endEvent id="end"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="approve_task"/>
    <bpmn:sequenceFlow id="f2" sourceRef="approve_task" targetRef="pay"/>
    <bpmn:sequenceFlow id="f3" sourceRef="pay" targetRef="end"/>
  </bpmn:process>
</bpmn:definitions>
"""

# Each racer reads the instance, then (when ``overlap``) waits inside the workflow
# mutation until both have read it, so both writes carry the same expected revision.
RACER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from bankflow import ConcurrencyError, Engine
    from bankflow.runtime import _spiff

    url, task_id, me, folder, overlap = sys.argv[1:6]
    folder = Path(folder)
    real_complete = _spiff.complete

    def waiting_complete(workflow, task, data):
        (folder / f"ready-{me}").touch()
        deadline = time.monotonic() + 20
        while len(list(folder.glob("ready-*"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        real_complete(workflow, task, data)

    if overlap == "yes":
        _spiff.complete = waiting_complete
    (folder / f"go-{me}").touch()
    while len(list(folder.glob("go-*"))) < 2:
        time.sleep(0.005)
    with Engine(url, migrate=False, cache_size=0) as engine:
        try:
            engine.tasks.complete(task_id, user=me, groups=["risk"], data={"by": me})
            print(json.dumps({"who": me, "result": "won"}))
        except ConcurrencyError as exc:
            print(json.dumps({"who": me, "result": "ConcurrencyError", "message": str(exc)}))
    """
)


@pytest.mark.parametrize("overlap", ["yes", "no"], ids=["forced-overlap", "free-race"])
def test_two_processes_complete_one_task(db_url: str, tmp_path: Path, overlap: str) -> None:
    (tmp_path / "approve.bpmn").write_text(PROCESS)
    with Engine(db_url, migrate=True) as engine:
        engine.definitions.deploy(tmp_path / "approve.bpmn")
        instance = engine.instances.start("approve")
    [task] = instance.tasks
    script = tmp_path / "racer.py"
    script.write_text(RACER)
    sync = tmp_path / "sync"
    sync.mkdir()
    racers = [
        subprocess.Popen(
            [sys.executable, str(script), db_url, task.id, who, str(sync), overlap],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for who in ("ann", "ben")
    ]
    outcomes = []
    for racer in racers:
        stdout, stderr = racer.communicate(timeout=60)
        assert racer.returncode == 0, stderr
        outcomes.append(json.loads(stdout.strip().splitlines()[-1]))
    results = sorted(o["result"] for o in outcomes)
    assert results == ["ConcurrencyError", "won"], outcomes
    winner = next(o["who"] for o in outcomes if o["result"] == "won")
    with Engine(db_url) as engine:
        completions = [
            e for e in engine.history.for_instance(instance.id) if e.type == "task_completed"
        ]
        assert [(e.actor, e.task_id) for e in completions] == [(winner, task.id)]
        after = engine.instances.get(instance.id)
        assert after.revision == instance.revision + 1
        assert [t.element_id for t in after.tasks] == ["pay"]
        assert after.data["by"] == winner


def _parallel_process(branches: int) -> str:
    tasks = "".join(
        f'<bpmn:userTask id="t{i}" name="T{i}" camunda:candidateGroups="risk"/>'
        f'<bpmn:sequenceFlow id="in{i}" sourceRef="split" targetRef="t{i}"/>'
        f'<bpmn:sequenceFlow id="out{i}" sourceRef="t{i}" targetRef="join"/>'
        for i in range(branches)
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="t">
  <bpmn:process id="fan" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="split"/>
    <bpmn:parallelGateway id="split"/>{tasks}
    <bpmn:parallelGateway id="join"/>
    <bpmn:sequenceFlow id="f1" sourceRef="join" targetRef="end"/>
    <bpmn:endEvent id="end"/>
  </bpmn:process>
</bpmn:definitions>
"""


def test_contended_completions_raise_only_bankflow_errors(db_url: str, tmp_path: Path) -> None:
    """Threads, each with its own engine, complete the parallel tasks of one instance in
    different orders: every call succeeds or raises a BankflowError (never a raw KeyError),
    and each task is completed exactly once."""
    import random
    import threading

    from bankflow import BankflowError, InstanceStatus

    (tmp_path / "fan.bpmn").write_text(_parallel_process(12))
    with Engine(db_url, migrate=True) as engine:
        engine.definitions.deploy(tmp_path / "fan.bpmn")
        instance = engine.instances.start("fan")
    task_ids = [t.id for t in instance.tasks]
    assert len(task_ids) == 12
    unexpected: list[BaseException] = []
    won: list[str] = []

    def racer(seed: int) -> None:
        order = task_ids[:]
        random.Random(seed).shuffle(order)
        try:
            with Engine(db_url, cache_size=0) as mine:
                for task_id in order:
                    try:
                        mine.tasks.complete(task_id, user=f"u{seed}", groups=["risk"], data={})
                        won.append(task_id)
                    except BankflowError:
                        pass
        except BaseException as exc:
            unexpected.append(exc)

    threads = [threading.Thread(target=racer, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert unexpected == []
    assert sorted(won) == sorted(task_ids)
    with Engine(db_url) as engine:
        assert engine.instances.get(instance.id).status == InstanceStatus.COMPLETED
        completed = [e.task_id for e in engine.history.for_instance(instance.id)
                     if e.type == "task_completed"]  # fmt: skip
        assert sorted(completed) == sorted(task_ids)
