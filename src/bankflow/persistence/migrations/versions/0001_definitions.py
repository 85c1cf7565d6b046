"""Definitions: deployments, resources, process and decision definitions, elements.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bf_deployment",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("deployed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bf_deployment")),
    )
    op.create_table(
        "bf_resource",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("deployment_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["bf_deployment.id"],
            name=op.f("fk_bf_resource_deployment_id_bf_deployment"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bf_resource")),
    )
    with op.batch_alter_table("bf_resource", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_bf_resource_content_hash"), ["content_hash"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_bf_resource_deployment_id"), ["deployment_id"], unique=False
        )

    op.create_table(
        "bf_decision_definition",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=512), nullable=True),
        sa.Column("resource_id", sa.String(length=36), nullable=False),
        sa.Column("deployment_id", sa.String(length=36), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("deployed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["bf_deployment.id"],
            name=op.f("fk_bf_decision_definition_deployment_id_bf_deployment"),
        ),
        sa.ForeignKeyConstraint(
            ["resource_id"],
            ["bf_resource.id"],
            name=op.f("fk_bf_decision_definition_resource_id_bf_resource"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bf_decision_definition")),
        sa.UniqueConstraint("key", "version", name=op.f("uq_bf_decision_definition_key_version")),
    )
    op.create_table(
        "bf_process_definition",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=512), nullable=True),
        sa.Column("resource_id", sa.String(length=36), nullable=False),
        sa.Column("deployment_id", sa.String(length=36), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("deployed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["bf_deployment.id"],
            name=op.f("fk_bf_process_definition_deployment_id_bf_deployment"),
        ),
        sa.ForeignKeyConstraint(
            ["resource_id"],
            ["bf_resource.id"],
            name=op.f("fk_bf_process_definition_resource_id_bf_resource"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bf_process_definition")),
        sa.UniqueConstraint("key", "version", name=op.f("uq_bf_process_definition_key_version")),
    )
    op.create_table(
        "bf_element",
        sa.Column("definition_id", sa.String(length=36), nullable=False),
        sa.Column("element_id", sa.String(length=255), nullable=False),
        sa.Column("element_type", sa.String(length=64), nullable=False),
        sa.Column("process_id", sa.String(length=255), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("lane", sa.String(length=255), nullable=True),
        sa.Column("documentation", sa.Text(), nullable=True),
        sa.Column("candidate_groups", sa.JSON(), nullable=False),
        sa.Column("candidate_users", sa.JSON(), nullable=False),
        sa.Column("assignee", sa.String(length=255), nullable=True),
        sa.Column("due_date", sa.String(length=255), nullable=True),
        sa.Column("priority", sa.String(length=255), nullable=True),
        sa.Column("form_key", sa.String(length=512), nullable=True),
        sa.Column("form_fields", sa.JSON(), nullable=False),
        sa.Column("line", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["definition_id"],
            ["bf_process_definition.id"],
            name=op.f("fk_bf_element_definition_id_bf_process_definition"),
        ),
        sa.PrimaryKeyConstraint("definition_id", "element_id", name=op.f("pk_bf_element")),
    )
    with op.batch_alter_table("bf_element", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_bf_element_definition_id_element_type"),
            ["definition_id", "element_type"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("bf_element", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bf_element_definition_id_element_type"))

    op.drop_table("bf_element")
    op.drop_table("bf_process_definition")
    op.drop_table("bf_decision_definition")
    with op.batch_alter_table("bf_resource", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bf_resource_deployment_id"))
        batch_op.drop_index(batch_op.f("ix_bf_resource_content_hash"))

    op.drop_table("bf_resource")
    op.drop_table("bf_deployment")
