"""Schema migrations, run in code at start (Alembic, scripts in ``api/migrations``).

:func:`upgrade` brings a database to the newest revision in ONE transaction, under a
lock, so that several processes starting together on one database (``--workers N``,
or several ``ledger serve``) migrate it once: the others wait, then find it current.
The lock is ``pg_advisory_xact_lock`` on PostgreSQL and the ``BEGIN IMMEDIATE``
write lock on SQLite (``api.storage.sql`` controls BEGIN). There is no alembic.ini:
the Config is built here, and the scripts ship inside the package.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

import api.migrations

#: Arbitrary constant naming our migration lock among PostgreSQL advisory locks.
PG_MIGRATION_LOCK = 0x6C656467  # "ledg"


def alembic_config() -> Config:
    """The Alembic Config of the service, pointing at the packaged scripts."""
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(api.migrations.__file__).parent))
    return cfg


def head_revision() -> str:
    """The newest revision the packaged scripts know."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(conn: Connection) -> str | None:
    """The revision the database is at (None: never migrated)."""
    return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine) -> None:
    """Migrate the database to the newest revision (a no-op when it is current)."""
    cfg = alembic_config()
    with engine.connect() as conn:
        # api.storage.sql's begin hook makes this BEGIN IMMEDIATE on SQLite.
        conn.execution_options(ledger_write=True)
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_MIGRATION_LOCK})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")


__all__ = ["alembic_config", "current_revision", "head_revision", "upgrade"]
