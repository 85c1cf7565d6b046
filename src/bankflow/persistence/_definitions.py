"""Queries for deployments, resources, definitions and element metadata."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bankflow.models import DecisionDefinition, ElementInfo, FormField, ProcessDefinition
from bankflow.persistence._schema import (
    DecisionDefinitionRow,
    DeploymentRow,
    ElementRow,
    ProcessDefinitionRow,
    ResourceRow,
)

__all__ = [
    "DefinitionStore",
    "NewDefinition",
    "NewResource",
    "definition_source",
    "latest_process_source",
]

_Row = TypeVar("_Row", ProcessDefinitionRow, DecisionDefinitionRow)


def _latest(session: Session, table: type[_Row], key: str) -> _Row | None:
    return session.scalars(
        select(table).where(table.key == key).order_by(table.version.desc()).limit(1)
    ).one_or_none()


@dataclass(frozen=True)
class NewResource:
    id: str
    name: str
    kind: str
    content: bytes
    content_hash: str


@dataclass(frozen=True)
class NewDefinition:
    id: str
    key: str
    name: str | None
    resource_id: str
    content_hash: str


class DefinitionStore:
    """Stateless: every method works inside the caller's transaction."""

    def add_deployment(self, session: Session, *, id: str, name: str | None, at: datetime) -> None:
        session.add(DeploymentRow(id=id, name=name, deployed_at=at))
        session.flush()

    def add_resource(self, session: Session, deployment_id: str, resource: NewResource) -> None:
        session.add(
            ResourceRow(
                id=resource.id,
                deployment_id=deployment_id,
                name=resource.name,
                kind=resource.kind,
                content=resource.content,
                content_hash=resource.content_hash,
            )
        )
        session.flush()

    def latest_process(self, session: Session, key: str) -> ProcessDefinition | None:
        row = _latest(session, ProcessDefinitionRow, key)
        return None if row is None else self._process_model(session, row)

    def latest_decision(self, session: Session, key: str) -> DecisionDefinition | None:
        row = _latest(session, DecisionDefinitionRow, key)
        return None if row is None else self._decision_model(session, row)

    def add_process(
        self,
        session: Session,
        deployment_id: str,
        new: NewDefinition,
        *,
        version: int,
        at: datetime,
    ) -> ProcessDefinition:
        row = ProcessDefinitionRow(deployment_id=deployment_id, version=version, deployed_at=at)
        self._fill(row, new)
        session.add(row)
        session.flush()
        return self._process_model(session, row)

    def add_decision(
        self,
        session: Session,
        deployment_id: str,
        new: NewDefinition,
        *,
        version: int,
        at: datetime,
    ) -> DecisionDefinition:
        row = DecisionDefinitionRow(deployment_id=deployment_id, version=version, deployed_at=at)
        self._fill(row, new)
        session.add(row)
        session.flush()
        return self._decision_model(session, row)

    def add_elements(
        self, session: Session, definition_id: str, elements: Sequence[ElementInfo]
    ) -> None:
        seen: set[str] = set()
        for info in elements:
            if info.element_id in seen:
                continue
            seen.add(info.element_id)
            session.add(
                ElementRow(
                    definition_id=definition_id,
                    element_id=info.element_id,
                    element_type=info.element_type,
                    process_id=info.process_id,
                    name=info.name,
                    lane=info.lane,
                    documentation=info.documentation,
                    candidate_groups=list(info.candidate_groups),
                    candidate_users=list(info.candidate_users),
                    assignee=info.assignee,
                    due_date=info.due_date,
                    priority=info.priority,
                    form_key=info.form_key,
                    form_fields=[f.model_dump() for f in info.form_fields],
                    line=info.line,
                    trigger=info.trigger,
                )
            )

    def get_process(
        self, session: Session, key: str, *, version: int | None = None
    ) -> ProcessDefinition | None:
        if version is None:
            return self.latest_process(session, key)
        row = session.scalars(
            select(ProcessDefinitionRow).where(
                ProcessDefinitionRow.key == key, ProcessDefinitionRow.version == version
            )
        ).one_or_none()
        return None if row is None else self._process_model(session, row)

    def get_process_by_id(self, session: Session, definition_id: str) -> ProcessDefinition | None:
        row = session.get(ProcessDefinitionRow, definition_id)
        return None if row is None else self._process_model(session, row)

    def list_processes(
        self, session: Session, *, key: str | None = None, latest_only: bool = False
    ) -> list[ProcessDefinition]:
        query = select(ProcessDefinitionRow)
        if key is not None:
            query = query.where(ProcessDefinitionRow.key == key)
        if latest_only:
            latest = (
                select(ProcessDefinitionRow.key, func.max(ProcessDefinitionRow.version).label("v"))
                .group_by(ProcessDefinitionRow.key)
                .subquery()
            )
            query = query.join(
                latest,
                (ProcessDefinitionRow.key == latest.c.key)
                & (ProcessDefinitionRow.version == latest.c.v),
            )
        rows = session.scalars(
            query.order_by(ProcessDefinitionRow.key, ProcessDefinitionRow.version)
        ).all()
        names = self._resource_names(session, [r.resource_id for r in rows])
        return [self._process_model(session, r, names) for r in rows]

    def list_decisions(self, session: Session) -> list[DecisionDefinition]:
        rows = session.scalars(
            select(DecisionDefinitionRow).order_by(
                DecisionDefinitionRow.key, DecisionDefinitionRow.version
            )
        ).all()
        names = self._resource_names(session, [r.resource_id for r in rows])
        return [self._decision_model(session, r, names) for r in rows]

    def elements(self, session: Session, definition_id: str) -> list[ElementInfo]:
        rows = session.scalars(
            select(ElementRow)
            .where(ElementRow.definition_id == definition_id)
            .order_by(ElementRow.line, ElementRow.element_id)
        ).all()
        return [
            ElementInfo(
                element_id=r.element_id,
                element_type=r.element_type,
                name=r.name,
                process_id=r.process_id,
                lane=r.lane,
                documentation=r.documentation,
                candidate_groups=tuple(r.candidate_groups),
                candidate_users=tuple(r.candidate_users),
                assignee=r.assignee,
                due_date=r.due_date,
                priority=r.priority,
                form_key=r.form_key,
                form_fields=tuple(FormField.model_validate(f) for f in r.form_fields),
                line=r.line,
                trigger=r.trigger,
            )
            for r in rows
        ]

    def decision_source(self, session: Session, key: str) -> tuple[str, bytes] | None:
        """The latest deployed DMN file defining decision ``key``."""
        row = session.execute(
            select(ResourceRow.name, ResourceRow.content)
            .join(DecisionDefinitionRow, DecisionDefinitionRow.resource_id == ResourceRow.id)
            .where(DecisionDefinitionRow.key == key)
            .order_by(DecisionDefinitionRow.version.desc())
            .limit(1)
        ).one_or_none()
        return None if row is None else (row[0], row[1])

    def process_keys(self, session: Session, keys: Sequence[str]) -> set[str]:
        if not keys:
            return set()
        found = session.scalars(
            select(ProcessDefinitionRow.key).where(ProcessDefinitionRow.key.in_(set(keys)))
        ).all()
        return set(found)

    # -- helpers --------------------------------------------------------------------------

    @staticmethod
    def _fill(row: ProcessDefinitionRow | DecisionDefinitionRow, new: NewDefinition) -> None:
        row.id = new.id
        row.key = new.key
        row.name = new.name
        row.resource_id = new.resource_id
        row.content_hash = new.content_hash

    @staticmethod
    def _resource_names(session: Session, ids: Sequence[str]) -> dict[str, str]:
        if not ids:
            return {}
        rows = session.execute(
            select(ResourceRow.id, ResourceRow.name).where(ResourceRow.id.in_(set(ids)))
        ).all()
        return {r[0]: r[1] for r in rows}

    def _process_model(
        self, session: Session, row: ProcessDefinitionRow, names: dict[str, str] | None = None
    ) -> ProcessDefinition:
        return ProcessDefinition(**self._fields(session, row, names))

    def _decision_model(
        self, session: Session, row: DecisionDefinitionRow, names: dict[str, str] | None = None
    ) -> DecisionDefinition:
        return DecisionDefinition(**self._fields(session, row, names))

    def _fields(
        self,
        session: Session,
        row: ProcessDefinitionRow | DecisionDefinitionRow,
        names: dict[str, str] | None,
    ) -> dict[str, Any]:
        names = names or self._resource_names(session, [row.resource_id])
        return {
            "id": row.id,
            "key": row.key,
            "version": row.version,
            "name": row.name,
            "resource_name": names[row.resource_id],
            "content_hash": row.content_hash,
            "deployment_id": row.deployment_id,
            "deployed_at": row.deployed_at,
        }


def definition_source(session: Session, definition_id: str) -> tuple[str, str, bytes] | None:
    """(process key, resource name, content) of one process definition."""
    row = session.execute(
        select(ProcessDefinitionRow.key, ResourceRow.name, ResourceRow.content)
        .join(ResourceRow, ResourceRow.id == ProcessDefinitionRow.resource_id)
        .where(ProcessDefinitionRow.id == definition_id)
    ).one_or_none()
    return None if row is None else (row[0], row[1], row[2])


def latest_process_source(session: Session, key: str) -> tuple[str, str, bytes] | None:
    """(definition id, resource name, content) of the latest version of process ``key``."""
    row = session.execute(
        select(ProcessDefinitionRow.id, ResourceRow.name, ResourceRow.content)
        .join(ResourceRow, ResourceRow.id == ProcessDefinitionRow.resource_id)
        .where(ProcessDefinitionRow.key == key)
        .order_by(ProcessDefinitionRow.version.desc())
        .limit(1)
    ).one_or_none()
    return None if row is None else (row[0], row[1], row[2])
