"""``engine.definitions``: validate, deploy and look up process definitions."""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from os import PathLike
from pathlib import Path

from sqlalchemy.orm import Session

from bankflow._clock import Clock
from bankflow._limits import DEFAULT_LIMITS, Limits
from bankflow._timing import start_timer
from bankflow.definitions._bundle import Bundle, prepare
from bankflow.definitions._source import SourceFile
from bankflow.errors import DefinitionError, NotFound
from bankflow.models import (
    DecisionDefinition,
    Deployment,
    ElementInfo,
    ProcessDefinition,
    ValidationReport,
)
from bankflow.persistence import Database, DefinitionStore
from bankflow.persistence._definitions import NewDefinition, NewResource
from bankflow.persistence._jobs import JobStore, job_row
from bankflow.services import ServiceRegistry

__all__ = ["Definitions"]

PathArg = str | PathLike[str]


class _StoreLookup:
    """Answers a bundle's questions about earlier deployments from one session."""

    def __init__(self, store: DefinitionStore, session: Session) -> None:
        self._store = store
        self._session = session

    def decision_source(self, key: str) -> tuple[str, bytes] | None:
        return self._store.decision_source(self._session, key)

    def process_keys(self, keys: Sequence[str]) -> set[str]:
        return self._store.process_keys(self._session, keys)


