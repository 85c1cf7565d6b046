"""Runtime: instances, the human-task index and its candidates, history events.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bf_event",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("instance_id", sa.String(length=36), nullable=False),
        sa.Column("process_key", sa.String(length=255), nullable=False),
        sa.Column("business_key", sa.String(length=255), nullable=True),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("element_id", sa.String(length=255), nullable=True),
        sa.Column("task_id", sa.String(length=36), nullable=True),
        sa.Column("actor", sa.String(length=255), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bf_event")),
    )
    with op.batch_alter_table("bf_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_bf_event_actor_at"), ["actor", "at"], unique=False)
        batch_op.create_index(batch_op.f("ix_bf_event_task_id"), ["task_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_bf_event_instance_id_id"), ["instance_id", "id"], unique=False
        )

    op.create_table(
        "bf_instance",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("definition_id", sa.String(length=36), nullable=False),
        sa.Column("process_key", sa.String(length=255), nullable=False),
        sa.Column("business_key", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("state", sa.LargeBinary(), nullable=False),
        sa.Column("state_format", sa.String(length=32), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("failure", sa.JSON(), nullable=True),
        sa.Column("started_by", sa.String(length=255), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["definition_id"],
            ["bf_process_definition.id"],
            name=op.f("fk_bf_instance_definition_id_bf_process_definition"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bf_instance")),
        sa.UniqueConstraint(
            "process_key", "business_key", name=op.f("uq_bf_instance_process_key_business_key")
        ),
    )
    with op.batch_alter_table("bf_instance", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_bf_instance_process_key_status_started_at"),
            ["process_key", "status", "started_at"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_bf_instance_status_started_at"), ["status", "started_at"], unique=False
        )

    op.create_table(
        "bf_task",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("instance_id", sa.String(length=36), nullable=False),
        sa.Column("definition_id", sa.String(length=36), nullable=False),
        sa.Column("process_key", sa.String(length=255), nullable=False),
        sa.Column("business_key", sa.String(length=255), nullable=True),
        sa.Column("element_id", sa.String(length=255), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("lane", sa.String(length=255), nullable=True),
        sa.Column("candidate_groups", sa.JSON(), nullable=False),
        sa.Column("candidate_users", sa.JSON(), nullable=False),
        sa.Column("assignee", sa.String(length=255), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("form_key", sa.String(length=512), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["instance_id"], ["bf_instance.id"], name=op.f("fk_bf_task_instance_id_bf_instance")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bf_task")),
    )
    with op.batch_alter_table("bf_task", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_bf_task_assignee_created_at"), ["assignee", "created_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_bf_task_business_key"), ["business_key"], unique=False)
        batch_op.create_index(batch_op.f("ix_bf_task_due_at"), ["due_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_bf_task_instance_id"), ["instance_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_bf_task_process_key_created_at"),
            ["process_key", "created_at"],
            unique=False,
        )

    op.create_table(
        "bf_task_candidate",
        sa.Column("task_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["bf_task.id"],
            name=op.f("fk_bf_task_candidate_task_id_bf_task"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("task_id", "kind", "value", name=op.f("pk_bf_task_candidate")),
    )
    with op.batch_alter_table("bf_task_candidate", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_bf_task_candidate_kind_value_created_at_task_id"),
            ["kind", "value", "created_at", "task_id"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("bf_task_candidate", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bf_task_candidate_kind_value_created_at_task_id"))

    op.drop_table("bf_task_candidate")
    with op.batch_alter_table("bf_task", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bf_task_process_key_created_at"))
        batch_op.drop_index(batch_op.f("ix_bf_task_instance_id"))
        batch_op.drop_index(batch_op.f("ix_bf_task_due_at"))
        batch_op.drop_index(batch_op.f("ix_bf_task_business_key"))
        batch_op.drop_index(batch_op.f("ix_bf_task_assignee_created_at"))

    op.drop_table("bf_task")
    with op.batch_alter_table("bf_instance", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bf_instance_status_started_at"))
        batch_op.drop_index(batch_op.f("ix_bf_instance_process_key_status_started_at"))

    op.drop_table("bf_instance")
    with op.batch_alter_table("bf_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bf_event_instance_id_id"))
        batch_op.drop_index(batch_op.f("ix_bf_event_task_id"))
        batch_op.drop_index(batch_op.f("ix_bf_event_actor_at"))

    op.drop_table("bf_event")
