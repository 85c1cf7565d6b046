"""What refusing an oversized definition costs, and what deploying a long chain costs.

    .venv/bin/python bench/deploy_limits.py [--keep DIR] [--timeout SECONDS] [--only NAME]

Writes the files below to a temporary directory, then runs ``bankflow validate`` and
``bankflow deploy`` on each in a child process (a fresh SQLite file per run) and prints the
wall time, the peak resident memory of the child (``wait4``'s ``ru_maxrss``) and the first
line of what the command said:

- ``tasks-100k``: one process of 100,000 unconnected tasks (about 2.4 MB, 100,004 XML
  elements): over ``Limits.max_file_elements`` (100,000 by default), so refused;
- ``tasks-15mb``: the same shape grown to about 15 MB (about 620,000 elements), just under
  the 16 MB file limit: refused by element count;
- ``chain-5000``: a sequence of 5,000 script tasks as Camunda Modeler writes it, with its
  diagram (a shape per task, an edge per flow): about 50,000 elements, under the default,
  so it deploys (or fails inside SpiffWorkflow, which is reported as the command says it);
- ``tasks-at-limit``: 99,990 unconnected tasks, just under the default: what the largest
  file bankflow accepts may cost (every pass runs; two warnings per task are printed).

Child processes start fresh, so the figures include starting Python and importing bankflow
(the ``baseline`` row: a one-task file). "said" is the first error line of a refusal, else
the last line of output. Nothing is asserted: the figures are for reading, not for a test.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

BANKFLOW = Path(sys.executable).with_name("bankflow")

_HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"'
    ' xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI"'
    ' xmlns:dc="http://www.omg.org/spec/DD/20100524/DC"'
    ' xmlns:di="http://www.omg.org/spec/DD/20100524/DI"'
    ' id="defs" targetNamespace="http://bank.example/bpmn">\n'
)


def flat_tasks(count: int) -> str:
    """One executable process: a start event, ``count`` unconnected tasks, an end event."""
    tasks = "".join(f'<bpmn:task id="t{i}"/>\n' for i in range(count))
    return (
        f'{_HEAD}<bpmn:process id="flat" isExecutable="true">\n'
        f'<bpmn:startEvent id="start"/>\n{tasks}<bpmn:endEvent id="end"/>\n'
        "</bpmn:process>\n</bpmn:definitions>\n"
    )


def flat_tasks_of_size(size: int) -> str:
    """``flat_tasks`` with as many tasks as fit in about ``size`` bytes."""
    return flat_tasks(size // len('<bpmn:task id="t123456"/>\n'))


def chain(count: int, *, diagram: bool = True) -> str:
    """start -> ``count`` script tasks in sequence -> end, as Camunda Modeler writes it:
    ``incoming``/``outgoing`` in each node and, with ``diagram``, a shape per node (with
    its bounds) and an edge per flow (with two waypoints)."""
    nodes = ["start", *(f"Task_{i}" for i in range(count)), "end"]
    flows = [(f"Flow_{i}", nodes[i], nodes[i + 1]) for i in range(len(nodes) - 1)]
    body = [
        '<bpmn:startEvent id="start" name="Start">\n<bpmn:outgoing>Flow_0</bpmn:outgoing>\n'
        "</bpmn:startEvent>\n"
    ]
    for i in range(count):
        body.append(
            f'<bpmn:scriptTask id="Task_{i}" name="Step {i}" scriptFormat="python">\n'
            f"<bpmn:incoming>Flow_{i}</bpmn:incoming>\n"
            f"<bpmn:outgoing>Flow_{i + 1}</bpmn:outgoing>\n"
            f"<bpmn:script>n = {i}</bpmn:script>\n</bpmn:scriptTask>\n"
        )
    body.append(
        f'<bpmn:endEvent id="end" name="End">\n<bpmn:incoming>Flow_{count}</bpmn:incoming>\n'
        "</bpmn:endEvent>\n"
    )
    body += [
        f'<bpmn:sequenceFlow id="{f}" sourceRef="{s}" targetRef="{t}"/>\n' for f, s, t in flows
    ]
    shapes: list[str] = []
    if diagram:
        shapes.append(
            '<bpmndi:BPMNDiagram id="diagram">\n<bpmndi:BPMNPlane id="plane" bpmnElement="chain">\n'
        )
        for i, node in enumerate(nodes):
            shapes.append(
                f'<bpmndi:BPMNShape id="{node}_di" bpmnElement="{node}">\n'
                f'<dc:Bounds x="{160 * i}" y="80" width="100" height="80"/>\n'
                "</bpmndi:BPMNShape>\n"
            )
        for i, (flow, _, _) in enumerate(flows):
            shapes.append(
                f'<bpmndi:BPMNEdge id="{flow}_di" bpmnElement="{flow}">\n'
                f'<di:waypoint x="{160 * i + 100}" y="120"/>\n'
                f'<di:waypoint x="{160 * i + 160}" y="120"/>\n'
                "</bpmndi:BPMNEdge>\n"
            )
        shapes.append("</bpmndi:BPMNPlane>\n</bpmndi:BPMNDiagram>\n")
    return (
        f'{_HEAD}<bpmn:process id="chain" isExecutable="true">\n{"".join(body)}'
        f"</bpmn:process>\n{''.join(shapes)}</bpmn:definitions>\n"
    )


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_mb: float
    said: str
    timed_out: bool


def run(args: list[str], *, timeout: float) -> Run:
    """Run a command in a child process; its wall time, peak RSS and first output line."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as output:
        child = subprocess.Popen(args, stdout=output, stderr=subprocess.STDOUT)
        timed_out = False
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                child.kill()
                timed_out = True
                pid, status, usage = os.wait4(child.pid, 0)
                break
            time.sleep(0.02)
        child.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        output.seek(0)
        lines = [
            line
            for line in output.read().decode("utf-8", "replace").splitlines()
            if line.strip() and not line.startswith("checking ")
        ]
    errors = [line for line in lines if line.startswith("error") or "(error)" in line]
    if timed_out:
        said = "killed at the timeout"
    elif child.returncode != 0 and errors:
        said = errors[0]
    else:
        said = lines[-1] if lines else "(no output)"
    return Run(seconds, usage.ru_maxrss / 1024, said[:150], timed_out)


