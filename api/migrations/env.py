"""Alembic environment: migrate the connection handed over by ``api.storage.migrate``.

There is no alembic.ini and no URL here: the service builds the Alembic Config in
code and passes an open connection, already inside the transaction (and holding
the lock) in which the whole upgrade runs.
"""

from __future__ import annotations

from alembic import context

from api.storage.models import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only api.storage.migrate runs migrations
    raise RuntimeError("run migrations through api.storage.migrate.upgrade()")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
