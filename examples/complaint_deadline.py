"""A complaint not answered in 48 hours escalates to a supervisor.

``processes/complaint_handling.bpmn`` puts a 48-hour timer on "Investigate and answer".
The engine runs on a clock this script moves by hand, so two days pass in a second: at
47 hours the worker finds nothing due, at 48 the deadline fires and the complaint lands
in the supervisors' inbox. Run: ``python examples/complaint_deadline.py [--db URL]``.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bankflow import Engine, FixedClock

PROCESSES = Path(__file__).resolve().parents[1] / "processes"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="sqlite:///bankflow-demo.db")
    args = parser.parse_args()
    received = datetime.now(UTC).replace(microsecond=0)
    clock = FixedClock(received)
    with Engine(args.db, clock=clock) as engine:
        engine.definitions.deploy(PROCESSES / "complaint_handling.bpmn")
        key = f"COMPLAINT-{received:%Y%m%d%H%M%S}"
        complaint = engine.instances.start("complaint_handling", business_key=key)
        register = complaint.tasks[0]
        engine.tasks.complete(
            register.id,
            user="anna",
            groups=["customer-service"],
            data={"customer_name": "Ada", "channel": "phone", "complaint_text": "Card fee"},
        )
        print(f"{key}: registered by anna at {received:%a %H:%M}")
        for hours in (47, 48):
            clock.set(received + timedelta(hours=hours))
            run = engine.jobs.run_due()
            inbox = engine.tasks.query(business_key=key)
            fired = [f"{o.element_id} {o.result}" for o in run.outcomes] or ["nothing due"]
            print(
                f"+{hours}h worker: {', '.join(fired)}; waiting: "
                + ", ".join(f"{t.name} ({', '.join(t.candidate_groups)})" for t in inbox)
            )
        print(
            "history: "
            + ", ".join(
                f"{e.type}" + (f" {e.element_id}" if e.element_id else "")
                for e in engine.history.for_instance(complaint.id)
            )
        )


if __name__ == "__main__":
    main()
