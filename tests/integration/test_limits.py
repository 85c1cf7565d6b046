"""Limits on data, keys, ids and pages, the same on SQLite and PostgreSQL.

Every value here is one that either database used to store while the other refused it,
or that neither driver could take (a raw ``UnicodeEncodeError``), or that no database
should hold (a 100-digit-plus number, NaN, 33 levels of nesting, a megabyte of data). Each
is refused with ``InvalidData`` naming the field (``NotFound`` for an id that cannot be
one) at every place it can enter, and nothing is stored; a value just under each limit is
accepted and comes back as it went in.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bankflow import (
    BankflowError,
    Engine,
    InstanceStatus,
    InvalidData,
    Limits,
    NotFound,
)
from bankflow.models import Instance

HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="t">"""
TAIL = "</bpmn:definitions>\n"


def definition(body: str) -> str:
    return HEAD + body + TAIL


PROCESSES = {
    "review": definition(
        """
  <bpmn:process id="review" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:userTask id="check" name="Check" camunda:candidateGroups="risk"/>
    <bpmn:endEvent id="end"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="check"/>
    <bpmn:sequenceFlow id="f2" sourceRef="check" targetRef="end"/>
  </bpmn:process>
"""
    ),
    "calc": definition(
        """
  <bpmn:process id="calc" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:scriptTask id="score" scriptFormat="python">
      <bpmn:script>score = amount / divisor</bpmn:script></bpmn:scriptTask>
    <bpmn:userTask id="check" name="Check" camunda:candidateGroups="risk"/>
    <bpmn:endEvent id="end"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="score"/>
    <bpmn:sequenceFlow id="f2" sourceRef="score" targetRef="check"/>
    <bpmn:sequenceFlow id="f3" sourceRef="check" targetRef="end"/>
  </bpmn:process>
"""
    ),
    "docs": definition(
        """
  <bpmn:message id="Msg_docs" name="docs_in"/>
  <bpmn:process id="docs" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:intermediateCatchEvent id="wait_docs">
      <bpmn:messageEventDefinition id="wait_docs_def" messageRef="Msg_docs"/>
    </bpmn:intermediateCatchEvent>
    <bpmn:userTask id="check" name="Check" camunda:candidateGroups="risk"/>
    <bpmn:endEvent id="end"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="wait_docs"/>
    <bpmn:sequenceFlow id="f2" sourceRef="wait_docs" targetRef="check"/>
    <bpmn:sequenceFlow id="f3" sourceRef="check" targetRef="end"/>
  </bpmn:process>
"""
    ),
    "kyc": definition(
        """
  <bpmn:error id="err_sanctions" name="Sanctions hit" errorCode="SANCTIONS"/>
  <bpmn:process id="kyc" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:serviceTask id="screen" camunda:type="external" camunda:topic="limits.kyc"/>
    <bpmn:boundaryEvent id="sanctions" attachedToRef="screen">
      <bpmn:errorEventDefinition errorRef="err_sanctions"/>
    </bpmn:boundaryEvent>
    <bpmn:userTask id="check" name="Check" camunda:candidateGroups="risk"/>
    <bpmn:userTask id="compliance" name="Review" camunda:candidateGroups="compliance"/>
    <bpmn:endEvent id="e1"/><bpmn:endEvent id="e2"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="screen"/>
    <bpmn:sequenceFlow id="f2" sourceRef="screen" targetRef="check"/>
    <bpmn:sequenceFlow id="f3" sourceRef="check" targetRef="e1"/>
    <bpmn:sequenceFlow id="f4" sourceRef="sanctions" targetRef="compliance"/>
    <bpmn:sequenceFlow id="f5" sourceRef="compliance" targetRef="e2"/>
  </bpmn:process>
"""
    ),
    "letter": definition(
        """
  <bpmn:process id="letter" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:serviceTask id="send" camunda:class="bank.SendLetter"/>
    <bpmn:endEvent id="end"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="send"/>
    <bpmn:sequenceFlow id="f2" sourceRef="send" targetRef="end"/>
  </bpmn:process>
"""
    ),
}
RISK = ["risk"]
TABLES = ("bf_instance", "bf_task", "bf_event", "bf_job", "bf_subscription")


