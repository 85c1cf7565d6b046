"""The contract a script relies on, with the real ``bankflow`` console script on SQLite and
PostgreSQL: ``--version``; under ``--json`` every failure is exactly one JSON object on
stderr (``{"error": {"type", "message", ...}}``) with the documented exit code (1 refused,
2 bad usage) for every command, on an unknown id, a bogus option value and malformed
``--data``; ``--group a,b`` = ``--group a --group b`` = ``--groups a,b``; a Decimal comes
back with exactly its digits, as a JSON number.

One database per backend serves the whole module: every case below changes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

BANKFLOW = Path(sys.executable).parent / "bankflow"
BACKENDS = ("sqlite", "postgres")
UNKNOWN = "00000000-0000-4000-8000-000000000000"  # well formed, never issued

pytestmark = pytest.mark.skipif(not BANKFLOW.exists(), reason=f"no console script at {BANKFLOW}")

PROCESSES = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="defs" targetNamespace="t">
  <bpmn:process id="contract_review" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="review"/>
    <bpmn:userTask id="review" camunda:candidateGroups="risk,audit"/>
    <bpmn:sequenceFlow id="f2" sourceRef="review" targetRef="done"/>
    <bpmn:endEvent id="done"/>
  </bpmn:process>
  <bpmn:process id="contract_bureau" isExecutable="true">
    <bpmn:startEvent id="b_start"/>
    <bpmn:sequenceFlow id="b1" sourceRef="b_start" targetRef="bureau"/>
    <bpmn:serviceTask id="bureau" camunda:type="external" camunda:topic="credit-bureau"/>
    <bpmn:sequenceFlow id="b2" sourceRef="bureau" targetRef="b_done"/>
    <bpmn:endEvent id="b_done"/>
  </bpmn:process>
  <bpmn:process id="contract_divide" isExecutable="true">
    <bpmn:startEvent id="d_start"/>
    <bpmn:sequenceFlow id="d1" sourceRef="d_start" targetRef="divide"/>
    <bpmn:scriptTask id="divide" scriptFormat="python">
      <bpmn:script>ratio = 10 / divisor</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:sequenceFlow id="d2" sourceRef="divide" targetRef="d_done"/>
    <bpmn:endEvent id="d_done"/>
  </bpmn:process>
</bpmn:definitions>
"""

DECISION = """<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/" id="d" name="d"
    namespace="t">
  <decision id="fee" name="Fee">
    <decisionTable id="t" hitPolicy="FIRST">
      <input id="i1"><inputExpression id="e1" typeRef="number"><text>amount</text>
      </inputExpression></input>
      <output id="o1" name="fee" typeRef="number"/>
      <rule id="r1"><inputEntry id="u1"><text>&gt;= 0</text></inputEntry>
        <outputEntry id="v1"><text>1.10</text></outputEntry></rule>
    </decisionTable>
  </decision>
</definitions>
"""

# Money with digits a float would lose or a string would hide.
AMOUNT = "12345678901234567890.10"


@dataclass
class Setup:
    db: str
    dir: Path
    task: str  # a waiting user task for the "risk" and "audit" groups
    external: str  # an external task locked by worker w1
    instance: str  # the review instance, started with AMOUNT
    failed: str  # an instance failed on a division by zero


