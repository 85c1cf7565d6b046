"""``bankflow`` takes any unique prefix of an id, as git does; an ambiguous one is refused
naming the candidates. On a real database: two instances whose ids share a prefix are
made by copying one instance row under a chosen id."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from bankflow import Engine
from bankflow.cli._common import _full_id, _Refused

A = "abcd0000-0000-4000-8000-000000000001"
B = "abcd0000-0000-4000-8000-000000000002"

PROCESS = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="t">
  <bpmn:process id="waits" isExecutable="true">
    <bpmn:startEvent id="begin"/>
    <bpmn:userTask id="work" camunda:candidateGroups="ops"/>
    <bpmn:endEvent id="finish"/>
    <bpmn:sequenceFlow id="f1" sourceRef="begin" targetRef="work"/>
    <bpmn:sequenceFlow id="f2" sourceRef="work" targetRef="finish"/>
  </bpmn:process>
</bpmn:definitions>
"""


def with_instances(engine: Engine, db_url: str, tmp_path: Path, ids: list[str]) -> None:
    """Instances with exactly ``ids``: one started, its row copied under each id."""
    path = tmp_path / "waits.bpmn"
    path.write_text(PROCESS)
    engine.definitions.deploy(path)
    started = engine.instances.start("waits")
    db = sa.create_engine(db_url)
    table = sa.Table("bf_instance", sa.MetaData(), autoload_with=db)
    with db.begin() as conn:
        row = dict(conn.execute(sa.select(table).where(table.c.id == started.id)).one()._mapping)
        for new_id in ids:
            conn.execute(sa.insert(table).values({**row, "id": new_id}))
    db.dispose()


def test_a_unique_prefix_is_the_whole_id(engine: Engine, db_url: str, tmp_path: Path) -> None:
    with_instances(engine, db_url, tmp_path, [A])
    assert _full_id(engine, "abcd0000-0000-4000-8000-00000000000", "instance") == A
    assert _full_id(engine, "abcd", "instance") == A


def test_an_ambiguous_prefix_names_the_candidates(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    with_instances(engine, db_url, tmp_path, [A, B])
    with pytest.raises(_Refused) as refused:
        _full_id(engine, "abcd", "instance")
    assert refused.value.type == "NotFound"
    assert refused.value.extra["candidates"] == [A, B]
    assert A in str(refused.value)
    assert B in str(refused.value)
    assert _full_id(engine, "abcd0000-0000-4000-8000-000000000002", "instance") == B


def test_whole_ids_short_prefixes_and_other_text_are_left_to_the_engine(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    with_instances(engine, db_url, tmp_path, [A])
    assert _full_id(engine, B, "instance") == B  # no query: the engine says whether it exists
    assert _full_id(engine, "abc", "instance") == "abc"  # under 4 characters
    assert _full_id(engine, "ABCD", "instance") == "ABCD"  # ids are lower case
    assert _full_id(engine, "abcd%", "instance") == "abcd%"  # never a LIKE pattern
    assert _full_id(engine, "ffff", "instance") == "ffff"  # a prefix of nothing
