"""Storage: the conformance suite on every backend, plus backend-specific behaviour."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from conftest import ORIGIN, T0, Maker
from storage_conformance import *  # noqa: F403 - the suite runs here
from storage_conformance import append

from api.storage import models
from api.storage.base import StorageError, StorageUnavailableError
from api.storage.migrate import current_revision, head_revision, upgrade
from api.storage.sql import SqlStorage, make_engine
from keys.signer import NoteSigner


def test_migrations_create_exactly_the_models(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        upgrade(engine)
        upgrade(engine)  # a second run is a no-op
        with engine.connect() as conn:
            assert current_revision(conn) == head_revision()
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), models.metadata
            )
        assert diff == []
    finally:
        engine.dispose()


def test_concurrent_migrations_migrate_once(database_url: str) -> None:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            SqlStorage(database_url, origin=ORIGIN).close()
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    s = SqlStorage(database_url, origin=ORIGIN, migrate=False)
    try:
        assert s.head().size == 0
    finally:
        s.close()


def test_sqlite_needs_a_file() -> None:
    with pytest.raises(StorageError, match="file"):
        SqlStorage("sqlite://", origin=ORIGIN)
    with pytest.raises(StorageError, match="unsupported"):
        SqlStorage("mysql://localhost/x", origin=ORIGIN)


def test_sqlite_writer_holds_the_only_write_lock(
    tmp_path: Path, signer: NoteSigner, maker: Maker
) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    a = SqlStorage(url, origin=ORIGIN)
    b = SqlStorage(url, origin=ORIGIN, busy_timeout_ms=50)
    try:
        a.init_log(signer, time_ms=T0 * 1000)
        append(a, signer, [maker.register("alice")], maker.time_ms)
        with a._write():
            # A second writer cannot start: BEGIN IMMEDIATE waits, then gives up.
            with pytest.raises(StorageUnavailableError, match="locked"):
                append(b, signer, [maker.register("bob")], maker.time_ms)
            # Readers are not blocked (WAL).
            assert b.head().size == 1
        append(b, signer, [maker.register("bob")], maker.time_ms)
        assert a.head().size == 2
    finally:
        a.close()
        b.close()


def test_sqlite_file_is_in_wal_mode_with_full_sync(tmp_path: Path, signer: NoteSigner) -> None:
    path = tmp_path / "l.db"
    s = SqlStorage(f"sqlite:///{path}", origin=ORIGIN)
    s.init_log(signer)
    s.close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        conn.close()


def test_unreachable_database_is_unavailable() -> None:
    with pytest.raises(StorageUnavailableError):
        SqlStorage("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1", origin=ORIGIN)
