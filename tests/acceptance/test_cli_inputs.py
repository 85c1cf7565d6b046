"""Hostile input at the shell, on SQLite and on PostgreSQL: the ``bankflow`` console script
run as a subprocess with out-of-range numbers, NaN seconds, JSON numbers of thousands of
digits, files that are not UTF-8 and argv bytes that are not UTF-8 answers every one with
exactly one line on stderr and exit 2 (a usage error) or 1 (refused by the engine), never a
traceback, and leaves the database exactly as it was."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

BANKFLOW = Path(sys.executable).parent / "bankflow"
BACKENDS = ("sqlite", "postgres")

pytestmark = pytest.mark.skipif(not BANKFLOW.exists(), reason=f"no console script at {BANKFLOW}")

PROCESSES = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="defs" targetNamespace="t">
  <bpmn:process id="inputs_review" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="review"/>
    <bpmn:userTask id="review" camunda:candidateGroups="risk"/>
    <bpmn:sequenceFlow id="f2" sourceRef="review" targetRef="done"/>
    <bpmn:endEvent id="done"/>
  </bpmn:process>
  <bpmn:process id="inputs_bureau" isExecutable="true">
    <bpmn:startEvent id="b_start"/>
    <bpmn:sequenceFlow id="b1" sourceRef="b_start" targetRef="bureau"/>
    <bpmn:serviceTask id="bureau" camunda:type="external" camunda:topic="credit-bureau"/>
    <bpmn:sequenceFlow id="b2" sourceRef="bureau" targetRef="b_done"/>
    <bpmn:endEvent id="b_done"/>
  </bpmn:process>
</bpmn:definitions>
"""

HUGE_INT = "1" * 5000  # past Python's 4,300-digit int() limit, and the engine's 100 digits
DEEP = "[" * 100_000  # deeper than json.loads can recurse
LONG_ID = "u" * 300  # past the 255-character columns PostgreSQL enforces and SQLite ignores

Arg = str | bytes


@dataclass
class Setup:
    db: str
    dir: Path
    task: str  # a waiting user task for the "risk" group
    external: str  # an external task locked by worker w1
    instance: str


