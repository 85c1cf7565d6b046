"""Tables, after Camunda's split: definitions (``bf_deployment``, ``bf_resource``,
``bf_process_definition``, ``bf_decision_definition``, ``bf_element``).

The models are the source of truth; migrations are checked against them by a test.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "Base",
    "DecisionDefinitionRow",
    "DeploymentRow",
    "ElementRow",
    "ProcessDefinitionRow",
    "ResourceRow",
]

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Always hand back timezone-aware UTC, even from SQLite, which stores no zone."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use an aware one")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        result: datetime = value
        return result.replace(tzinfo=UTC) if result.tzinfo is None else result.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class DeploymentRow(Base):
    __tablename__ = "bf_deployment"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(255))
    deployed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ResourceRow(Base):
    __tablename__ = "bf_resource"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    deployment_id: Mapped[str] = mapped_column(ForeignKey("bf_deployment.id"), index=True)
    name: Mapped[str] = mapped_column(String(512))
    kind: Mapped[str] = mapped_column(String(8))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    content_hash: Mapped[str] = mapped_column(String(64), index=True)


class _DefinitionColumns:
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    key: Mapped[str] = mapped_column(String(255))
    version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str | None] = mapped_column(String(512))
    resource_id: Mapped[str] = mapped_column(ForeignKey("bf_resource.id"))
    deployment_id: Mapped[str] = mapped_column(ForeignKey("bf_deployment.id"))
    content_hash: Mapped[str] = mapped_column(String(64))
    deployed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ProcessDefinitionRow(_DefinitionColumns, Base):
    __tablename__ = "bf_process_definition"
    __table_args__ = (UniqueConstraint("key", "version"),)


class DecisionDefinitionRow(_DefinitionColumns, Base):
    __tablename__ = "bf_decision_definition"
    __table_args__ = (UniqueConstraint("key", "version"),)


class ElementRow(Base):
    """What the modeller said about each flow element of one process definition."""

    __tablename__ = "bf_element"
    __table_args__ = (Index(None, "definition_id", "element_type"),)

    definition_id: Mapped[str] = mapped_column(
        ForeignKey("bf_process_definition.id"), primary_key=True
    )
    element_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    element_type: Mapped[str] = mapped_column(String(64))
    process_id: Mapped[str | None] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(Text)
    lane: Mapped[str | None] = mapped_column(String(255))
    documentation: Mapped[str | None] = mapped_column(Text)
    candidate_groups: Mapped[list[str]] = mapped_column(JSON)
    candidate_users: Mapped[list[str]] = mapped_column(JSON)
    assignee: Mapped[str | None] = mapped_column(String(255))
    due_date: Mapped[str | None] = mapped_column(String(255))
    priority: Mapped[str | None] = mapped_column(String(255))
    form_key: Mapped[str | None] = mapped_column(String(512))
    form_fields: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    line: Mapped[int | None] = mapped_column(Integer)
