"""Alembic environment: always run with a connection handed in by tensafe_ops.storage."""

from alembic import context

from tensafe_ops.storage import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