def _run(db: str, cwd: Path, *args: Arg) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "BANKFLOW_DATABASE_URL"}
    environment["COLUMNS"] = "200"
    return subprocess.run(
        [str(BANKFLOW), "--db", db, *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=120,
        check=False,
    )


def _ok(db: str, cwd: Path, *args: Arg) -> str:
    result = _run(db, cwd, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _plain(value: object) -> object:
    return bytes(value) if isinstance(value, memoryview) else value


def _fingerprint(db: str) -> str:
    """A hash of every row of every table: equal before and after means nothing changed."""
    engine = sa.create_engine(db, poolclass=NullPool)
    digest = hashlib.sha256()
    try:
        with engine.connect() as conn:
            for table in sorted(sa.inspect(conn).get_table_names()):
                rows = conn.execute(sa.text(f'SELECT * FROM "{table}"')).all()
                digest.update(table.encode())
                shown = (repr(tuple(_plain(v) for v in row)) for row in rows)
                for row in sorted(shown):
                    digest.update(row.encode("utf-8", "backslashreplace"))
    finally:
        engine.dispose()
    return digest.hexdigest()


@pytest.fixture(scope="module")
def _pg_server() -> Iterator[sa.Engine]:
    url = os.environ.get("BANKFLOW_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
            pytest.fail("BANKFLOW_TEST_POSTGRES_URL is not set; under CI it must be")
        pytest.skip("BANKFLOW_TEST_POSTGRES_URL is not set")
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    yield admin
    admin.dispose()


@pytest.fixture(scope="module", params=BACKENDS, ids=BACKENDS)
def db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """One database per backend for the whole module (each case changes nothing)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('inputs') / 'bankflow.db'}"
        return
    admin: sa.Engine = request.getfixturevalue("_pg_server")
    name = f"bf_test_{uuid.uuid4().hex}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def setup(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Setup:
    if not BANKFLOW.exists():
        pytest.skip(f"no console script at {BANKFLOW}")
    work = tmp_path_factory.mktemp("cli-inputs")
    (work / "inputs.bpmn").write_text(PROCESSES, encoding="utf-8")
    (work / "binary.json").write_bytes(b'{"name": "\xff\xfe caf\xe9"}')  # Latin-1, not UTF-8
    (work / "binary.dmn").write_bytes(bytes(range(256)) * 4)
    _ok(db_url, work, "db", "upgrade")
    _ok(db_url, work, "deploy", "-q", "inputs.bpmn")
    instance = _ok(db_url, work, "start", "inputs_review", "--business-key", "K-1").split()[0]
    _ok(db_url, work, "start", "inputs_bureau", "--business-key", "B-1")
    [task] = json.loads(_ok(db_url, work, "tasks", "--json"))
    [external] = json.loads(
        _ok(db_url, work, "external", "fetch", "credit-bureau", "--worker-id", "w1", "--json")
    )
    return Setup(db=db_url, dir=work, task=task["id"], external=external["id"], instance=instance)


# (exit code, text the line must hold, arguments); {task}, {external} and {instance} are
# replaced by the ids of the setup.
CASES: dict[str, tuple[int, str, tuple[Arg, ...]]] = {
    # limits and offsets
    "limit-past-int64": (2, "--limit", ("tasks", "--limit", "9223372036854775808")),
    "limit-negative": (2, "--limit", ("tasks", "--limit", "-1")),
    "limit-huge": (2, "--limit", ("instances", "--limit", "100000")),
    "limit-5000-digits": (2, "--limit", ("tasks", "--limit", HUGE_INT)),
    "offset-negative": (2, "--offset", ("tasks", "--offset", "-1")),
    "offset-past-int64": (2, "--offset", ("instances", "--offset", "9223372036854775808")),
    "jobs-limit-negative": (2, "--limit", ("jobs", "--limit", "-5")),
    "incidents-limit-huge": (2, "--limit", ("incidents", "--limit", "10001")),
    "version-zero": (2, "--version", ("start", "inputs_review", "--version", "0")),
    "version-past-int64": (
        2,
        "--version",
        ("start", "inputs_review", "--version", "9223372036854775808"),
    ),
    "not-a-number": (2, "--limit", ("tasks", "--limit", "ten")),
    # enums
    "job-kind": (2, "--kind", ("jobs", "--kind", "bogus")),
    "job-status": (2, "--status", ("jobs", "--status", "bogus")),
    "instance-status": (2, "--status", ("instances", "--status", "bogus")),
    "unknown-option": (2, "--bogus", ("tasks", "--bogus")),
    "empty-db-url": (2, "--db", ("--db", "", "tasks")),
    # seconds and times
    "worker-lock-nan": (2, "--lock-seconds", ("worker", "--once", "--lock-seconds", "nan")),
    "worker-lock-inf": (2, "--lock-seconds", ("worker", "--once", "--lock-seconds", "inf")),
    "worker-lock-negative": (2, "--lock-seconds", ("worker", "--once", "--lock-seconds", "-1")),
    "worker-poll-nan": (2, "--poll", ("worker", "--once", "--poll", "nan")),
    "worker-batch-zero": (2, "--batch", ("worker", "--once", "--batch", "0")),
    "worker-now-garbage": (2, "--now", ("worker", "--once", "--now", "next tuesday")),
    "worker-now-year-9999": (2, "--now", ("worker", "--once", "--now", "9999-12-31T23:59:59")),
    "fetch-lock-nan": (
        2,
        "--lock-seconds",
        ("external", "fetch", "credit-bureau", "--worker-id", "w2", "--lock-seconds", "nan"),
    ),
    "fetch-max-negative": (
        2,
        "--max",
        ("external", "fetch", "credit-bureau", "--worker-id", "w2", "--max", "-1"),
    ),
    "extend-negative": (
        2,
        "--seconds",
        ("external", "extend", "{external}", "--worker-id", "w1", "--seconds", "-3600"),
    ),
    "extend-nan": (
        2,
        "--seconds",
        ("external", "extend", "{external}", "--worker-id", "w1", "--seconds", "nan"),
    ),
    "extend-huge": (
        2,
        "--seconds",
        ("external", "extend", "{external}", "--worker-id", "w1", "--seconds", "1e300"),
    ),
    "fail-retries-huge": (
        2,
        "--retries",
        (
            "external",
            "fail",
            "{external}",
            "--worker-id",
            "w1",
            "--error",
            "x",
            "--retries",
            "99999999999",
        ),
    ),
    "fail-retry-seconds-inf": (
        2,
        "--retry-seconds",
        (
            "external",
            "fail",
            "{external}",
            "--worker-id",
            "w1",
            "--error",
            "x",
            "--retries",
            "1",
            "--retry-seconds",
            "inf",
        ),
    ),
    # JSON data
    "data-file-not-utf8": (2, "binary.json", ("start", "inputs_review", "--data", "@binary.json")),
    "data-file-missing": (2, "missing.json", ("start", "inputs_review", "--data", "@missing.json")),
    "data-huge-integer": (
        2,
        "--data",
        ("start", "inputs_review", "--data", f'{{"amount": {HUGE_INT}}}'),
    ),
    "data-long-fraction": (
        2,
        "--data",
        ("start", "inputs_review", "--data", '{"amount": 0.' + "1" * 200 + "}"),
    ),
    "data-huge-exponent": (2, "--data", ("start", "inputs_review", "--data", '{"a": 1e999999}')),
    "data-nan": (2, "NaN", ("start", "inputs_review", "--data", '{"amount": NaN}')),
    "data-infinity": (2, "Infinity", ("start", "inputs_review", "--data", '{"a": -Infinity}')),
    "data-lone-surrogate": (2, "UTF-8", ("start", "inputs_review", "--data", '{"a": "\\ud800"}')),
    "data-deep": (2, "--data", ("start", "inputs_review", "--data", DEEP)),
    "data-not-object": (2, "--data", ("start", "inputs_review", "--data", "[1, 2]")),
    "data-not-json": (2, "--data", ("start", "inputs_review", "--data", "{'a': 1}")),
    "complete-data-nan": (
        2,
        "--data",
        ("complete", "{task}", "--user", "anna", "--groups", "risk", "--data", '{"a": NaN}'),
    ),
    "correlation-huge-integer": (
        2,
        "--correlation",
        ("message", "m", "--correlation", f'{{"a": {HUGE_INT}}}'),
    ),
    "external-result-exponent": (
        2,
        "--data",
        ("external", "complete", "{external}", "--worker-id", "w1", "--data", '{"s": 1E400}'),
    ),
    "decide-binary-file": (2, "binary.dmn", ("decide", "binary.dmn", "--data", "{}")),
    # text that is not UTF-8: argv bytes reach Python as lone surrogates
    "argv-process-key": (2, "PROCESS_KEY", ("start", b"loan\xff")),
    "argv-business-key": (
        2,
        "--business-key",
        ("start", "inputs_review", "--business-key", b"K-\xed\xa0\x80"),
    ),
    "argv-instance-id": (2, "INSTANCE_ID", ("show", b"\xff\xfe")),
    "argv-user": (2, "--user", ("claim", "{task}", "--user", b"ann\xe9", "--groups", "risk")),
    "argv-data": (2, "--data", ("start", "inputs_review", "--data", b'{"n": "caf\xe9"}')),
    "argv-data-file-name": (2, "--data", ("start", "inputs_review", "--data", b"@\xff.json")),
    "argv-option=value": (2, "--business-key", ("start", "inputs_review", b"--business-key=\xff")),
    # stored ids past the column size PostgreSQL enforces
    "user-too-long": (2, "--user", ("start", "inputs_review", "--user", LONG_ID)),
    "worker-id-too-long": (
        2,
        "--worker-id",
        ("external", "fetch", "credit-bureau", "--worker-id", LONG_ID),
    ),
    # refused by the engine: exit 1
    "no-such-instance": (1, "no instance", ("show", "no-such-id")),
    "id-with-newline": (1, "no instance", ("show", "line one\nline two")),
    "not-a-candidate": (1, "may not", ("claim", "{task}", "--user", "raj", "--groups", "it")),
    "lock-held-by-other": (
        1,
        "not locked by",
        ("external", "extend", "{external}", "--worker-id", "w2", "--seconds", "60"),
    ),
}


# The line each case printed on the backend that ran first: the other must print the same.
FIRST_LINES: dict[str, tuple[str, str]] = {}


def _arguments(setup: Setup, args: tuple[Arg, ...]) -> list[Arg]:
    ids = {"{task}": setup.task, "{external}": setup.external, "{instance}": setup.instance}
    return [ids.get(a, a) if isinstance(a, str) else a for a in args]


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_bad_input_is_one_line_and_changes_nothing(setup: Setup, case: str) -> None:
    code, mentioned, args = CASES[case]
    before = _fingerprint(setup.db)
    result = _run(setup.db, setup.dir, *_arguments(setup, args))
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    assert result.returncode == code, (result.returncode, result.stderr)
    [line] = result.stderr.splitlines()  # exactly one line, nothing else
    assert line.startswith("error: "), line
    assert mentioned in line, line
    assert "internal error" not in line
    assert result.stdout == ""
    assert _fingerprint(setup.db) == before
    for placeholder, value in (("{task}", setup.task), ("{external}", setup.external)):
        line = line.replace(value, placeholder)
    backend = "sqlite" if setup.db.startswith("sqlite") else "postgres"
    first_backend, first_line = FIRST_LINES.setdefault(case, (backend, line))
    assert line == first_line, f"{backend} printed {line!r}, {first_backend} {first_line!r}"


def test_a_good_call_still_works(setup: Setup) -> None:
    """The checks refuse only what is wrong: the limits' edges are accepted."""
    listed = _ok(setup.db, setup.dir, "tasks", "--limit", "10000", "--offset", "0", "--json")
    assert [t["id"] for t in json.loads(listed)] == [setup.task]
    extended = _ok(
        setup.db,
        setup.dir,
        "external",
        "extend",
        setup.external,
        "--worker-id",
        "w1",
        "--seconds",
        "0.5",
    )
    assert "locked until" in extended


def test_internal_errors_are_one_line_unless_debugging(tmp_path: Path) -> None:
    """A bug (planted here: opening the engine raises ZeroDivisionError) is one line
    naming it and asking for a report; BANKFLOW_DEBUG=1 lets the traceback through."""
    script = (
        "import sys\n"
        "from bankflow import cli\n"
        "from bankflow.cli import _common\n"
        "def boom(*args, **kwargs):\n"
        "    raise ZeroDivisionError('planted')\n"
        "_common.Engine = boom\n"
        "sys.exit(cli.main(sys.argv[1:]))\n"
    )
    for debug, expect_traceback in (("", False), ("1", True)):
        env = {**os.environ, "BANKFLOW_DEBUG": debug}
        result = subprocess.run(
            [sys.executable, "-c", script, "--db", f"sqlite:///{tmp_path}/x.db", "tasks"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env=env,
        )
        assert result.returncode == 1
        if expect_traceback:
            assert "Traceback" in result.stderr
            assert "ZeroDivisionError: planted" in result.stderr
        else:
            [line] = result.stderr.splitlines()
            assert line.startswith("error: internal error: ZeroDivisionError: planted")
            assert "please report" in line
