"""Forms enforced on both backends (issue 11, item 4): each ``camunda:validation``
constraint passes at its boundary and refuses just past it, every offending field is named
in one refusal, undeclared fields are refused unless the engine allows them, read-only
fields keep their value, and a refusal changes nothing."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bankflow import Engine, InstanceStatus, InvalidTaskData

APPLY = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="t">
  <bpmn:process id="apply" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:userTask id="capture" camunda:candidateGroups="clerks">
      <bpmn:extensionElements><camunda:formData>
        <camunda:formField id="name" type="string">
          <camunda:validation>
            <camunda:constraint name="required"/>
            <camunda:constraint name="minlength" config="2"/>
            <camunda:constraint name="maxlength" config="5"/>
          </camunda:validation>
        </camunda:formField>
        <camunda:formField id="age" type="long">
          <camunda:validation>
            <camunda:constraint name="min" config="18"/>
            <camunda:constraint name="max" config="99"/>
          </camunda:validation>
        </camunda:formField>
        <camunda:formField id="amount" type="double">
          <camunda:validation>
            <camunda:constraint name="min" config="0.5"/>
            <camunda:constraint name="max" config="1000"/>
          </camunda:validation>
        </camunda:formField>
        <camunda:formField id="opens" type="date">
          <camunda:validation>
            <camunda:constraint name="min" config="2026-01-01"/>
            <camunda:constraint name="max" config="2026-12-31"/>
          </camunda:validation>
        </camunda:formField>
        <camunda:formField id="product" type="enum">
          <camunda:value id="car" name="Car"/><camunda:value id="home" name="Home"/>
        </camunda:formField>
        <camunda:formField id="branch" type="string">
          <camunda:validation><camunda:constraint name="readonly"/></camunda:validation>
        </camunda:formField>
        <camunda:formField id="channel" type="string" defaultValue="web">
          <camunda:validation><camunda:constraint name="readonly"/></camunda:validation>
        </camunda:formField>
      </camunda:formData></bpmn:extensionElements>
    </bpmn:userTask>
    <bpmn:endEvent id="end"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="capture"/>
    <bpmn:sequenceFlow id="f2" sourceRef="capture" targetRef="end"/>
  </bpmn:process>
</bpmn:definitions>
"""

CLERKS = ["clerks"]
VALID: dict[str, Any] = {"name": "Ann", "age": 30, "amount": Decimal("10"), "product": "car"}

# (field, value at the boundary that passes, value just past it, the reason refused)
BOUNDARIES: list[tuple[str, Any, Any, str]] = [
    ("name", "Al", "A", "must have at least 2 characters"),
    ("name", "Alice", "Alicia", "must have at most 5 characters"),
    ("age", 18, 17, "must be at least 18"),
    ("age", 99, 100, "must be at most 99"),
    ("amount", Decimal("0.5"), Decimal("0.49"), "must be at least 0.5"),
    ("amount", 1000, Decimal("1000.01"), "must be at most 1000"),
    ("opens", date(2026, 1, 1), date(2025, 12, 31), "must be at least 2026-01-01"),
    ("opens", "2026-12-31", "2027-01-01", "must be at most 2026-12-31"),
    ("product", "home", "boat", "Input should be 'car' or 'home'"),
    ("name", "Ann", "", "is required and may not be empty"),
]


@pytest.fixture
def deployed(engine: Engine, tmp_path: Path) -> Engine:
    (tmp_path / "apply.bpmn").write_text(APPLY)
    engine.definitions.deploy(tmp_path / "apply.bpmn")
    return engine


def _waiting(engine: Engine) -> tuple[str, str]:
    instance = engine.instances.start("apply", data={"branch": "north"})
    [task] = instance.tasks
    return instance.id, task.id


