"""The SQLAlchemy Engine of the log's database, set up for what the log relies on.

**SQLite.** The database runs in WAL mode with ``synchronous=FULL`` (a commit is on
disk when it returns) and a busy timeout. Python's sqlite3 module decides on its own
when to emit BEGIN; we switch that off (``isolation_level = None``) and emit BEGIN
ourselves from SQLAlchemy's ``begin`` event, as SQLAlchemy documents ("Enabling
Non-Legacy SQLite Transactional Modes"): ``BEGIN IMMEDIATE`` on connections marked
with the execution option ``ledger_write=True``, which takes the database's one write
lock at once (two writers, in any process, queue on the busy timeout instead of
failing to upgrade a read lock half-way), and a plain deferred ``BEGIN`` for readers,
which in WAL mode read a consistent snapshot without blocking the writer.

**PostgreSQL** (``postgresql+psycopg://``): READ COMMITTED; writers serialise on the
log head row (``SELECT ... FOR UPDATE``, in ``api.storage.sql``).
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

from api.storage.base import StorageError


def _set_wal(cur: Any, busy_timeout_ms: int) -> None:
    """Switch the file to WAL (a persistent setting) unless it already is.

    Changing the journal mode needs the database to itself, and SQLite answers
    "database is locked" at once, without its busy handler, when other connections
    are opening it at the same moment (several workers starting): so retry.
    """
    deadline = time.monotonic() + busy_timeout_ms / 1000
    delay = 0.005
    while True:
        try:
            if str(cur.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
                return
            cur.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def _install_sqlite_hooks(engine: Engine, busy_timeout_ms: int) -> None:
    """WAL, synchronous=FULL, busy timeout; and our own BEGIN (see the module docstring)."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # sqlite3 must not emit BEGIN itself
        cur = dbapi_conn.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            cur.execute("PRAGMA synchronous = FULL")
            # 32 MiB of page cache (default 2 MiB): the unique indexes on leaf hash and
            # record id take random keys, so their pages are touched all over.
            cur.execute("PRAGMA cache_size = -32768")
            _set_wal(cur, busy_timeout_ms)
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("ledger_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def make_engine(url: str, *, busy_timeout_ms: int = 30_000) -> Engine:
    """An Engine for ``url`` with the settings the log relies on (see the module docstring)."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise StorageError("SQLite needs a database file, not an in-memory database")
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000},
            # As many kept connections as the threads that read at once (AnyIO's pool of
            # 40, the sequencer, the publisher): an overflow connection is closed after
            # use, and opening one costs its PRAGMAs again.
            pool_size=48,
            max_overflow=16,
        )
        _install_sqlite_hooks(engine, busy_timeout_ms)
        return engine
    if backend == "postgresql":
        if parsed.get_driver_name() != "psycopg":
            raise StorageError("PostgreSQL is used through psycopg 3: postgresql+psycopg://...")
        return create_engine(
            url,
            pool_size=8,
            max_overflow=32,
            pool_pre_ping=True,
            isolation_level="READ COMMITTED",
        )
    raise StorageError(f"unsupported database {backend!r}: use SQLite or PostgreSQL")


__all__ = ["make_engine"]
