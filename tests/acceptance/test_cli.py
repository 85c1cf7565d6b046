"""The ``bankflow`` console script driven as a subprocess, as an operator or CI job runs it:
exit codes, diagnostics in ``file:line: element: rule: message (severity)`` form, JSON
output, versioning by content, and one-line errors without a traceback."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BANKFLOW = Path(sys.executable).parent / "bankflow"
DIAGNOSTIC_LINE = re.compile(r"^[^:]+:\d+: \S+: [a-z-]+: .+ \((error|warning)\)$")
DIAGNOSTIC_KEYS = {"file", "line", "element_id", "rule", "message", "severity"}
UNREACHABLE_PG = "postgresql+psycopg://nobody@127.0.0.1:1/none"

pytestmark = pytest.mark.skipif(not BANKFLOW.exists(), reason=f"no console script at {BANKFLOW}")


def bpmn(name: str = "Loan application") -> str:
    """start -> user task in the Risk lane for the ``risk`` group -> end, all named."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn"
    id="defs_loan" targetNamespace="http://bank.example/bpmn">
  <bpmn:process id="loan" name="{name}" isExecutable="true">
    <bpmn:laneSet id="lanes">
      <bpmn:lane id="lane_risk" name="Risk">
        <bpmn:flowNodeRef>start</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>review</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>end</bpmn:flowNodeRef>
      </bpmn:lane>
    </bpmn:laneSet>
    <bpmn:startEvent id="start" name="Application received"/>
    <bpmn:userTask id="review" name="Review application" camunda:candidateGroups="risk"/>
    <bpmn:endEvent id="end" name="Reviewed"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="review"/>
    <bpmn:sequenceFlow id="f2" sourceRef="review" targetRef="end"/>
  </bpmn:process>
</bpmn:definitions>
"""


def broken_bpmn() -> str:
    """The good file with the user task left unclosed: not well-formed."""
    return bpmn().replace('camunda:candidateGroups="risk"/>', 'camunda:candidateGroups="risk">')


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def run(
    *args: str | Path, db: str | None, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``bankflow [--db DB] ARGS`` in ``cwd``; ``env`` adds to the current environment,
    from which ``BANKFLOW_DATABASE_URL`` is removed unless ``env`` sets it."""
    environment = {k: v for k, v in os.environ.items() if k != "BANKFLOW_DATABASE_URL"}
    environment.update(env or {})
    command = [str(BANKFLOW), *(["--db", db] if db is not None else []), *map(str, args)]
    return subprocess.run(
        command,
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=120,
        check=False,
    )


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stdout + result.stderr, result.stderr


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(result.stdout)


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/cli.db"


@pytest.fixture
def good(tmp_path: Path) -> Path:
    return write(tmp_path / "loan.bpmn", bpmn())


@pytest.fixture
def bad(tmp_path: Path) -> Path:
    return write(tmp_path / "broken.bpmn", broken_bpmn())


