"""Alembic environment: bankflow always hands over an open connection."""

from alembic import context

from bankflow.persistence._schema import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - bankflow never runs alembic without one
    raise RuntimeError("run migrations through `bankflow db upgrade`")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
