"""SqlStorage's own behaviour, beyond the conformance suite (tests/test_storage.py):
migrations, SQLite's write lock and WAL, constraints, the head's compare-and-swap."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from conftest import ORIGIN, Maker
from sqlalchemy import insert, select, text
from sqlalchemy.exc import IntegrityError
from storage_conformance import append, verify_cp

from api.checkpoints import CheckpointPublisher
from api.storage import models
from api.storage.base import StorageError, StorageUnavailableError
from api.storage.migrate import alembic_config, current_revision, head_revision, upgrade
from api.storage.sql import SqlStorage, make_engine
from keys.signer import NoteSigner
from ledger.core import merkle
from ledger.core.checkpoint import Checkpoint, sign_checkpoint


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
        a.init_log()
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
    s.init_log()
    s.close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        conn.close()


def test_unreachable_database_is_unavailable() -> None:
    with pytest.raises(StorageUnavailableError):
        SqlStorage("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1", origin=ORIGIN)


def test_record_id_is_unique_by_constraint(
    storage: SqlStorage, signer: NoteSigner, maker: Maker
) -> None:
    append(storage, signer, [maker.register("alice")], maker.time_ms)
    entries = models.metadata.tables["entries"]
    with storage.engine.connect() as conn, pytest.raises(IntegrityError), conn.begin():
        rid = conn.execute(select(entries.c.record_id)).scalar_one()
        conn.execute(insert(entries).values(idx=1, data=b"x", leaf_hash=bytes(32), record_id=rid))


def test_head_compare_and_swap_refuses_a_moved_head(
    storage: SqlStorage, signer: NoteSigner, maker: Maker
) -> None:
    append(storage, signer, [maker.register("alice")], maker.time_ms)
    with pytest.raises(StorageError, match="head moved"), storage._write() as (conn, head):
        # Another writer (that ignored the lock) moved the head under us.
        conn.execute(text("UPDATE log_head SET size = size + 1"))
        storage._cas_head(
            conn,
            head,
            size=head.size + 1,
            root=head.root,
            last_leaf_hash=head.last_leaf_hash,
            time_ms=head.last_time_ms,
        )
    assert storage.init_log().size == 1  # rolled back


def test_durability_settings(storage: SqlStorage) -> None:
    d = storage.durability()
    if storage.dialect == "sqlite":
        assert d.settings == {"journal_mode": "wal", "synchronous": "2"}
        assert d.warnings == []
    else:
        assert set(d.settings) == {"fsync", "synchronous_commit", "full_page_writes"}
        assert all(isinstance(w, str) for w in d.warnings)


def test_a_0001_database_keeps_its_checkpoint_as_the_published_one(
    tmp_path: Path, signer: NoteSigner
) -> None:
    """Revision 0001 kept the signed checkpoint in the head row; 0002 publishes it."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    try:
        cfg = alembic_config()
        with engine.connect() as conn:
            conn.execution_options(ledger_write=True)
            with conn.begin():
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "0001")
                cp = sign_checkpoint(Checkpoint(ORIGIN, 0, merkle.EMPTY_ROOT), signer)
                conn.execute(
                    text("UPDATE log_head SET origin = :o, checkpoint = :c WHERE id = 1"),
                    {"o": ORIGIN, "c": cp},
                )
    finally:
        engine.dispose()
    s = SqlStorage(url, origin=ORIGIN)  # migrates to the newest revision
    try:
        head = s.head()
        assert head.checkpoint == cp and verify_cp(head.checkpoint, signer) == (0, head.root)
        assert CheckpointPublisher(s, signer, None).publish_head() == head
    finally:
        s.close()
