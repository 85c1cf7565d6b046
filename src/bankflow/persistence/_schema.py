"""Tables, after Camunda's split: definitions (``bf_deployment``, ``bf_resource``,
``bf_process_definition``, ``bf_decision_definition``, ``bf_element``).

The models are the source of truth; migrations are checked against them by a test.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
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
    "EventRow",
    "InstanceRow",
    "JobRow",
    "ProcessDefinitionRow",
    "ResourceRow",
    "SubscriptionRow",
    "TaskCandidateRow",
    "TaskRow",
    "WorkerRow",
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
    # Start events only: {"kind": "message", "name": ...} or {"kind": "timer", "type":
    # "timeCycle", "value": "R3/PT1H"}; how a new instance can begin without a caller.
    trigger: Mapped[dict[str, Any] | None] = mapped_column(JSON)


# -- runtime ---------------------------------------------------------------------------------

_BigId = BigInteger().with_variant(Integer(), "sqlite")


class InstanceRow(Base):
    """One row per process instance; ``revision`` guards every change (optimistic lock)."""

    __tablename__ = "bf_instance"
    __table_args__ = (
        UniqueConstraint("process_key", "business_key"),
        Index(None, "process_key", "status", "started_at"),
        Index(None, "status", "started_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    definition_id: Mapped[str] = mapped_column(ForeignKey("bf_process_definition.id"))
    process_key: Mapped[str] = mapped_column(String(255))
    business_key: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))
    revision: Mapped[int] = mapped_column(Integer)
    state: Mapped[bytes] = mapped_column(LargeBinary)
    state_format: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    failure: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    started_by: Mapped[str | None] = mapped_column(String(255))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class TaskRow(Base):
    """One row per human task waiting for a person; deleted when it is done, so inbox
    queries never wade through finished work."""

    __tablename__ = "bf_task"
    __table_args__ = (
        Index(None, "instance_id"),
        Index(None, "assignee", "created_at"),
        Index(None, "process_key", "created_at"),
        Index(None, "business_key"),
        Index(None, "due_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    instance_id: Mapped[str] = mapped_column(ForeignKey("bf_instance.id"))
    definition_id: Mapped[str] = mapped_column(String(36))
    process_key: Mapped[str] = mapped_column(String(255))
    business_key: Mapped[str | None] = mapped_column(String(255))
    element_id: Mapped[str] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(Text)
    lane: Mapped[str | None] = mapped_column(String(255))
    candidate_groups: Mapped[list[str]] = mapped_column(JSON)
    candidate_users: Mapped[list[str]] = mapped_column(JSON)
    assignee: Mapped[str | None] = mapped_column(String(255))
    priority: Mapped[int] = mapped_column(Integer)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    form_key: Mapped[str | None] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class TaskCandidateRow(Base):
    """Who may act on a waiting task, one row per group or user; the composite index walks
    one group's inbox in creation order and stops at the page size."""

    __tablename__ = "bf_task_candidate"
    __table_args__ = (Index(None, "kind", "value", "created_at", "task_id"),)

    task_id: Mapped[str] = mapped_column(
        ForeignKey("bf_task.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    value: Mapped[str] = mapped_column(String(255), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class EventRow(Base):
    """Append-only history: who did what to which instance and task, when, with what."""

    __tablename__ = "bf_event"
    __table_args__ = (
        Index(None, "instance_id", "id"),
        Index(None, "actor", "at"),
        Index(None, "task_id"),
    )

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    instance_id: Mapped[str] = mapped_column(String(36))
    process_key: Mapped[str] = mapped_column(String(255))
    business_key: Mapped[str | None] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(32))
    element_id: Mapped[str | None] = mapped_column(String(255))
    task_id: Mapped[str | None] = mapped_column(String(36))
    actor: Mapped[str | None] = mapped_column(String(255))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class JobRow(Base):
    """Work due at a time: a timer to fire, a service to call, a message to carry to
    another instance, a process to start on its timer. Written in the same transaction as
    the state that made it; claimed by locking (``lock_owner`` until ``lock_expires_at``),
    so a dead worker's jobs are taken over once the lock runs out."""

    __tablename__ = "bf_job"
    __table_args__ = (
        Index(None, "status", "due_at"),
        Index(None, "instance_id"),
        Index(None, "topic", "status", "due_at"),
        Index(None, "lock_owner"),
        Index(None, "definition_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    instance_id: Mapped[str | None] = mapped_column(ForeignKey("bf_instance.id"))
    definition_id: Mapped[str | None] = mapped_column(String(36))
    process_key: Mapped[str] = mapped_column(String(255))
    business_key: Mapped[str | None] = mapped_column(String(255))
    element_id: Mapped[str | None] = mapped_column(String(255))
    task_id: Mapped[str | None] = mapped_column(String(36))
    topic: Mapped[str | None] = mapped_column(String(255))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    lock_owner: Mapped[str | None] = mapped_column(String(255))
    lock_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer)
    retries: Mapped[int] = mapped_column(Integer)
    retry_cycle: Mapped[str | None] = mapped_column(String(64))
    last_error: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SubscriptionRow(Base):
    """A task waiting for a message or a signal (``kind``), found by name and business key
    without opening any instance (an event-based gateway waits for several: one row each).
    ``message_name`` is the signal's name for a signal."""

    __tablename__ = "bf_subscription"
    __table_args__ = (
        Index(None, "kind", "message_name", "business_key"),
        Index(None, "instance_id"),
    )

    task_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True, server_default="message")
    instance_id: Mapped[str] = mapped_column(ForeignKey("bf_instance.id"))
    process_key: Mapped[str] = mapped_column(String(255))
    business_key: Mapped[str | None] = mapped_column(String(255))
    message_name: Mapped[str] = mapped_column(String(255), primary_key=True)
    element_id: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WorkerRow(Base):
    """A running ``bankflow worker``: its heartbeat says it is alive."""

    __tablename__ = "bf_worker"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime())
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
