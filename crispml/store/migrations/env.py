"""Alembic environment: crispml always hands in a live connection (see crispml.store.migrate)."""

from alembic import context

from crispml.store.tables import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
context.run_migrations()