FILES: dict[str, Callable[[], str]] = {
    "baseline": lambda: flat_tasks(1),
    "tasks-100k": lambda: flat_tasks(100_000),
    "tasks-15mb": lambda: flat_tasks_of_size(15_000_000),
    "chain-5000": lambda: chain(5_000),
    "tasks-at-limit": lambda: flat_tasks(99_990),
}


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    options.add_argument("--keep", type=Path, help="write the files here and keep them")
    options.add_argument("--timeout", type=float, default=300.0, help="per command (s)")
    options.add_argument("--only", choices=sorted(FILES), action="append")
    parsed = options.parse_args()
    folder = parsed.keep or Path(tempfile.mkdtemp(prefix="bankflow-limits-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"{'file':14} {'MB':>6} {'elements':>9} {'command':9} {'s':>7} {'peak MB':>8}  said")
    try:
        for name, make in FILES.items():
            if parsed.only and name not in parsed.only:
                continue
            text = make()
            path = folder / f"{name}.bpmn"
            path.write_text(text, encoding="utf-8")
            elements = text.count("<") - text.count("</") - 1  # minus the declaration
            for command in ("validate", "deploy"):
                database = folder / f"{name}-{command}.db"
                database.unlink(missing_ok=True)
                result = run(
                    [str(BANKFLOW), "--db", f"sqlite:///{database}", command, "-q", str(path)],
                    timeout=parsed.timeout,
                )
                print(
                    f"{name:14} {len(text) / 1e6:6.1f} {elements:9,} {command:9} "
                    f"{result.seconds:7.2f} {result.peak_mb:8.0f}  {result.said}",
                    flush=True,
                )
    finally:
        if parsed.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
