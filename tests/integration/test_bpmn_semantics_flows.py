"""BPMN flow semantics SpiffWorkflow needs bankflow's help with, on both databases: an
activity's default flow, multi-instance counts, ad-hoc sub-processes (refused).

Every step runs on a fresh Engine (nothing from the in-process cache), and what ran is read
from the instance: the ``trace`` its script tasks build, the human tasks it waits for.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bankflow import DefinitionError, Engine, InstanceStatus, Severity

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


# -- 2. multi-instance and loop counts -----------------------------------------------------


def _multi_instance(sequential: bool, cardinality: str) -> str:
    flag = "true" if sequential else "false"
    each = _user("each").replace(
        "/>",
        f'><bpmn:multiInstanceLoopCharacteristics isSequential="{flag}">'
        f"<bpmn:loopCardinality>{cardinality}</bpmn:loopCardinality>"
        "</bpmn:multiInstanceLoopCharacteristics></bpmn:userTask>",
    )
    return "".join(
        (
            '<bpmn:startEvent id="start" name="start"/>',
            _script("first", "trace = ['first']"),
            each,
            _script("after", "trace = trace + ['after']"),
            '<bpmn:endEvent id="end" name="end"/>',
            _flow("f0", "start", "first"),
            _flow("f1", "first", "each"),
            _flow("f2", "each", "after"),
            _flow("f3", "after", "end"),
        )
    )


@pytest.mark.parametrize("sequential", [True, False], ids=["sequential", "parallel"])
def test_a_cardinality_that_evaluates_to_a_count_runs_that_many(
    db_url: str, tmp_path: Path, sequential: bool
) -> None:
    _deploy(db_url, tmp_path, "counted", _multi_instance(sequential, "n"))
    for n in (2, 0):
        with fresh(db_url) as engine:
            started = engine.instances.start("counted", data={"n": n})
        waiting = [t.element_id for t in started.tasks]
        assert waiting == ["each"] * (min(n, 1) if sequential else n)
        assert _finish_all(db_url, started.id) == ["each"] * n
        with fresh(db_url) as engine:
            done = engine.instances.get(started.id)
        assert done.data["trace"] == ["first", "after"]


@pytest.mark.parametrize("sequential", [True, False], ids=["sequential", "parallel"])
@pytest.mark.parametrize("n", [-1, 2.5, "2", True], ids=["negative", "fraction", "text", "bool"])
def test_a_cardinality_that_is_no_count_fails_the_step(
    db_url: str, tmp_path: Path, sequential: bool, n: object
) -> None:
    """Not left running with nothing to wait for (sequential), not completed having run
    nothing (parallel), not one instance too many (a fraction): the step fails."""
    _deploy(db_url, tmp_path, "counted", _multi_instance(sequential, "n"))
    with fresh(db_url) as engine:
        started = engine.instances.start("counted", data={"n": n})
    assert started.status == InstanceStatus.FAILED
    assert started.tasks == ()
    assert started.failure is not None
    assert started.failure.element_id == "each"
    assert 'multi-instance activity "each"' in started.failure.message
    assert f"is {n!r}" in started.failure.message
    with fresh(db_url) as engine:
        again = engine.instances.get(started.id)
    assert (again.status, again.failure) == (InstanceStatus.FAILED, started.failure)


def test_literal_negative_counts_are_refused_at_validate(engine: Engine, tmp_path: Path) -> None:
    loop = _script("again", "x = 1").replace(
        "<bpmn:script>", '<bpmn:standardLoopCharacteristics loopMaximum="-2"/><bpmn:script>'
    )
    body = _multi_instance(True, "-1").replace(
        '<bpmn:endEvent id="end" name="end"/>', loop + '<bpmn:endEvent id="end" name="end"/>'
    )
    body = body.replace(_flow("f3", "after", "end"), _flow("f3", "after", "again"))
    body += _flow("f4", "again", "end")
    path = tmp_path / "counts.bpmn"
    path.write_text(_process("counts", body), encoding="utf-8")
    report = engine.definitions.validate(path)
    errors = [(d.rule, d.element_id) for d in report.diagnostics if d.severity == Severity.ERROR]
    assert sorted(errors) == [("loop", "again"), ("multi-instance", "each")]
    with pytest.raises(DefinitionError):
        engine.definitions.deploy(path)
    assert engine.definitions.list() == []
    for fine in ("0", "3", "n"):
        path.write_text(
            _process("counts", body.replace(">-1<", f">{fine}<").replace('"-2"', '"2"')),
            encoding="utf-8",
        )
        report = engine.definitions.validate(path)
        assert [d for d in report.diagnostics if d.severity == Severity.ERROR] == [], fine


def test_a_loop_that_waits_carries_on_after_a_reload(db_url: str, tmp_path: Path) -> None:
    """The loop hears that its iteration completed on an Engine that built the spec anew."""
    again = _user("again").replace(
        "/>", '><bpmn:standardLoopCharacteristics loopMaximum="2"/></bpmn:userTask>'
    )
    body = _multi_instance(True, "n").replace(
        '<bpmn:endEvent id="end" name="end"/>', again + '<bpmn:endEvent id="end" name="end"/>'
    )
    body = body.replace(_flow("f3", "after", "end"), _flow("f3", "after", "again"))
    body += _flow("f4", "again", "end")
    _deploy(db_url, tmp_path, "looped", body)
    with fresh(db_url) as engine:
        started = engine.instances.start("looped", data={"n": 1})
    assert _finish_all(db_url, started.id) == ["each", "again", "again"]


# -- 3. ad-hoc sub-processes: refused until bankflow can run them --------------------------


def test_an_ad_hoc_sub_process_is_refused_by_name(engine: Engine, tmp_path: Path) -> None:
    """SpiffWorkflow 3.2 fails as soon as an activity of an ad-hoc sub-process completes
    (``KeyError: 'data_objects'``) and evaluates its completion condition before anything
    ran: nothing is deployed that would then stop there."""
    body = "".join(
        (
            '<bpmn:startEvent id="start" name="start"/>',
            '<bpmn:adHocSubProcess id="triage" name="Triage">',
            _user("call"),
            _user("write"),
            "<bpmn:completionCondition>called and written</bpmn:completionCondition>",
            "</bpmn:adHocSubProcess>",
            '<bpmn:endEvent id="end" name="end"/>',
            _flow("f0", "start", "triage"),
            _flow("f1", "triage", "end"),
        )
    )
    path = tmp_path / "adhoc.bpmn"
    path.write_text(_process("adhoc", body), encoding="utf-8")
    report = engine.definitions.validate(path)
    [error] = [d for d in report.diagnostics if d.severity == Severity.ERROR]
    assert (error.rule, error.element_id, error.line) == ("unsupported", "triage", 3)
    assert "bankflow cannot run ad-hoc sub-processes yet" in error.message
    assert '"Triage"' in error.message
    with pytest.raises(DefinitionError):
        engine.definitions.deploy(path)
    assert engine.definitions.list() == []


def _each_document(task: str) -> str:
    body = (
        '<bpmn:startEvent id="start"/>'
        f'<bpmn:{task} id="each" name="each"'
        + (' camunda:candidateGroups="ops"' if task == "userTask" else "")
        + '><bpmn:multiInstanceLoopCharacteristics isSequential="true" '
        'camunda:collection="docs" camunda:elementVariable="doc"/>'
        + ("<bpmn:script>trace = trace + [doc]</bpmn:script>" if task == "scriptTask" else "")
        + f"</bpmn:{task}>"
        + _script("after", "done = True")
        + '<bpmn:endEvent id="end"/>'
        + _flow("f1", "start", "each")
        + _flow("f2", "each", "after")
        + _flow("f3", "after", "end")
    )
    return body


def test_a_sequential_multi_instance_over_a_collection_runs_each_item_in_order(
    db_url: str, tmp_path: Path
) -> None:
    """It failed at the second item ("Multiinstance input item doc already exists"): the
    first instance's item was merged into the activity's data."""
    _deploy(db_url, tmp_path, "each_doc", _each_document("scriptTask"))
    with fresh(db_url) as engine:
        instance = engine.instances.start("each_doc", data={"docs": ["a", "b", "c"], "trace": []})
    assert instance.status == InstanceStatus.COMPLETED, instance.failure
    assert instance.data["trace"] == ["a", "b", "c"]
    assert "doc" not in instance.data  # each instance's item is its own, as in Camunda


def test_a_sequential_multi_instance_of_user_tasks_survives_reloads(
    db_url: str, tmp_path: Path
) -> None:
    _deploy(db_url, tmp_path, "review_docs", _each_document("userTask"))
    with fresh(db_url) as engine:
        instance = engine.instances.start("review_docs", data={"docs": ["a", "b"], "trace": []})
    reviewed = []
    for _ in range(2):
        with fresh(db_url) as engine:
            [task] = engine.instances.get(instance.id).tasks
            reviewed.append(engine.tasks.data(task.id)["doc"])
            engine.tasks.complete(task.id, user="u", groups=OPS, data={})
    with fresh(db_url) as engine:
        final = engine.instances.get(instance.id)
    assert reviewed == ["a", "b"]
    assert final.status == InstanceStatus.COMPLETED, final.failure
    assert final.data["done"] is True