def _run(setup_db: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "BANKFLOW_DATABASE_URL"}
    environment["COLUMNS"] = "200"
    return subprocess.run(
        [str(BANKFLOW), "--db", setup_db, *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        check=False,
    )


def _ok(db: str, cwd: Path, *args: str) -> str:
    result = _run(db, cwd, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module", params=BACKENDS, ids=BACKENDS)
def db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """One database per backend for the whole module."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('contract') / 'bankflow.db'}"
        return
    admin: sa.Engine = request.getfixturevalue("_pg_admin")  # tests/conftest.py
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
    work = tmp_path_factory.mktemp("cli-contract")
    (work / "contract.bpmn").write_text(PROCESSES, encoding="utf-8")
    (work / "fee.dmn").write_text(DECISION, encoding="utf-8")
    _ok(db_url, work, "db", "upgrade", "--json")
    _ok(db_url, work, "deploy", "-q", "contract.bpmn")
    with ThreadPoolExecutor(max_workers=3) as pool:
        review, _bureau, divide = pool.map(
            lambda args: _ok(db_url, work, *args),
            [
                ("start", "contract_review", "--data", f'{{"amount": {AMOUNT}}}', "--json"),
                ("start", "contract_bureau"),
                ("start", "contract_divide", "--data", '{"divisor": 0}', "--json"),
            ],
        )
    started, failed = json.loads(review), json.loads(divide)
    assert failed["status"] == "failed"
    [external] = json.loads(
        _ok(db_url, work, "external", "fetch", "credit-bureau", "--worker-id", "w1", "--json")
    )
    return Setup(
        db=db_url,
        dir=work,
        task=started["tasks"][0]["id"],
        external=external["id"],
        instance=started["id"],
        failed=failed["id"],
    )


# (exit code, error type, arguments): every case runs under --json. "{task}", "{external}"
# and "{instance}" are replaced by the setup's ids; UNKNOWN is an id nothing has.
U = UNKNOWN
EXT = ("--worker-id", "w1")
REFUSED: dict[str, tuple[int, str, tuple[str, ...]]] = {
    # an unknown id or key: refused, exit 1
    "show": (1, "NotFound", ("show", U)),
    "history": (1, "NotFound", ("history", U)),
    "cancel": (1, "NotFound", ("cancel", U)),
    "retry": (1, "NotFound", ("retry", U)),
    "claim": (1, "NotFound", ("claim", U, "--user", "anna")),
    "unclaim": (1, "NotFound", ("unclaim", U, "--user", "anna")),
    "delegate": (1, "NotFound", ("delegate", U, "--user", "anna", "--to", "bob")),
    "complete": (1, "NotFound", ("complete", U, "--user", "anna")),
    "start": (1, "NotFound", ("start", "no_such_process")),
    "tasks-instance": (1, "NotFound", ("tasks", "--instance", U)),
    "tasks-process": (1, "NotFound", ("tasks", "--process", "no_such_process")),
    "instances-process": (1, "NotFound", ("instances", "--process", "no_such_process")),
    "incidents-process": (1, "NotFound", ("incidents", "--process", "no_such_process")),
    "jobs-instance": (1, "NotFound", ("jobs", "--instance", U)),
    "definitions-key": (1, "NotFound", ("definitions", "--key", "no_such_process")),
    "message": (1, "CorrelationError", ("message", "no_such_message")),
    "external-complete": (1, "NotFound", ("external", "complete", U, *EXT)),
    "external-fail": (
        1,
        "NotFound",
        ("external", "fail", U, *EXT, "--error", "x", "--retries", "0"),
    ),
    "external-bpmn-error": (1, "NotFound", ("external", "bpmn-error", U, *EXT, "--code", "C")),
    "external-extend": (1, "NotFound", ("external", "extend", U, *EXT, "--seconds", "5")),
    "deploy-missing-file": (1, "DefinitionError", ("deploy", "missing.bpmn")),
    "validate-missing-file": (1, "DefinitionError", ("validate", "missing.bpmn")),
    # refused for another reason
    "claim-not-candidate": (
        1,
        "AccessDenied",
        ("claim", "{task}", "--user", "raj", "--group", "it"),
    ),
    "extend-not-the-owner": (
        1,
        "ConcurrencyError",
        ("external", "extend", "{external}", "--worker-id", "w2", "--seconds", "5"),
    ),
    "retry-still-failing": (1, "InvalidState", ("retry", "{failed}")),
}
# Bad usage, refused before a database is opened: exit 2, the same on every backend (so
# these run on SQLite only).
USAGE: dict[str, tuple[str, ...]] = {
    # a bogus option value, an unknown option or a missing one
    "validate": ("validate", "x.bpmn", "--bogus"),
    "deploy": ("deploy", "x.bpmn", "--bogus"),
    "definitions": ("definitions", "--bogus"),
    "tasks": ("tasks", "--limit", "-1"),
    "claim": ("claim", U),
    "unclaim": ("unclaim", U),
    "delegate": ("delegate", U, "--user", "anna"),
    "show": ("show",),
    "instances": ("instances", "--status", "bogus"),
    "history": ("history", U, "--actor", "anna"),
    "cancel": ("cancel", U, "--bogus"),
    "worker": ("worker", "--once", "--batch", "0"),
    "jobs": ("jobs", "--kind", "bogus"),
    "incidents": ("incidents", "--limit", "ten"),
    "db-upgrade": ("db", "upgrade", "--bogus"),
    "external-fetch": ("external", "fetch", "credit-bureau", *EXT, "--max", "-1"),
    "external-fail": ("external", "fail", U, *EXT, "--error", "x", "--retries", "-1"),
    "external-extend": ("external", "extend", U, *EXT, "--seconds", "nan"),
    # malformed --data, on every command that takes data
    "start": ("start", "contract_review", "--data", "{'a': 1}"),
    "complete": ("complete", U, "--user", "anna", "--data", "{"),
    "retry": ("retry", U, "--data", "[1]"),
    "message": ("message", "m", "--data", "nope"),
    "signal": ("signal", "s", "--data", '{"a": NaN}'),
    "decide": ("decide", "fee.dmn", "--data", "{"),
    "external-complete": ("external", "complete", U, *EXT, "--data", "{"),
    "external-bpmn-error": ("external", "bpmn-error", U, *EXT, "--code", "C", "--data", "1"),
}


def _arguments(setup: Setup, args: tuple[str, ...]) -> list[str]:
    ids = {
        "{task}": setup.task,
        "{external}": setup.external,
        "{instance}": setup.instance,
        "{failed}": setup.failed,
    }
    return [ids.get(a, a) for a in args]


def _one_json_error(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """stderr is exactly one line holding one JSON object ``{"error": {...}}``."""
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    [line] = result.stderr.splitlines()
    document = json.loads(line)
    assert list(document) == ["error"], document
    error = document["error"]
    assert isinstance(error["type"], str), error
    assert error["type"], error
    assert isinstance(error["message"], str), error
    assert error["message"], error
    assert "internal error" not in error["message"]
    return error  # type: ignore[no-any-return]


Result = subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def results(setup: Setup) -> dict[str, Result]:
    """Every case of both tables run once under --json, four at a time (each call costs
    most of a second of start-up); usage cases only on SQLite, since they are refused
    before a database is opened."""
    cases = {f"refused:{name}": args for name, (_code, _type, args) in REFUSED.items()}
    if setup.db.startswith("sqlite"):
        cases |= {f"usage:{name}": args for name, args in USAGE.items()}
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {
            key: pool.submit(_run, setup.db, setup.dir, *_arguments(setup, args), "--json")
            for key, args in cases.items()
        }
        return {key: future.result() for key, future in futures.items()}


@pytest.mark.parametrize("case", list(REFUSED), ids=list(REFUSED))
def test_refused_is_exit_1_and_one_json_error(results: dict[str, Result], case: str) -> None:
    code, error_type, _args = REFUSED[case]
    result = results[f"refused:{case}"]
    assert result.returncode == code, (result.returncode, result.stderr)
    error = _one_json_error(result)
    assert error["type"] == error_type, error
    if error_type == "NotFound":
        assert error["kind"], error
        assert error["key"], error


@pytest.mark.parametrize("case", list(USAGE), ids=list(USAGE))
def test_bad_usage_is_exit_2_and_one_json_error(
    setup: Setup, results: dict[str, Result], case: str
) -> None:
    if not setup.db.startswith("sqlite"):
        pytest.skip("refused before a database is opened: the same on every backend")
    result = results[f"usage:{case}"]
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert result.stdout == ""
    error = _one_json_error(result)
    assert error["type"] == "usage", error


def test_without_json_errors_stay_one_text_line(setup: Setup) -> None:
    result = _run(setup.db, setup.dir, "history", UNKNOWN)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"error: no instance {UNKNOWN}"]
    usage = _run(setup.db, setup.dir, "jobs", "--kind", "bogus")
    assert usage.returncode == 2
    [line] = usage.stderr.splitlines()
    assert line.startswith("error: --kind: must be one of")


def test_retry_still_failing_prints_the_instance_and_exits_1(
    setup: Setup, results: dict[str, Result]
) -> None:  # after the table, which retries the same instance
    result = _run(setup.db, setup.dir, "retry", setup.failed, "--json")
    assert result.returncode == 1
    shown = json.loads(result.stdout)
    assert shown["instance"]["status"] == "failed"
    error = _one_json_error(result)
    assert error["instance_id"] == setup.failed
    assert error["failure"]["element_id"] == "divide"


def test_version(setup: Setup) -> None:
    if not setup.db.startswith("sqlite"):
        pytest.skip("opens no database")
    from importlib.metadata import version

    import bankflow

    result = _run(setup.db, setup.dir, "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"bankflow {version('bankflow')}\n"
    assert bankflow.__version__ == version("bankflow")


def test_groups_are_one_repeatable_comma_separated_option(setup: Setup) -> None:
    def ids(*args: str) -> list[str]:
        return [t["id"] for t in json.loads(_ok(setup.db, setup.dir, "tasks", *args, "--json"))]

    assert ids("--group", "risk") == [setup.task]
    assert ids("--group", "nobody") == []
    comma = ids("--group", "nobody,risk")
    assert comma == [setup.task]
    assert ids("--group", "nobody", "--group", "risk") == comma
    assert ids("--groups", "nobody,risk") == comma
    # the acting user's groups on claim/unclaim take the same forms
    claimed = _ok(
        setup.db,
        setup.dir,
        "claim",
        setup.task,
        "--user",
        "anna",
        "--group",
        "it",
        "--group",
        "audit",
        "--json",
    )
    assert json.loads(claimed)["assignee"] == "anna"
    _ok(setup.db, setup.dir, "unclaim", setup.task, "--user", "anna", "--group", "it,audit")


def test_decimals_round_trip_exactly_as_json_numbers(setup: Setup) -> None:
    shown = _ok(setup.db, setup.dir, "show", setup.instance, "--json")
    assert f'"amount": {AMOUNT}' in shown  # a number, with its digits: not "..." nor 1.2e19
    data = json.loads(shown, parse_float=Decimal)["instance"]["data"]
    assert data["amount"] == Decimal(AMOUNT)
    assert str(data["amount"]) == AMOUNT
    decided = _ok(setup.db, setup.dir, "decide", "fee.dmn", "--data", '{"amount": 5}', "--json")
    assert '"fee": 1.10' in decided  # the table's literal, trailing zero and all
    assert json.loads(decided, parse_float=Decimal)["result"] == Decimal("1.10")


def test_any_unique_prefix_of_an_id_is_taken(setup: Setup) -> None:
    """As git takes a commit's: 4 characters or more; fewer is a typo, refused."""
    shown = json.loads(_ok(setup.db, setup.dir, "show", setup.instance[:8], "--json"))
    assert shown["instance"]["id"] == setup.instance
    extended = _ok(
        setup.db,
        setup.dir,
        "external",
        "extend",
        setup.external[:13],
        "--worker-id",
        "w1",
        "--seconds",
        "300",
        "--json",
    )
    assert json.loads(extended)["task_id"] == setup.external
    short = _run(setup.db, setup.dir, "history", setup.instance[:3], "--json")
    assert short.returncode == 1
    assert _one_json_error(short)["type"] == "NotFound"
