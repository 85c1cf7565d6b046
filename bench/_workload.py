"""The benchmark workload and the three ways of running it.

One loan process (``loan_bench.bpmn``): Capture (group ``cs``), then small loans (20%) are
approved by a script and the rest wait for Review (group ``risk``): 1.8 user tasks per
instance. Each runner takes a batch of applications, runs every instance to its end and
returns how many user tasks it completed, so the caller can check all sides did the same
work.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from SpiffWorkflow.bpmn.serializer.workflow import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG
from SpiffWorkflow.util.task import TaskState

from bankflow import Engine, Instance

BPMN = Path(__file__).with_name("loan_bench.bpmn")
PROCESS_KEY = "loan_bench"
USER = "bench"

# What the person types into each user task, by element id.
ANSWERS: dict[str, dict[str, Any]] = {
    "capture": {"documents_ok": True, "kyc_checked": True},
    "review": {"decision": "approve", "risk_notes": "bureau file checked"},
}

# The same pragmas bankflow sets on its SQLite connections.
SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=10000",
)


@dataclass(frozen=True)
class Application:
    business_key: str
    data: dict[str, Any]


def is_small(number: int) -> bool:
    """Two applications in ten are below 1000 and skip the review."""
    return number % 10 < 2


def application(number: int) -> Application:
    """Application ``number``: an amount (Decimal) and a customer, about 200 bytes of JSON."""
    amount = Decimal(250 + number % 700) if is_small(number) else Decimal(5_000 + number % 90_000)
    return Application(
        business_key=f"LOAN-{number:07d}",
        data={
            "amount": amount.quantize(Decimal("0.01")),
            "currency": "EUR",
            "customer": f"Customer {number:07d}",
            "customer_id": f"C-{number:07d}",
            "email": f"customer{number:07d}@example.com",
            "branch": "Lisbon Downtown",
            "product": "personal-loan",
            "term_months": 12 + number % 72,
        },
    )


class Applications:
    """Hands out fresh applications, so business keys never repeat within one database."""

    def __init__(self) -> None:
        self._next = 0

    def take(self, count: int) -> list[Application]:
        first, self._next = self._next, self._next + count
        return [application(n) for n in range(first, self._next)]


class Runner(Protocol):
    name: str

    def run(self, batch: Sequence[Application]) -> int:
        """Run every application of ``batch`` to its end; the number of user tasks done."""
        ...


# -- bankflow ----------------------------------------------------------------------------


def open_engine(path: Path, *, cache_size: int = 1024) -> Engine:
    """The default engine on a SQLite file, with the workload deployed."""
    engine = Engine(f"sqlite:///{path}", cache_size=cache_size)
    engine.definitions.deploy(BPMN)
    return engine


class BankflowRunner:
    """The public API only: start, then complete each task the call hands back."""

    def __init__(self, name: str, engine: Engine) -> None:
        self.name = name
        self.engine = engine

    def run(self, batch: Sequence[Application]) -> int:
        done = 0
        for app in batch:
            instance = start(self.engine, app)
            while instance.tasks:
                instance = complete_first(self.engine, instance)
                done += 1
        return done


def start(engine: Engine, app: Application) -> Instance:
    return engine.instances.start(
        PROCESS_KEY, business_key=app.business_key, data=app.data, user=USER
    )


def complete_first(engine: Engine, instance: Instance) -> Instance:
    """Complete the first task the last call handed back, as a member of its group."""
    task = instance.tasks[0]
    return engine.tasks.complete(
        task.id, user=USER, groups=list(task.candidate_groups), data=ANSWERS[task.element_id]
    )


# -- SpiffWorkflow on its own -------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """The workload parsed once by SpiffWorkflow's stock parser."""

    process: Any
    subprocesses: dict[str, Any]

    @classmethod
    def parse(cls) -> Spec:
        parser = SpiffBpmnParser()
        parser.add_bpmn_file(str(BPMN))
        return cls(parser.get_spec(PROCESS_KEY), parser.get_subprocess_specs(PROCESS_KEY))

    def start(self, data: dict[str, Any]) -> BpmnWorkflow:
        """A new workflow (default script engine) with ``data``, run to its first wait."""
        workflow = BpmnWorkflow(self.process, self.subprocesses)
        workflow.task_tree.data.update(data)
        for task in workflow.get_tasks(state=TaskState.READY):
            task.data.update(data)
        workflow.do_engine_steps()
        return workflow


def complete_next(workflow: BpmnWorkflow) -> None:
    """Complete the first ready user task with its answers and run on to the next wait."""
    task = workflow.get_tasks(state=TaskState.READY, manual=True)[0]
    task.data.update(ANSWERS[task.task_spec.bpmn_id])
    task.run()
    workflow.do_engine_steps()


def stock_serializer() -> BpmnWorkflowSerializer:
    """SpiffWorkflow's serializer for its spiff parser, taught Decimal (as any user must:
    the stock registry cannot store it)."""
    registry = BpmnWorkflowSerializer.configure(SPIFF_CONFIG)
    registry.register(Decimal, lambda v: {"value": str(v)}, lambda v: Decimal(v["value"]))
    return BpmnWorkflowSerializer(registry)


class RawRunner:
    """In-memory SpiffWorkflow: no storage at all."""

    name = "raw SpiffWorkflow"

    def __init__(self, spec: Spec) -> None:
        self.spec = spec

    def run(self, batch: Sequence[Application]) -> int:
        done = 0
        for app in batch:
            workflow = self.spec.start(app.data)
            while not workflow.is_completed():
                complete_next(workflow)
                done += 1
        return done


class NaiveRunner:
    """What a user would hand-build: one row per instance holding SpiffWorkflow's full
    JSON; every step loads and deserializes it, runs, serializes and writes it back."""

    name = "naive SQLite+JSON"

    def __init__(self, path: Path, spec: Spec) -> None:
        self.spec = spec
        self.serializer = stock_serializer()
        self.connection = sqlite3.connect(path)
        for pragma in SQLITE_PRAGMAS:
            self.connection.execute(pragma)
        self.connection.execute(
            "CREATE TABLE IF NOT EXISTS workflow (id TEXT PRIMARY KEY, state TEXT)"
        )

    def start(self, data: dict[str, Any]) -> str:
        instance_id = str(uuid.uuid4())
        state = self.serializer.serialize_json(self.spec.start(data))
        self.connection.execute("INSERT INTO workflow VALUES (?, ?)", (instance_id, state))
        self.connection.commit()
        return instance_id

    def step(self, instance_id: str) -> bool:
        """Complete the instance's next user task; True when the instance is completed."""
        (state,) = self.connection.execute(
            "SELECT state FROM workflow WHERE id = ?", (instance_id,)
        ).fetchone()
        workflow = self.serializer.deserialize_json(state)
        complete_next(workflow)
        self.connection.execute(
            "UPDATE workflow SET state = ? WHERE id = ?",
            (self.serializer.serialize_json(workflow), instance_id),
        )
        self.connection.commit()
        return bool(workflow.is_completed())

    def run(self, batch: Sequence[Application]) -> int:
        done = 0
        for app in batch:
            instance_id = self.start(app.data)
            completed = False
            while not completed:
                completed = self.step(instance_id)
                done += 1
        return done

    def close(self) -> None:
        self.connection.close()
