"""Every path of processes/loan_approval.bpmn, on SQLite and PostgreSQL, with the instance
reloaded from storage before every step (a fresh Engine with no cache each time)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bankflow import Engine, InstanceStatus

ROOT = Path(__file__).resolve().parents[2]
APPLY = {"applicant_name": "Ada", "term_months": 60, "purpose": "home"}

# (amount, risk score, decision) -> the steps taken, department by department.
PATHS = {
    "small-low-risk-auto": (
        8_000,
        12,
        None,
        [
            ("capture_application", "customer-service"),
            ("assess_risk", "risk"),
            ("prepare_contract", "customer-service"),
        ],
        True,
    ),
    "small-but-risky-officer-approves": (
        8_000,
        55,
        True,
        [
            ("capture_application", "customer-service"),
            ("assess_risk", "risk"),
            ("risk_officer_decision", "risk"),
            ("prepare_contract", "customer-service"),
        ],
        True,
    ),
    "standard-officer-rejects": (
        60_000,
        40,
        False,
        [
            ("capture_application", "customer-service"),
            ("assess_risk", "risk"),
            ("risk_officer_decision", "risk"),
            ("inform_rejection", "customer-service"),
        ],
        False,
    ),
    "large-committee-approves": (
        400_000,
        10,
        True,
        [
            ("capture_application", "customer-service"),
            ("assess_risk", "risk"),
            ("committee_decision", "credit-committee"),
            ("prepare_contract", "customer-service"),
        ],
        True,
    ),
    "large-committee-rejects": (
        400_000,
        10,
        False,
        [
            ("capture_application", "customer-service"),
            ("assess_risk", "risk"),
            ("committee_decision", "credit-committee"),
            ("inform_rejection", "customer-service"),
        ],
        False,
    ),
}


def answers(element_id: str, amount: int, score: int, decision: bool | None) -> dict[str, object]:
    if element_id == "capture_application":
        return {**APPLY, "amount": amount}
    if element_id == "assess_risk":
        return {"risk_score": score}
    if element_id in ("risk_officer_decision", "committee_decision"):
        return {"approved": decision}
    return {}


@pytest.mark.parametrize("path", list(PATHS))
def test_loan_path(db_url: str, path: str) -> None:
    amount, score, decision, expected, approved = PATHS[path]
    with Engine(db_url, migrate=True) as engine:
        engine.definitions.deploy(
            ROOT / "processes" / "loan_approval.bpmn", ROOT / "processes" / "loan_precheck.dmn"
        )
        instance = engine.instances.start("loan_approval", business_key=path, user="portal")
    taken = []
    while True:
        with Engine(db_url, cache_size=0, migrate=True) as engine:
            waiting = engine.tasks.query(business_key=path)
            if not waiting:
                final = engine.instances.get(instance.id)
                break
            [task] = waiting
            group = task.candidate_groups[0]
            taken.append((task.element_id, group))
            engine.tasks.complete(
                task.id,
                user=f"user-{group}",
                groups=[group],
                data=answers(task.element_id, amount, score, decision),
            )
    assert taken == expected
    assert final.status == InstanceStatus.COMPLETED
    assert final.data["approved"] is approved
    with Engine(db_url, migrate=True) as engine:
        events = engine.history.for_instance(instance.id)
    completed = [(e.element_id, e.actor) for e in events if e.type == "task_completed"]
    assert completed == [(element, f"user-{group}") for element, group in expected]


def _run_example(name: str, tmp_path: Path) -> list[str]:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / name), "--db", f"sqlite:///{tmp_path}/demo.db"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_demo_runs(tmp_path: Path) -> None:
    output = "\n".join(_run_example("loan_demo.py", tmp_path))
    assert output.count("loan granted") == 2
    assert output.count("loan rejected") == 1
    assert "next: 'Committee decision' in Credit Committee" in output


def test_complaint_deadline_example_runs(tmp_path: Path) -> None:
    lines = _run_example("complaint_deadline.py", tmp_path)
    assert lines[1].startswith("+47h worker: nothing due; waiting: Investigate and answer")
    assert lines[2] == (
        "+48h worker: deadline_passed fired; waiting: Escalated handling (supervisor)"
    )