class Definitions:
    """Deployments are versioned by content: identical files deploy as a no-op.

    ``limits`` bounds the XML elements of one file and of one deployment (see
    ``bankflow.Limits``); a file past them is refused before it is checked further."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        services: ServiceRegistry,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self._db = db
        self._clock = clock
        self._services = services
        self._limits = limits
        self._store = DefinitionStore()

    def validate(
        self, *paths: PathArg, progress: Callable[[str], None] | None = None
    ) -> ValidationReport:
        """Every problem in the files, as a deploy would find them; stores nothing."""
        with self._db.transaction() as session:
            bundle = prepare(
                [Path(p) for p in paths],
                deployed=_StoreLookup(self._store, session),
                progress=progress,
                services=self._services.names(),
                limits=self._limits,
            )
        return _report(bundle)

    def deploy(
        self,
        *paths: PathArg,
        name: str | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> Deployment:
        """Deploy files and directories in one transaction: all of it, or nothing.

        Raises ``DefinitionError`` (with every diagnostic) when any file has an error.
        """
        if not paths:
            raise DefinitionError("nothing to deploy: give at least one file or directory")
        with self._db.transaction(write=True) as session:
            bundle = prepare(
                [Path(p) for p in paths],
                deployed=_StoreLookup(self._store, session),
                progress=progress,
                services=self._services.names(),
                limits=self._limits,
            )
            if not bundle.ok:
                report = _report(bundle)
                files = sorted({d.file for d in report.errors})
                raise DefinitionError(
                    f"deployment refused: {len(report.errors)} error(s) in {', '.join(files)}",
                    diagnostics=report.diagnostics,
                )
            return self._store_bundle(session, bundle, name=name)

    def _store_bundle(self, session: Session, bundle: Bundle, *, name: str | None) -> Deployment:
        now = self._clock.now()
        deployment_id = str(uuid.uuid4())
        resource_ids: dict[str, str] = {}
        created = False

        def resource_for(source: SourceFile) -> str:
            nonlocal created
            if source.display not in resource_ids:
                if not created:
                    self._store.add_deployment(session, id=deployment_id, name=name, at=now)
                    created = True
                resource_ids[source.display] = str(uuid.uuid4())
                self._store.add_resource(
                    session,
                    deployment_id,
                    NewResource(
                        id=resource_ids[source.display],
                        name=source.name,
                        kind=source.kind,
                        content=source.content,
                        content_hash=source.content_hash,
                    ),
                )
            return resource_ids[source.display]

        decisions: list[DecisionDefinition] = []
        for key, decision in sorted(bundle.decisions.items()):
            latest = self._store.latest_decision(session, key)
            if latest is not None and latest.content_hash == decision.file.content_hash:
                decisions.append(latest)
                continue
            new = NewDefinition(
                id=str(uuid.uuid4()),
                key=key,
                name=decision.name,
                resource_id=resource_for(decision.file),
                content_hash=decision.file.content_hash,
            )
            version = 1 if latest is None else latest.version + 1
            decisions.append(
                self._store.add_decision(session, deployment_id, new, version=version, at=now)
            )
        processes: list[ProcessDefinition] = []
        for key, process in sorted(bundle.processes.items()):
            latest_process = self._store.latest_process(session, key)
            if (
                latest_process is not None
                and latest_process.content_hash == process.file.content_hash
            ):
                processes.append(latest_process)
                continue
            new = NewDefinition(
                id=str(uuid.uuid4()),
                key=key,
                name=process.name,
                resource_id=resource_for(process.file),
                content_hash=process.file.content_hash,
            )
            version = 1 if latest_process is None else latest_process.version + 1
            definition = self._store.add_process(
                session, deployment_id, new, version=version, at=now
            )
            self._store.add_elements(session, definition.id, process.elements)
            _schedule_start_timers(session, definition, process.elements, now)
            processes.append(definition)
        return Deployment(
            id=deployment_id if created else None,
            created=created,
            deployed_at=now if created else _latest_time(processes, decisions, now),
            resources=tuple(f.name for f in bundle.files),
            processes=tuple(processes),
            decisions=tuple(decisions),
            diagnostics=bundle.sorted_diagnostics(),
        )

    def get(self, key: str, *, version: int | None = None) -> ProcessDefinition:
        """The latest version of process ``key``, or the one asked for."""
        with self._db.transaction() as session:
            found = self._store.get_process(session, key, version=version)
        if found is None:
            which = f"version {version} of " if version is not None else ""
            raise NotFound(f"no {which}process definition {key!r}", kind="process", key=key)
        return found

    def list(
        self, *, key: str | None = None, latest_only: bool = False
    ) -> builtins.list[ProcessDefinition]:
        with self._db.transaction() as session:
            return self._store.list_processes(session, key=key, latest_only=latest_only)

    def decisions(self) -> builtins.list[DecisionDefinition]:
        with self._db.transaction() as session:
            return self._store.list_decisions(session)

    def elements(self, key: str, *, version: int | None = None) -> builtins.list[ElementInfo]:
        """What the modeller said about each element (lanes, groups, forms, due dates)."""
        definition = self.get(key, version=version)
        with self._db.transaction() as session:
            return self._store.elements(session, definition.id)


def _report(bundle: Bundle) -> ValidationReport:
    return ValidationReport(
        files=tuple(f.display for f in bundle.files), diagnostics=bundle.sorted_diagnostics()
    )


def _latest_time(
    processes: list[ProcessDefinition], decisions: list[DecisionDefinition], default: datetime
) -> datetime:
    times = [p.deployed_at for p in processes] + [d.deployed_at for d in decisions]
    return max(times) if times else default


def _schedule_start_timers(
    session: Session,
    definition: ProcessDefinition,
    elements: Sequence[ElementInfo],
    now: datetime,
) -> None:
    """A new version replaces the previous version's timer starts (Camunda does the same)."""
    jobs = JobStore()
    conn = session.connection()
    jobs.delete_jobs(conn, [j["id"] for j in jobs.start_timer_jobs(conn, definition.key)])
    for element in elements:
        if not element.trigger or element.trigger.get("kind") != "timer":
            continue
        first = start_timer(element.trigger, now)
        if first is None:
            continue
        due, payload = first
        jobs.insert_jobs(
            conn,
            [
                job_row(
                    kind="start_timer",
                    process_key=definition.key,
                    definition_id=definition.id,
                    element_id=element.element_id,
                    due_at=due,
                    payload=payload,
                    created_at=now,
                )
            ],
        )
