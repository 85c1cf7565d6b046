"""The loan-approval story, end to end, on an embedded SQLite file.

Three applications take the three routes of ``processes/loan_approval.bpmn``: a small,
low-risk loan approved by rules; a standard loan decided by a risk officer; a large loan
that goes to the credit committee. Every step prints who acted and which department
holds the next step. Run: ``python examples/loan_demo.py [--db URL]``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from bankflow import Engine, Instance, Task

PROCESSES = Path(__file__).resolve().parents[1] / "processes"
DEFAULT_DB = "bankflow-demo.db"

# Who works where: each person acts with their department's group.
STAFF = {
    "customer-service": "anna (Customer Service)",
    "risk": "raj (Risk)",
    "credit-committee": "chen (Credit Committee)",
}


@dataclass(frozen=True)
class Application:
    business_key: str
    applicant: str
    amount: int
    risk_score: int
    committee_approves: bool = True
    officer_approves: bool = True


STORIES = [
    Application("LOAN-1001", "Ada Smith", amount=8_000, risk_score=12),
    Application("LOAN-1002", "Ben Jones", amount=60_000, risk_score=45),
    Application("LOAN-1003", "Cy Young", amount=400_000, risk_score=35, committee_approves=False),
]


def answers(app: Application, element_id: str) -> dict[str, Any]:
    """What each person types into the step's form."""
    return {
        "capture_application": {
            "applicant_name": app.applicant,
            "amount": app.amount,
            "term_months": 60,
            "purpose": "home",
        },
        "assess_risk": {"risk_score": app.risk_score, "risk_notes": "checked bureau file"},
        "risk_officer_decision": {"approved": app.officer_approves},
        "committee_decision": {
            "approved": app.committee_approves,
            "committee_notes": "exposure limit" if not app.committee_approves else "",
        },
    }.get(element_id, {})


def person(task: Task) -> tuple[str, str]:
    group = task.candidate_groups[0] if task.candidate_groups else ""
    return STAFF.get(group, f"someone in {group or task.lane}").split(" ")[0], group


def describe_next(instance: Instance) -> str:
    if not instance.tasks:
        outcome = "granted" if instance.data.get("approved") else "rejected"
        return f"instance {instance.status.value}: loan {outcome}"
    return "; ".join(
        f"next: '{t.name}' in {t.lane} (group {', '.join(t.candidate_groups)})"
        for t in instance.tasks
    )


def run_story(engine: Engine, app: Application) -> Instance:
    print(f"\n== {app.business_key}: {app.applicant} asks for {app.amount:,}")
    instance = engine.instances.start("loan_approval", business_key=app.business_key, user="portal")
    print(f"   portal started the application -> {describe_next(instance)}")
    while instance.tasks:
        task = instance.tasks[0]
        who, group = person(task)
        data = answers(app, task.element_id)
        engine.tasks.claim(task.id, user=who, groups=[group])
        instance = engine.tasks.complete(task.id, user=who, groups=[group], data=data)
        shown = {k: v for k, v in data.items() if v not in ("", None)}
        print(f"   {who} ({task.lane}) completed '{task.name}' with {shown}")
        print(f"   -> {describe_next(instance)}")
    if instance.data.get("decided_by") == "rules":
        print("   (approved by the rules for small, low-risk loans: no officer needed)")
    return instance


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=None, help=f"database URL (default: ./{DEFAULT_DB})")
    args = parser.parse_args()
    if args.db is None:
        Path(DEFAULT_DB).unlink(missing_ok=True)  # each run tells the story from scratch
        args.db = f"sqlite:///{DEFAULT_DB}"
    with Engine(args.db) as engine:
        deployment = engine.definitions.deploy(PROCESSES)
        keys = ", ".join(f"{p.key} v{p.version}" for p in deployment.processes)
        print(f"deployed {keys}")
        finished = [run_story(engine, app) for app in STORIES]
        print("\n== the audit trail of", finished[-1].business_key)
        for event in engine.history.for_instance(finished[-1].id):
            actor = event.actor or "engine"
            print(f"   {event.at:%H:%M:%S} {actor:<8} {event.type:<18} {event.element_id or ''}")
        amount = Decimal(sum(a.amount for a in STORIES))
        print(f"\n{len(finished)} applications, {amount:,} requested; database: {args.db}")


if __name__ == "__main__":
    main()
