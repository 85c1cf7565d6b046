"""What a long step costs: a loop with no exit refused at the step limit, a long chain.

    .venv/bin/python bench/steps.py [--quick]

A script task and a gateway that always goes back run until ``Limits.max_steps`` fails the
instance. Each size runs in this process on a fresh SQLite file; the figure that matters is
the ratio of the cost per element at the largest size to the cost per element at the
smallest (the baseline, same process): about 1x means a step costs the same however long
the instance has run (SpiffWorkflow's engine loop re-scanned every task for every element,
so 10,000 elements took two minutes; the target here is at most 2x). A 5,000-element chain
of script tasks is deployed and run as well (it used to fail with a RecursionError at ~480).
Nothing is asserted: the figures are for reading.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bankflow import Engine, InstanceStatus, Limits

LOOP = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d"
    targetNamespace="t">
  <bpmn:process id="loop" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="count"/>
    <bpmn:scriptTask id="count"><bpmn:script>n = n + 1</bpmn:script></bpmn:scriptTask>
    <bpmn:sequenceFlow id="f2" sourceRef="count" targetRef="check"/>
    <bpmn:exclusiveGateway id="check" default="again"/>
    <bpmn:sequenceFlow id="again" sourceRef="check" targetRef="count"/>
    <bpmn:sequenceFlow id="out" sourceRef="check" targetRef="end">
      <bpmn:conditionExpression>n &lt; 0</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:endEvent id="end"/>
  </bpmn:process>
</bpmn:definitions>
"""


def _chain(n: int) -> str:
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n<bpmn:definitions xmlns:bpmn='
        '"http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="t">\n'
        '<bpmn:process id="chain" isExecutable="true"><bpmn:startEvent id="s"/>\n'
    ]
    previous = "s"
    for i in range(n):
        parts.append(
            f'<bpmn:scriptTask id="t{i}"><bpmn:script>x = {i}</bpmn:script></bpmn:scriptTask>'
            f'<bpmn:sequenceFlow id="f{i}" sourceRef="{previous}" targetRef="t{i}"/>\n'
        )
        previous = f"t{i}"
    parts.append(f'<bpmn:endEvent id="e"/><bpmn:sequenceFlow id="fe" sourceRef="{previous}" ')
    parts.append('targetRef="e"/></bpmn:process></bpmn:definitions>\n')
    return "".join(parts)


def _loop_seconds(folder: Path, steps: int) -> float:
    path = folder / f"loop-{steps}.bpmn"
    path.write_text(LOOP)
    with Engine(f"sqlite:///{folder / f'loop-{steps}.db'}", limits=Limits(max_steps=steps)) as e:
        e.definitions.deploy(path)
        began = time.perf_counter()
        instance = e.instances.start("loop", data={"n": 0})
        took = time.perf_counter() - began
    assert instance.status == InstanceStatus.FAILED, instance.status
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    args = parser.parse_args()
    sizes = [500, 2_000] if args.quick else [1_000, 10_000]
    chain = 1_000 if args.quick else 5_000
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _loop_seconds(folder, 100)  # warm up imports and caches
        timings = {steps: _loop_seconds(folder, steps) for steps in sizes}
        for steps, took in timings.items():
            print(f"loop refused at {steps:>6,} steps: {took:6.2f} s, "
                  f"{took / steps * 1e6:6.1f} us per element")  # fmt: skip
        small, large = sizes
        ratio = (timings[large] / large) / (timings[small] / small)
        verdict = "ok" if ratio <= 2 else "MISSED"
        print(
            f"cost per element at {large:,} / at {small:,}: {ratio:.2f}x (target <= 2x) {verdict}"
        )
        path = folder / "chain.bpmn"
        path.write_text(_chain(chain))
        with Engine(f"sqlite:///{folder / 'chain.db'}") as engine:
            began = time.perf_counter()
            engine.definitions.deploy(path)
            deployed = time.perf_counter() - began
            began = time.perf_counter()
            instance = engine.instances.start("chain")
            ran = time.perf_counter() - began
        print(f"chain of {chain:,} script tasks: deploy {deployed:.2f} s, run {ran:.2f} s "
              f"({instance.status.value})")  # fmt: skip


if __name__ == "__main__":
    main()