def test_validate_good_file(tmp_path: Path, db: str, good: Path) -> None:
    result = run("validate", good, db=db, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert lines(result.stdout)[-1] == "1 file(s): 0 error(s), 0 warning(s): ok"
    assert f"checking {good}" in result.stderr  # progress goes to stderr, not stdout
    no_traceback(result)


def test_validate_bad_file(tmp_path: Path, db: str, good: Path, bad: Path) -> None:
    result = run("validate", good, bad, db=db, cwd=tmp_path)
    assert result.returncode == 1
    *diagnostics, summary = lines(result.stdout)
    assert summary == "2 file(s): 1 error(s), 0 warning(s): failed"
    assert diagnostics
    for line in diagnostics:
        assert DIAGNOSTIC_LINE.match(line), line
    [error] = diagnostics
    assert error.startswith(f"{bad}:")
    assert ": -: xml: not well-formed XML: " in error
    assert error.endswith(" (error)")
    no_traceback(result)


def test_validate_json(tmp_path: Path, db: str, good: Path, bad: Path) -> None:
    result = run("validate", "--json", good, bad, db=db, cwd=tmp_path)
    assert result.returncode == 1
    report = as_json(result)
    assert set(report) == {"ok", "files", "errors", "warnings", "diagnostics"}
    assert report["ok"] is False
    assert sorted(report["files"]) == sorted([str(good), str(bad)])
    assert (report["errors"], report["warnings"]) == (1, 0)
    [diagnostic] = report["diagnostics"]
    assert set(diagnostic) == DIAGNOSTIC_KEYS
    assert diagnostic["file"] == str(bad)
    assert isinstance(diagnostic["line"], int)
    assert (diagnostic["rule"], diagnostic["severity"]) == ("xml", "error")
    # --json prints no progress: stderr is only the error object every failing --json call
    # ends with (docs/cli.md)
    [error_line] = result.stderr.splitlines()
    assert json.loads(error_line)["error"]["type"] == "DefinitionError"

    clean_run = run("validate", "--json", good, db=db, cwd=tmp_path)
    assert clean_run.stderr == ""
    clean = as_json(clean_run)
    assert (clean["ok"], clean["errors"], clean["diagnostics"]) == (True, 0, [])


def test_deploy_twice_then_changed_content(tmp_path: Path, db: str, good: Path) -> None:
    first = run("deploy", good, db=db, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert re.search(r"^deployment [0-9a-f-]{36}$", first.stdout, re.MULTILINE)
    assert "loan.bpmn" in first.stdout

    again = run("deploy", good, db=db, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert lines(again.stdout)[-1] == (
        "nothing changed: every process and decision in these files was already deployed "
        "with identical content"
    )
    listed = as_json(run("definitions", "--json", db=db, cwd=tmp_path))
    assert [(d["key"], d["version"], d["name"]) for d in listed] == [
        ("loan", 1, "Loan application")
    ]

    write(good, bpmn(name="Loan application v2"))
    changed = run("deploy", "--json", good, db=db, cwd=tmp_path)
    assert changed.returncode == 0, changed.stderr
    outcome = as_json(changed)
    assert (outcome["ok"], outcome["created"]) == (True, True)
    assert [(p["key"], p["version"]) for p in outcome["processes"]] == [("loan", 2)]
    listed = as_json(run("definitions", "--json", db=db, cwd=tmp_path))
    assert [(d["version"], d["name"]) for d in listed] == [
        (1, "Loan application"),
        (2, "Loan application v2"),
    ]
    latest = as_json(run("definitions", "--json", "--latest", db=db, cwd=tmp_path))
    assert [d["version"] for d in latest] == [2]


def test_deploy_missing_path(tmp_path: Path, db: str) -> None:
    missing = tmp_path / "nowhere.bpmn"
    result = run("deploy", missing, db=db, cwd=tmp_path)
    assert result.returncode == 1
    errors = [line for line in lines(result.stderr) if line.startswith("error:")]
    assert errors == [f"error: deployment refused: 1 error(s) in {missing}"]
    assert f"{missing}: -: file: no such file or directory (error)" in lines(result.stderr)
    assert result.stdout == ""
    no_traceback(result)
    assert as_json(run("definitions", "--json", db=db, cwd=tmp_path)) == []


def test_deploy_json_failure(tmp_path: Path, db: str, good: Path, bad: Path) -> None:
    result = run("deploy", "--json", good, bad, db=db, cwd=tmp_path)
    assert result.returncode == 1
    outcome = as_json(result)
    assert outcome["ok"] is False
    assert outcome["error"] == f"deployment refused: 1 error(s) in {bad}"
    [diagnostic] = outcome["diagnostics"]
    assert set(diagnostic) == DIAGNOSTIC_KEYS
    assert (diagnostic["file"], diagnostic["rule"]) == (str(bad), "xml")
    no_traceback(result)
    assert as_json(run("definitions", "--json", db=db, cwd=tmp_path)) == []


def test_unreachable_database(tmp_path: Path, good: Path) -> None:
    result = run("deploy", good, db=UNREACHABLE_PG, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    no_traceback(result)
    [first, *rest] = lines(result.stderr)
    assert first.startswith("error: cannot open database postgresql+psycopg://nobody@127.0.0.1:1")
    assert len(rest) <= 2  # the driver's hint ("Is the server running ...?") at most


def test_garbage_database_url(tmp_path: Path) -> None:
    result = run("definitions", db="notadb://", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    no_traceback(result)
    [line] = lines(result.stderr)
    assert line.startswith("error: cannot use database URL 'notadb://'")


def test_db_upgrade_on_a_fresh_sqlite_file(tmp_path: Path) -> None:
    file = tmp_path / "fresh.db"
    result = run("db", "upgrade", db=f"sqlite:///{file}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert lines(result.stdout) == [f"database sqlite:///{file} is at the latest schema"]
    assert file.is_file()
    again = run("db", "upgrade", db=f"sqlite:///{file}", cwd=tmp_path)
    assert again.returncode == 0, again.stderr


def test_database_url_from_the_environment(tmp_path: Path, good: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    env_db = tmp_path / "from-env.db"
    env = {"BANKFLOW_DATABASE_URL": f"sqlite:///{env_db}"}
    result = run("deploy", good, db=None, cwd=work, env=env)
    assert result.returncode == 0, result.stderr
    assert env_db.is_file()
    assert not (work / "bankflow.db").exists()  # the default was not used
    listed = as_json(run("definitions", "--json", db=f"sqlite:///{env_db}", cwd=work))
    assert [(d["key"], d["version"]) for d in listed] == [("loan", 1)]
    # --db wins over the environment.
    other = tmp_path / "other.db"
    overridden = run("definitions", "--json", db=f"sqlite:///{other}", cwd=work, env=env)
    assert as_json(overridden) == []


def test_postgres_upgrade_deploy_and_list(tmp_path: Path, pg_url: str, good: Path) -> None:
    before = run("deploy", good, db=pg_url, cwd=tmp_path)
    assert before.returncode == 1  # a server database is upgraded deliberately
    assert "db upgrade" in before.stderr
    no_traceback(before)

    upgraded = run("db", "upgrade", db=pg_url, cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "is at the latest schema" in upgraded.stdout

    deployed = run("deploy", "--json", good, db=pg_url, cwd=tmp_path)
    assert deployed.returncode == 0, deployed.stderr
    assert [(p["key"], p["version"]) for p in as_json(deployed)["processes"]] == [("loan", 1)]
    listed = as_json(run("definitions", "--json", db=pg_url, cwd=tmp_path))
    assert [(d["key"], d["version"], d["resource_name"]) for d in listed] == [
        ("loan", 1, "loan.bpmn")
    ]
