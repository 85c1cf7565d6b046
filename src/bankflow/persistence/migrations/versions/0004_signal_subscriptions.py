"""Signal subscriptions: ``bf_subscription.kind`` says what a task waits for, a message
(every existing row) or a signal; it is part of the key, so one task may wait for a
message and a signal of the same name (an event-based gateway).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("bf_subscription", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=16), nullable=False, server_default="message")
        )
        batch_op.drop_index(batch_op.f("ix_bf_subscription_message_name_business_key"))
        batch_op.drop_constraint("pk_bf_subscription", type_="primary")
        batch_op.create_primary_key("pk_bf_subscription", ["task_id", "kind", "message_name"])
        batch_op.create_index(
            batch_op.f("ix_bf_subscription_kind_message_name_business_key"),
            ["kind", "message_name", "business_key"],
            unique=False,
        )


def downgrade() -> None:
    op.execute("DELETE FROM bf_subscription WHERE kind <> 'message'")
    with op.batch_alter_table("bf_subscription", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bf_subscription_kind_message_name_business_key"))
        batch_op.drop_constraint("pk_bf_subscription", type_="primary")
        batch_op.create_primary_key("pk_bf_subscription", ["task_id", "message_name"])
        batch_op.create_index(
            batch_op.f("ix_bf_subscription_message_name_business_key"),
            ["message_name", "business_key"],
            unique=False,
        )
        batch_op.drop_column("kind")
