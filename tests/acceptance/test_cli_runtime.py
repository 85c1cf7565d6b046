"""The runtime CLI driven as a subprocess: start, tasks, claim, complete, show, instances,
history; errors are one line with a non-zero exit and never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BANKFLOW = Path(sys.executable).parent / "bankflow"


@pytest.fixture
def cli(db_url: str) -> object:
    if not BANKFLOW.exists():
        pytest.skip("the bankflow console script is not installed next to this Python")

    def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(BANKFLOW), "--db", db_url, *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={**os.environ, "COLUMNS": "200"},
        )
        assert "Traceback" not in result.stdout + result.stderr, result.stderr
        if ok:
            assert result.returncode == 0, result.stderr
        return result

    run("db", "upgrade")
    run(
        "deploy",
        "-q",
        str(ROOT / "processes" / "loan_approval.bpmn"),
        str(ROOT / "processes" / "loan_precheck.dmn"),
    )
    return run


def test_loan_through_the_cli(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    started = cli("start", "loan_approval", "--business-key", "CLI-1", "--user", "portal")
    instance_id = started.stdout.splitlines()[0].strip()
    tasks = json.loads(cli("tasks", "--group", "customer-service", "--json").stdout)
    assert [(t["element_id"], t["business_key"]) for t in tasks] == [
        ("capture_application", "CLI-1")
    ]
    task_id = tasks[0]["id"]
    denied = cli("claim", task_id, "--user", "raj", "--groups", "risk", ok=False)
    assert denied.returncode == 1
    assert denied.stderr.strip().startswith("error: raj may not claim")
    assert len(denied.stderr.strip().splitlines()) == 1
    cli("claim", task_id, "--user", "anna", "--groups", "customer-service")
    answers = tmp_path / "answers.json"
    answers.write_text(
        json.dumps({"applicant_name": "Ada", "amount": 8000, "term_months": 60, "purpose": "car"})
    )
    bad = cli(
        "complete",
        task_id,
        "--user",
        "anna",
        "--groups",
        "customer-service",
        "--data",
        '{"amount": "many"}',
        ok=False,
    )
    assert bad.returncode == 1
    assert "amount" in bad.stderr
    assert "applicant_name" in bad.stderr
    done = json.loads(
        cli(
            "complete",
            task_id,
            "--user",
            "anna",
            "--groups",
            "customer-service",
            "--data",
            f"@{answers}",
            "--json",
        ).stdout
    )
    assert [t["element_id"] for t in done["tasks"]] == ["assess_risk"]
    shown = json.loads(cli("show", instance_id, "--json").stdout)
    assert shown["instance"]["status"] == "running"
    assert [e["type"] for e in shown["history"]][:4] == [
        "instance_started",
        "task_created",
        "task_claimed",
        "task_completed",
    ]
    human = cli("show", instance_id).stdout
    assert "Assess risk" in human
    assert "task_completed" in human
    listed = json.loads(cli("instances", "--status", "running", "--json").stdout)
    assert [i["id"] for i in listed] == [instance_id]
    history = json.loads(cli("history", "--actor", "anna", "--json").stdout)
    assert [e["type"] for e in history] == ["task_claimed", "task_completed"]


def test_cli_errors_are_one_line(cli) -> None:  # type: ignore[no-untyped-def]
    cases = [
        ("start", "no_such_process"),
        ("show", "no-such-instance"),
        ("complete", "no-such-task", "--user", "x"),
    ]
    for args in cases:
        result = cli(*args, ok=False)
        assert result.returncode == 1, args
        assert result.stderr.startswith("error: "), result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    started = cli("start", "loan_approval", "--business-key", "DUP")
    assert started.returncode == 0
    duplicate = cli("start", "loan_approval", "--business-key", "DUP", ok=False)
    assert "already has an instance with business key 'DUP'" in duplicate.stderr
    not_json = cli("start", "loan_approval", "--data", "{nope", ok=False)
    assert not_json.returncode == 2
    assert "not valid JSON" in not_json.stderr


def test_decide_prints_matched_rules(cli) -> None:  # type: ignore[no-untyped-def]
    table = str(ROOT / "processes" / "loan_precheck.dmn")
    small = cli("decide", table, "--data", '{"amount": 8000, "risk_score": 12}')
    assert "rule_small_low_risk" in small.stdout
    assert 'result: "auto"' in small.stdout
    large = json.loads(
        cli("decide", table, "--data", '{"amount": 400000.50, "risk_score": 1}', "--json").stdout
    )
    assert (large["matched"], large["result"]) == (["rule_large"], "committee")
    missing = cli("decide", table, "--data", "{}", ok=False)
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: ")