def _refusal(engine: Engine, task_id: str, data: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(InvalidTaskData) as raised:
        engine.tasks.complete(task_id, user="ann", groups=CLERKS, data=data)
    assert raised.value.task_id == task_id
    return [(e.field, e.message) for e in raised.value.errors]


def test_each_constraint_passes_at_its_boundary_and_refuses_past_it(deployed: Engine) -> None:
    for field, good, bad, reason in BOUNDARIES:
        _, task_id = _waiting(deployed)
        assert _refusal(deployed, task_id, {**VALID, field: bad}) == [(field, reason)], field
        done = deployed.tasks.complete(
            task_id, user="ann", groups=CLERKS, data={**VALID, field: good}
        )
        assert done.status == InstanceStatus.COMPLETED, (field, good)
        expected = date.fromisoformat(good) if field == "opens" and isinstance(good, str) else good
        assert done.data[field] == expected


def test_required_field_missing_or_null_is_refused(deployed: Engine) -> None:
    _, task_id = _waiting(deployed)
    without = {k: v for k, v in VALID.items() if k != "name"}
    assert _refusal(deployed, task_id, without) == [("name", "is required")]
    assert _refusal(deployed, task_id, {**VALID, "name": None}) == [
        ("name", "is required and may not be empty")
    ]
    # A field without constraints may be left out or sent empty.
    optional = {k: v for k, v in VALID.items() if k not in ("age", "product")}
    done = deployed.tasks.complete(
        task_id, user="ann", groups=CLERKS, data={**optional, "amount": None}
    )
    assert done.status == InstanceStatus.COMPLETED


def test_every_offending_field_is_named_in_one_refusal(deployed: Engine) -> None:
    _, task_id = _waiting(deployed)
    data = {
        "name": "A",
        "age": "old",
        "amount": Decimal("5000"),
        "opens": "not a date",
        "product": "boat",
        "branch": "south",
        "nickname": "Annie",
        "vip": True,
    }
    errors = _refusal(deployed, task_id, data)
    assert [field for field, _ in errors] == [
        "name",
        "age",
        "amount",
        "opens",
        "product",
        "branch",
        "nickname",
        "vip",
    ]
    reasons = dict(errors)
    assert reasons["name"] == "must have at least 2 characters"
    assert reasons["age"] == "Input should be a valid integer"
    assert reasons["amount"] == "must be at most 1000"
    assert reasons["opens"].startswith("Input should be a valid date")
    assert reasons["branch"] == "is read-only: it may only be sent with its current value"
    assert reasons["nickname"].startswith("is not a field of this task's form (it declares name,")
    assert "allow_undeclared_fields=True" in reasons["vip"]
    with pytest.raises(InvalidTaskData) as raised:
        deployed.tasks.complete(task_id, user="ann", groups=CLERKS, data=data)
    message = str(raised.value)
    assert all(f"{field}: " in message for field, _ in errors)


def test_undeclared_field_is_refused_unless_the_engine_allows_it(
    deployed: Engine, db_url: str
) -> None:
    _, task_id = _waiting(deployed)
    assert [f for f, _ in _refusal(deployed, task_id, {**VALID, "note": "x"})] == ["note"]
    with Engine(db_url, allow_undeclared_fields=True) as lenient:
        done = lenient.tasks.complete(
            task_id, user="ann", groups=CLERKS, data={**VALID, "note": "x"}
        )
        assert done.status == InstanceStatus.COMPLETED
        assert done.data["note"] == "x"
        # Declared fields are still checked with the option on.
        _, other = _waiting(lenient)
        assert _refusal(lenient, other, {**VALID, "age": 7, "note": "x"}) == [
            ("age", "must be at least 18")
        ]


def test_readonly_field_only_takes_its_current_value(deployed: Engine) -> None:
    _, task_id = _waiting(deployed)
    readonly = "is read-only: it may only be sent with its current value"
    assert _refusal(deployed, task_id, {**VALID, "branch": "south"}) == [("branch", readonly)]
    # No process value: the field's defaultValue is what the form shows.
    assert _refusal(deployed, task_id, {**VALID, "channel": "app"}) == [("channel", readonly)]
    assert _refusal(deployed, task_id, {**VALID, "branch": None}) == [("branch", readonly)]
    done = deployed.tasks.complete(
        task_id,
        user="ann",
        groups=CLERKS,
        data={**VALID, "branch": "north", "channel": "web"},
    )
    assert (done.data["branch"], done.data["channel"]) == ("north", "web")
    _, left_out = _waiting(deployed)
    done = deployed.tasks.complete(left_out, user="ann", groups=CLERKS, data=VALID)
    assert done.data["branch"] == "north"


def _rows(url: str) -> dict[str, int]:
    with sa.create_engine(url).connect() as connection:
        return {
            t: connection.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
            for t in ("bf_instance", "bf_task", "bf_task_candidate", "bf_event", "bf_job")
        }


def test_a_refusal_changes_nothing(deployed: Engine, db_url: str) -> None:
    instance_id, task_id = _waiting(deployed)
    before = deployed.instances.get(instance_id)
    history = deployed.history.for_instance(instance_id)
    rows = _rows(db_url)
    _refusal(deployed, task_id, {**VALID, "age": 17, "branch": "south", "extra": 1})
    after = deployed.instances.get(instance_id)
    assert (after.status, after.revision, after.data) == (
        InstanceStatus.RUNNING,
        before.revision,
        before.data,
    )
    assert [t.id for t in after.tasks] == [task_id]
    assert deployed.tasks.get(task_id).id == task_id
    assert deployed.history.for_instance(instance_id) == history
    assert _rows(db_url) == rows
    done = deployed.tasks.complete(task_id, user="ann", groups=CLERKS, data=VALID)
    assert done.status == InstanceStatus.COMPLETED


def test_validate_locates_a_constraint_that_does_not_parse(engine: Engine, tmp_path: Path) -> None:
    bad = APPLY.replace('name="min" config="18"', 'name="min" config="abc"')
    path = tmp_path / "bad.bpmn"
    path.write_text(bad)
    report = engine.definitions.validate(path)
    [problem] = [d for d in report.errors if d.rule == "form-constraint"]
    line = next(n for n, text in enumerate(bad.splitlines(), 1) if 'config="abc"' in text)
    assert (problem.file.endswith("bad.bpmn"), problem.line, problem.element_id) == (
        True,
        line,
        "capture",
    )
    assert problem.message == "form field 'age': min='abc' is not a number"
    assert not report.ok