def nested(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


SHARED = ["y" * 1_000] * 600  # 600 KB as JSON, held once in memory
# (what it is, data, the field InvalidData must name): each one over a default limit.
OVER: list[tuple[str, dict[Any, Any], str]] = [
    ("string of 100,001 characters", {"note": "x" * 100_001}, "note"),
    ("list of 10,001 items", {"items": list(range(10_001))}, "items"),
    ("object of 10,001 keys", {"obj": {f"k{i}": 0 for i in range(10_001)}}, "obj"),
    ("33 levels of nesting", {"deep": nested(33)}, "deep" + "[0]" * 32),
    ("integer of 101 digits", {"n": 10**100}, "n"),
    ("Decimal of 101 digits", {"d": Decimal("1" * 101)}, "d"),
    ("Decimal of a million digits", {"d": Decimal("1e999999")}, "d"),
    ("Decimal with 101 digits after the point", {"d": Decimal("1e-101")}, "d"),
    ("float NaN", {"f": float("nan")}, "f"),
    ("float infinity", {"f": float("-inf")}, "f"),
    ("Decimal NaN", {"d": Decimal("NaN")}, "d"),
    ("key that is not text", {1: "x"}, "<int key>"),
    ("NUL in a key", {"a\x00b": 1}, "'a\\x00b'"),
    ("NUL in a string", {"s": "a\x00b"}, "s"),
    ("lone surrogate in a string", {"s": "a\ud800"}, "s"),
    ("lone surrogate in a key", {"k\udfff": 1}, "'k\\udfff'"),
    ("NUL deep inside", {"a": [{"b": ["ok", "x\x00"]}]}, "a[0].b[1]"),
    ("1.1 MB of data", {f"s{i:02}": "x" * 100_000 for i in range(11)}, "s10"),
    ("a 600 KB list shared twice", {"a": SHARED, "b": SHARED}, "a[*]"),
]
OVER_IDS = [case[0] for case in OVER]
# A handler's result was already refused for these (test_jobs covers that path).
SERVICE_OVER = [
    case
    for case in OVER
    if case[0] not in {"33 levels of nesting", "float NaN", "float infinity", "Decimal NaN"}
]


def just_under() -> dict[str, Any]:
    """A value at every limit at once: accepted, and read back unchanged."""
    return {
        "note": "x" * 100_000,
        "items": list(range(10_000)),
        "obj": {f"k{i}": i for i in range(10_000)},
        "deep": nested(32),
        "n": -(10**100 - 1),
        "d": Decimal("-" + "9" * 50 + "." + "9" * 50),
        "small": Decimal("1e-100"),
        "f": 1e99,
        "text": "Zürich \u4e2d\U0001f3e6 tab\there",
        "ok": True,
        "none": None,
    }


@pytest.fixture
def url(db_url: str, tmp_path: Path) -> str:
    folder = tmp_path / "processes"
    folder.mkdir()
    for name, text in PROCESSES.items():
        (folder / f"{name}.bpmn").write_text(text)
    with Engine(db_url, migrate=True) as engine:
        engine.definitions.deploy(folder)
    return db_url


@pytest.fixture
def engine(url: str) -> Iterator[Engine]:
    with Engine(url, migrate=True, cache_size=0) as eng:
        yield eng


def stored(url: str) -> dict[str, Any]:
    """Everything a refused call must leave as it was: rows per table, each instance's
    revision, status and data, each job's attempts, status, lock and last error."""
    db = sa.create_engine(url)
    try:
        with db.connect() as conn:
            counts = {
                t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES
            }
            instances = conn.execute(
                sa.text("SELECT id, revision, status, data FROM bf_instance ORDER BY id")
            ).all()
            jobs = conn.execute(
                sa.text(
                    "SELECT id, attempts, status, lock_owner, last_error FROM bf_job ORDER BY id"
                )
            ).all()
        return {"counts": counts, "instances": instances, "jobs": jobs}
    finally:
        db.dispose()


def refused(url: str, call: Callable[[], Any], field: str) -> InvalidData:
    """``call`` raises InvalidData naming ``field`` (``a[*]``: any item of ``a``), and
    nothing in the database changed."""
    before = stored(url)
    with pytest.raises(InvalidData) as caught:
        call()
    fields = [e.field for e in caught.value.errors]
    if field.endswith("[*]"):
        assert any(f.startswith(field[:-3] + "[") for f in fields), fields
    else:
        assert field in fields, fields
    assert stored(url) == before
    return caught.value


def failed_instance(engine: Engine) -> Instance:
    instance = engine.instances.start("calc", data={"amount": 10, "divisor": 0})
    assert instance.status == InstanceStatus.FAILED
    return instance


# -- data: every limit at every entry point ---------------------------------------------------


@pytest.mark.parametrize(("what", "data", "field"), OVER, ids=OVER_IDS)
def test_data_over_a_limit_is_refused_at_every_entry_point(
    url: str, engine: Engine, what: str, data: dict[Any, Any], field: str
) -> None:
    waiting = engine.instances.start("review", business_key="B-1")
    [task] = waiting.tasks
    failed = failed_instance(engine)
    docs = engine.instances.start("docs", business_key="D-1")
    engine.instances.start("kyc")
    [external] = engine.external.fetch_and_lock(["limits.kyc"], worker_id="w1")

    refused(url, lambda: engine.instances.start("review", data=data), field)
    refused(url, lambda: engine.tasks.complete(task.id, user="ann", groups=RISK, data=data), field)
    refused(url, lambda: engine.instances.retry(failed.id, data=data), field)
    refused(url, lambda: engine.incidents.retry(failed.id, data=data), field)
    refused(url, lambda: engine.messages.correlate("docs_in", business_key="D-1", data=data), field)
    refused(
        url,
        lambda: engine.messages.correlate("docs_in", business_key="D-1", correlation=data),
        field,
    )
    refused(
        url,
        lambda: engine.external.complete(external.id, worker_id="w1", variables=data),
        field,
    )
    refused(
        url,
        lambda: engine.external.bpmn_error(
            external.id, worker_id="w1", error_code="SANCTIONS", variables=data
        ),
        field,
    )
    # Each call still works with good data afterwards: nothing was left half done.
    assert engine.messages.correlate("docs_in", business_key="D-1", data={"n": 1})[0].id == docs.id
    assert engine.external.complete(external.id, worker_id="w1", variables={"hits": 0})


@pytest.mark.parametrize(("what", "data", "field"), SERVICE_OVER, ids=[c[0] for c in SERVICE_OVER])
def test_a_service_result_over_a_limit_is_a_failed_attempt(
    url: str, what: str, data: dict[Any, Any], field: str
) -> None:
    with Engine(url, cache_size=0) as engine:
        started = engine.instances.start("letter", data={"customer": "Ann"})
    before = stored(url)
    with Engine(url, cache_size=0) as engine:
        engine.services.register("SendLetter", lambda _data: data)
        [outcome] = engine.jobs.run_due().outcomes
        assert outcome.result == "retry"
        assert outcome.message is not None
        assert "InvalidData" in outcome.message
        assert (field[:-3] if field.endswith("[*]") else field) in outcome.message
        instance = engine.instances.get(started.id)
        assert (instance.revision, instance.data) == (started.revision, {"customer": "Ann"})
    after = stored(url)
    assert after["instances"] == before["instances"]
    [job] = after["jobs"]
    assert (job.attempts, job.status, job.lock_owner) == (1, "ready", None)


def test_data_just_under_every_limit_is_accepted_everywhere(url: str, engine: Engine) -> None:
    value = just_under()
    started = engine.instances.start("review", business_key="K" * 255, data=value)
    assert engine.instances.get(started.id).data == value

    [task] = engine.instances.start("review").tasks
    done = engine.tasks.complete(task.id, user="ann", groups=RISK, data=value)
    assert done.status == InstanceStatus.COMPLETED
    assert engine.instances.get(done.id).data == value

    engine.instances.start("docs", business_key="D-1")
    [delivered] = engine.messages.correlate(
        "docs_in", business_key="D-1", data=value, correlation={"none": None}
    )
    assert engine.instances.get(delivered.id).data == value

    engine.instances.start("kyc")
    [external] = engine.external.fetch_and_lock(["limits.kyc"], worker_id="w1")
    after = engine.external.complete(external.id, worker_id="w1", variables=value)
    assert engine.instances.get(after.id).data == value


def test_the_data_size_is_counted_as_compact_json(url: str) -> None:
    """With a 1,000-byte limit, ``{"s": "x" * 992}`` is exactly 1,000 bytes as compact
    JSON (``{"s":"xx...x"}``): accepted; one character more is refused."""
    assert len(json.dumps({"s": "x" * 992}, separators=(",", ":"))) == 1_000
    with Engine(url, cache_size=0, limits=Limits(max_data_bytes=1_000)) as engine:
        assert engine.instances.start("review", data={"s": "x" * 992}).data == {"s": "x" * 992}
        error = refused(url, lambda: engine.instances.start("review", data={"s": "x" * 993}), "s")
        assert "larger than 1,000 bytes" in str(error)
        # UTF-8 bytes, not characters: 496 two-byte characters are 992 bytes.
        engine.instances.start("review", data={"s": "é" * 496})
        refused(url, lambda: engine.instances.start("review", data={"s": "é" * 496 + "x"}), "s")


def test_the_engine_limits_are_the_ones_checked(url: str) -> None:
    tight = Limits(
        max_string_chars=10,
        max_items=4,
        max_depth=2,
        max_number_digits=5,
        max_business_key_chars=8,
    )
    with Engine(url, cache_size=0, limits=tight) as engine:
        ok = {"s": "x" * 10, "l": [[1, 2, 3]], "n": 99_999, "d": Decimal("9.9999")}
        assert engine.instances.start("review", business_key="K" * 8, data=ok).data == ok
        refused(url, lambda: engine.instances.start("review", data={"s": "x" * 11}), "s")
        refused(url, lambda: engine.instances.start("review", data={"l": [0] * 5}), "l")
        refused(url, lambda: engine.instances.start("review", data={"l": [[[1]]]}), "l[0][0]")
        refused(url, lambda: engine.instances.start("review", data={"n": 100_000}), "n")
        refused(url, lambda: engine.instances.start("review", data={"d": Decimal("0.000001")}), "d")
        refused(url, lambda: engine.instances.start("review", business_key="K" * 9), "business_key")
    with Engine(url, cache_size=0) as engine:  # the defaults are far above those
        assert engine.instances.start("review", data={"s": "x" * 11, "n": 100_000})


def test_a_100_mb_string_is_refused_without_being_serialised(url: str, engine: Engine) -> None:
    huge = "x" * 100_000_000
    started = time.perf_counter()
    refused(url, lambda: engine.instances.start("review", data={"doc": huge}), "doc")
    assert time.perf_counter() - started < 5  # measured: milliseconds (a walk, no encode)


# -- business keys ---------------------------------------------------------------------------

BAD_KEYS = [
    ("NUL", "LOAN\x00-1"),
    ("line break", "LOAN-1\n"),
    ("lone surrogate", "LOAN-\ud800"),
    ("empty", ""),
    ("blank", "   "),
    ("256 characters", "K" * 256),
    ("10,000 characters", "K" * 10_000),
    ("not text", 1001),
]


@pytest.mark.parametrize(("what", "key"), BAD_KEYS, ids=[k[0] for k in BAD_KEYS])
def test_a_bad_business_key_is_refused_where_it_is_given(
    url: str, engine: Engine, what: str, key: Any
) -> None:
    engine.instances.start("docs", business_key="D-1")
    refused(url, lambda: engine.instances.start("review", business_key=key), "business_key")
    refused(
        url,
        lambda: engine.messages.correlate("docs_in", business_key=key, data={"n": 1}),
        "business_key",
    )
    # As a filter it matches nothing; no error reaches the caller.
    assert engine.instances.list(business_key=key) == []
    assert engine.tasks.query(business_key=key) == []


def test_a_business_key_of_255_printable_characters_is_accepted(url: str, engine: Engine) -> None:
    key = "Kredit-Zürich " + "9" * 241
    assert len(key) == 255
    started = engine.instances.start("review", business_key=key)
    assert [i.id for i in engine.instances.list(business_key=key)] == [started.id]
    assert [t.instance_id for t in engine.tasks.query(business_key=key)] == [started.id]
    refused(url, lambda: engine.instances.start("review", business_key=key + "9"), "business_key")


# -- ids ---------------------------------------------------------------------------------------

BAD_IDS = [
    ("lone surrogate", "\ud800"),
    ("NUL", "0" * 35 + "\x00"),
    ("10 MB", "a" * 10_000_000),
    ("upper case", "0E7A4F3C-1D2B-4C5D-8E9F-0A1B2C3D4E5F"),
    ("not text", 42),
    ("empty", ""),
]


@pytest.mark.parametrize(("what", "bad"), BAD_IDS, ids=[b[0] for b in BAD_IDS])
def test_an_id_that_cannot_be_one_is_not_found_before_any_query(
    url: str, engine: Engine, what: str, bad: Any
) -> None:
    calls: list[Callable[[], Any]] = [
        lambda: engine.instances.get(bad),
        lambda: engine.instances.cancel(bad),
        lambda: engine.instances.retry(bad),
        lambda: engine.history.for_instance(bad),
        lambda: engine.tasks.get(bad),
        lambda: engine.tasks.form(bad),
        lambda: engine.tasks.data(bad),
        lambda: engine.tasks.claim(bad, user="ann", groups=RISK),
        lambda: engine.tasks.unclaim(bad, user="ann"),
        lambda: engine.tasks.delegate(bad, user="ann", to_user="bob", groups=RISK),
        lambda: engine.tasks.complete(bad, user="ann", groups=RISK),
        lambda: engine.jobs.get(bad),
        lambda: engine.jobs.reset(bad),
        lambda: engine.incidents.get(bad),
        lambda: engine.incidents.retry(bad),
    ]
    before = stored(url)
    for call in calls:
        with pytest.raises(NotFound) as caught:
            call()
        assert len(str(caught.value)) < 200  # the message does not carry a 10 MB id
    assert stored(url) == before
    # As a filter it matches nothing.
    assert engine.tasks.query(instance_id=bad) == []
    assert engine.jobs.list(instance_id=bad) == []


# -- pages -------------------------------------------------------------------------------------

BAD_PAGES = [
    ({"limit": -1}, "limit"),
    ({"limit": 10_001}, "limit"),
    ({"limit": 2**63}, "limit"),
    ({"limit": True}, "limit"),
    ({"limit": 1.5}, "limit"),
    ({"offset": -1}, "offset"),
    ({"offset": 2**63}, "offset"),
]


@pytest.mark.parametrize(
    ("page", "field"), BAD_PAGES, ids=[f"{k}={v}" for (p, _) in BAD_PAGES for k, v in p.items()]
)
def test_limit_and_offset_out_of_range_are_refused_by_every_listing(
    url: str, engine: Engine, page: dict[str, Any], field: str
) -> None:
    started = engine.instances.start("review", user="ann")
    listings: list[Callable[..., Any]] = [
        engine.instances.list,
        engine.tasks.query,
        lambda **p: engine.history.for_instance(started.id, **p),
        lambda **p: engine.history.for_actor("ann", **p),
        engine.jobs.list,
    ]
    for listing in listings:
        refused(url, lambda listing=listing: listing(**page), field)
    if "offset" not in page:
        refused(url, lambda: engine.incidents.list(**page), field)


def test_the_largest_page_is_accepted(url: str, engine: Engine) -> None:
    started = engine.instances.start("review", user="ann")
    assert [i.id for i in engine.instances.list(limit=10_000, offset=0)] == [started.id]
    assert len(engine.tasks.query(limit=10_000)) == 1
    events = engine.history.for_instance(started.id, limit=10_000)
    assert events[0].type == "instance_started"
    assert engine.history.for_actor("ann", limit=10_000, offset=len(events)) == []
    assert engine.jobs.list(limit=10_000, offset=2**31 - 1) == []
    assert engine.incidents.list(limit=10_000) == []
    assert engine.instances.list(limit=0) == []
    refused(url, lambda: engine.instances.list(limit=10_001), "limit")


# -- the same value, the same answer on both databases ----------------------------------------


def test_what_one_database_took_and_the_other_refused_is_refused_on_both(
    url: str, engine: Engine
) -> None:
    """SQLite stored these and PostgreSQL raised (or both raised a raw driver error)."""
    outcomes: dict[str, type[Exception] | None] = {}
    cases: dict[str, Callable[[], Any]] = {
        "NaN in data": lambda: engine.instances.start("review", data={"rate": float("nan")}),
        "NUL in a data key": lambda: engine.instances.start("review", data={"a\x00": 1}),
        "NUL in a business key": lambda: engine.instances.start("review", business_key="B\x00"),
        "10,000-character business key": lambda: engine.instances.start(
            "review", business_key="B" * 10_000
        ),
        "lone surrogate in a business key": lambda: engine.instances.start(
            "review", business_key="B\ud800"
        ),
        "10,000-character user": lambda: engine.instances.start("review", user="u" * 10_000),
        "NUL in a user": lambda: engine.instances.start("review", user="ann\x00"),
        "negative limit": lambda: engine.instances.list(limit=-1),
        "unknown status": lambda: engine.instances.list(status="stuck"),
        "lone surrogate in an id": lambda: engine.instances.get("\ud800"),
        "lone surrogate in a message name": lambda: engine.messages.correlate("m\ud800"),
        "lone surrogate in a process key": lambda: engine.instances.start("rev\ud800"),
    }
    before = stored(url)
    for name, call in cases.items():
        try:
            call()
        except Exception as exc:  # the type is what is compared
            outcomes[name] = type(exc)
        else:
            outcomes[name] = None
    assert stored(url) == before
    assert outcomes == {
        "NaN in data": InvalidData,
        "NUL in a data key": InvalidData,
        "NUL in a business key": InvalidData,
        "10,000-character business key": InvalidData,
        "lone surrogate in a business key": InvalidData,
        "10,000-character user": InvalidData,
        "NUL in a user": InvalidData,
        "negative limit": InvalidData,
        "unknown status": InvalidData,
        "lone surrogate in an id": NotFound,
        "lone surrogate in a message name": InvalidData,
        "lone surrogate in a process key": NotFound,
    }


def test_users_and_names_given_to_act_are_checked(url: str, engine: Engine) -> None:
    started = engine.instances.start("review")
    [task] = started.tasks
    for user in ("", "ann\x00", "u" * 256, "ann\ud800"):
        refused(url, lambda user=user: engine.tasks.claim(task.id, user=user, groups=RISK), "user")
        refused(
            url,
            lambda user=user: engine.tasks.complete(task.id, user=user, groups=RISK),
            "user",
        )
        refused(url, lambda user=user: engine.instances.cancel(started.id, user=user), "user")
        refused(
            url,
            lambda user=user: engine.tasks.delegate(task.id, user="ann", to_user=user, groups=RISK),
            "to_user",
        )
    refused(url, lambda: engine.instances.cancel(started.id, reason="x" * 100_001), "reason")
    refused(url, lambda: engine.instances.cancel(started.id, reason="a\x00"), "reason")
    # Filters by a name no one can have match nothing.
    assert engine.tasks.query(groups=["risk\x00"]) == []
    assert engine.tasks.query(candidate_user="\ud800", assignee=None) == []
    assert [t.id for t in engine.tasks.query(groups=["risk", "x\x00"])] == [task.id]
    assert engine.history.for_actor("ann\x00") == []
    assert engine.instances.list(process_key="rev\x00iew") == []
    assert engine.jobs.list(kind="timer\x00") == []
    assert engine.incidents.list(process_key="\ud800") == []


def test_an_error_message_no_database_could_store_is_stored_cleaned(url: str) -> None:
    """A handler's exception text (or a remote worker's ``error_message``) is the engine's
    to store: NUL and lone surrogates are replaced and a huge one is cut, so the job
    fails visibly instead of failing to record its failure on PostgreSQL."""

    def broken(_data: dict[str, Any]) -> Any:
        raise RuntimeError("core banking said \x00\ud800" + "!" * 1_000_000)

    with Engine(url, cache_size=0) as engine:
        started = engine.instances.start("letter")
        engine.services.register("SendLetter", broken)
        [outcome] = engine.jobs.run_due().outcomes
        assert outcome.result == "retry"
        [job] = engine.jobs.list(instance_id=started.id)
        assert job.last_error is not None
        assert job.last_error.startswith("service 'SendLetter' failed: RuntimeError: core banking")
        assert "\x00" not in job.last_error
        assert len(job.last_error) <= 10_000
        job.last_error.encode()  # no lone surrogate left
        engine.instances.start("kyc")
        [external] = engine.external.fetch_and_lock(["limits.kyc"], worker_id="w1")
        assert (
            engine.external.fail(
                external.id, worker_id="w1", error_message="down\x00\udc00", retries=2
            )
            == "retry"
        )
        assert engine.jobs.get(external.id).last_error == "down\N{REPLACEMENT CHARACTER}?"


def test_every_refusal_is_a_bankflow_error(url: str, engine: Engine) -> None:
    """Bad input of every kind at the Python API: never a raw exception."""
    started = engine.instances.start("review")
    [task] = started.tasks
    calls: list[Callable[[], Any]] = [
        lambda: engine.instances.start("review", version=0),
        lambda: engine.instances.start("review", version=2**63),
        lambda: engine.instances.start("review", version="1"),
        lambda: engine.instances.start("review", data=[1, 2]),
        lambda: engine.instances.list(status="\x00"),
        lambda: engine.tasks.query(order="random"),
        lambda: engine.tasks.query(groups="risk"),
        lambda: engine.tasks.query(groups=[f"g{i}" for i in range(1_001)]),
        lambda: engine.tasks.query(due_before="tomorrow"),
        lambda: engine.jobs.list(due_before=5),
        lambda: engine.jobs.run_due(batch=0),
        lambda: engine.jobs.run_due(limit=-1),
        lambda: engine.tasks.complete(task.id, user="ann", groups=RISK, data="x"),
        lambda: engine.messages.correlate("", business_key="B"),
        lambda: engine.messages.correlate("docs_in", correlation={"x": float("inf")}),
    ]
    for call in calls:
        with pytest.raises(BankflowError):
            call()
