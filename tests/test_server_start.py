"""Start-up: settings, data directory, log key, and refusing a database behind the log."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import ORIGIN, Maker
from pydantic import ValidationError

import api.server
from api.published import PublishedCheckpoint
from api.server import (
    EXIT_REFUSED,
    Service,
    StartupError,
    prepare,
    serve,
)
from api.settings import DEFAULT_ORIGIN, Settings
from api.storage.base import Appended
from ledger.core.checkpoint import open_checkpoint, parse_checkpoint_text
from ledger.core.note import parse_note, parse_vkey

# --- settings ------------------------------------------------------------------------


def test_default_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("LEDGER_"):
            monkeypatch.delenv(name)
    s = Settings()
    assert s.origin == DEFAULT_ORIGIN == "localhost/ledger"
    assert s.data_dir == Path("./ledger-data")
    assert s.effective_database_url == f"sqlite:///{Path('ledger-data/ledger.db').absolute()}"
    assert s.effective_log_key_path == Path("ledger-data/log.key")
    assert (s.host, s.port, s.workers) == ("127.0.0.1", 8000, 1)


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGER_ORIGIN", "ledger.example.org/paris-call")
    monkeypatch.setenv("LEDGER_BATCH_MAX_RECORDS", "64")
    monkeypatch.setenv("LEDGER_TRUSTED_PROXIES", "10.0.0.0/8, ::1")
    monkeypatch.setenv("LEDGER_DATABASE_URL", "postgresql+psycopg://u@db:5432/ledger")
    s = Settings()
    assert s.origin == "ledger.example.org/paris-call"
    assert s.batch_max_records == 64
    assert [str(n) for n in s.trusted_proxies] == ["10.0.0.0/8", "::1/128"]
    assert not s.is_sqlite
    # Options given in code override the environment.
    assert Settings(batch_max_records=8).batch_max_records == 8


def test_settings_round_trip_through_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = Settings(
        data_dir=tmp_path,
        origin="ledger.example.org/x",
        workers=3,
        trusted_proxies="127.0.0.1",
        log_key_passphrase="secret words",
        max_age_s=None,
    )
    for name, value in s.to_env().items():
        monkeypatch.setenv(name, value)
    again = Settings()
    assert again.model_dump() == {**s.model_dump(), "data_dir": tmp_path.absolute()}
    assert again.max_age_s is None and again.database_url is None
    assert again.log_key_passphrase is not None
    assert again.log_key_passphrase.get_secret_value() == "secret words"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("origin", "https://ledger.example.org/x", "scheme"),
        ("origin", "ledger example", "no spaces|without spaces"),
        ("origin", "ledger.example.org/a+b", "'\\+'"),
        ("origin", "ledger.example.org/", "end with '/'"),
        ("origin", "changeme.example.org/log", "placeholder"),
        ("origin", "", "1 to 255"),
        ("database_url", "mysql://x/y", "not supported"),
        ("database_url", "sqlite:///:memory:", "in-memory"),
        ("database_url", "postgresql+psycopg://u:changeme@h/db", "placeholder"),
        ("trusted_proxies", "0.0.0.0/0", "trusts every address"),
        ("port", 70000, "less than or equal"),
        ("log_level", "loud", "log_level"),
        ("log_key_passphrase", "", "empty"),
    ],
)
def test_unsafe_or_placeholder_settings_are_refused(field: str, value: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**{field: value})


def test_inconsistent_sizes_are_refused() -> None:
    with pytest.raises(ValidationError, match="queue_size"):
        Settings(queue_size=10, batch_max_records=100)
    with pytest.raises(ValidationError, match="max_batch_records"):
        Settings(queue_size=100, max_batch_records=1000, batch_max_records=10)


# --- prepare ---------------------------------------------------------------------------


def settings_for(data_dir: Path, **kw: Any) -> Settings:
    return Settings(data_dir=data_dir, origin=ORIGIN, **kw)


def append_some(service: Service, maker: Maker, labels: list[str]) -> int:
    """Sequence registrations through the service's sequencer; return the new size."""
    seq = service.start_sequencer()
    for label in labels:
        (r,) = seq.submit_many_async([maker.register(label)]).result(60)
        assert isinstance(r, Appended) and not r.existing
    seq.stop()
    service.sequencer = None
    return service.storage.head().size


@pytest.fixture
def now_maker() -> Maker:
    return Maker(start=int(time.time()) - 1000)


def backup_sqlite(data_dir: Path, to: Path) -> None:
    src = sqlite3.connect(data_dir / "ledger.db")
    dst = sqlite3.connect(to)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


def restore_sqlite(backup: Path, data_dir: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        (data_dir / f"ledger.db{suffix}").unlink(missing_ok=True)
    shutil.copy(backup, data_dir / "ledger.db")


def test_first_start_creates_key_vkey_database_and_checkpoint(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    service = prepare(settings_for(data_dir))
    try:
        assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
        key = data_dir / "log.key"
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert (data_dir / "log.vkey").read_text() == service.vkey + "\n"
        verifier = parse_vkey(service.vkey)
        assert verifier.name == ORIGIN
        cp, _ = open_checkpoint(service.head.checkpoint, [verifier], ORIGIN)
        assert cp.size == 0
        assert (data_dir / "published-checkpoint").read_bytes() == service.head.checkpoint
    finally:
        service.close()
    again = prepare(settings_for(data_dir))  # a restart: same key, same log
    try:
        assert again.vkey == service.vkey
        assert again.head == service.head
    finally:
        again.close()


def test_restart_keeps_the_log(tmp_path: Path, now_maker: Maker) -> None:
    service = prepare(settings_for(tmp_path))
    size = append_some(service, now_maker, ["a", "b", "c"])
    published = (tmp_path / "published-checkpoint").read_bytes()
    service.close()
    assert parse_checkpoint_text(parse_note(published).text).size == size == 3
    again = prepare(settings_for(tmp_path))
    try:
        assert again.head.size == 3 and again.head.checkpoint == published
    finally:
        again.close()


def test_refuses_a_restored_old_backup(tmp_path: Path, now_maker: Maker) -> None:
    data_dir = tmp_path / "data"
    service = prepare(settings_for(data_dir))
    append_some(service, now_maker, ["a", "b"])
    service.close()
    backup_sqlite(data_dir, tmp_path / "backup.db")  # a backup at size 2
    service = prepare(settings_for(data_dir))
    append_some(service, now_maker, ["c", "d", "e"])  # published up to size 5
    service.close()

    restore_sqlite(tmp_path / "backup.db", data_dir)
    with pytest.raises(StartupError, match=r"holds 2 entries.*checkpoint of 5 entries.*backup"):
        prepare(settings_for(data_dir))


def test_refuses_a_fork(tmp_path: Path, now_maker: Maker) -> None:
    """A database of the same size whose tree differs from the one published."""
    data_dir, other_dir = tmp_path / "data", tmp_path / "other"
    service = prepare(settings_for(data_dir))
    append_some(service, now_maker, ["a", "b"])
    service.close()
    # Another database, signed with the same key, with other entries.
    other_dir.mkdir(mode=0o700)
    shutil.copy(data_dir / "log.key", other_dir / "log.key")
    fork = prepare(settings_for(other_dir))
    append_some(fork, now_maker, ["x", "y"])
    fork.close()
    for suffix in ("", "-wal", "-shm"):
        (data_dir / f"ledger.db{suffix}").unlink(missing_ok=True)
    backup_sqlite(other_dir, data_dir / "ledger.db")
    with pytest.raises(StartupError, match="fork"):
        prepare(settings_for(data_dir))


def test_refuses_a_replaced_log_key(tmp_path: Path, now_maker: Maker) -> None:
    service = prepare(settings_for(tmp_path))
    append_some(service, now_maker, ["a"])
    service.close()
    (tmp_path / "log.key").unlink()  # a new key would be created: the log would fork
    with pytest.raises(StartupError, match="does not verify with the log key"):
        prepare(settings_for(tmp_path))


def test_refuses_another_origin(tmp_path: Path) -> None:
    prepare(settings_for(tmp_path)).close()
    with pytest.raises(StartupError, match="holds the log"):
        prepare(Settings(data_dir=tmp_path, origin="ledger.example.org/other"))


def test_refuses_an_exposed_log_key(tmp_path: Path) -> None:
    prepare(settings_for(tmp_path)).close()
    (tmp_path / "log.key").chmod(0o644)
    with pytest.raises(StartupError, match="log key"):
        prepare(settings_for(tmp_path))


def test_encrypted_log_key(tmp_path: Path) -> None:
    s = settings_for(tmp_path, log_key_passphrase="a long passphrase")
    first = prepare(s)
    first.close()
    assert prepare(s).vkey == first.vkey
    with pytest.raises(StartupError, match="log key"):
        prepare(settings_for(tmp_path))  # no passphrase for an encrypted key


def test_prepare_on_postgres(pg_url: str, tmp_path: Path, now_maker: Maker) -> None:
    service = prepare(settings_for(tmp_path, database_url=pg_url))
    try:
        assert set(service.storage.durability().settings) >= {"fsync", "synchronous_commit"}
        append_some(service, now_maker, ["a", "b"])
    finally:
        service.close()
    # The database is behind the published checkpoint once its entries are gone.
    with service.storage.engine.connect() as conn, conn.begin():
        conn.exec_driver_sql("DELETE FROM checkpoints WHERE size > 0")
        conn.exec_driver_sql("DELETE FROM entries")
        conn.exec_driver_sql("DELETE FROM tree_hashes")
        conn.exec_driver_sql(
            "UPDATE log_head SET size = 0, root = decode("
            "'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', 'hex')"
        )
        conn.exec_driver_sql(
            "UPDATE published_checkpoint SET size = 0, root = decode("
            "'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', 'hex'), "
            "checkpoint = (SELECT checkpoint FROM checkpoints WHERE size = 0)"
        )
    service.storage.close()
    with pytest.raises(StartupError, match="holds 0 entries"):
        prepare(settings_for(tmp_path, database_url=pg_url))


# --- the published checkpoint file ------------------------------------------------------


def test_published_checkpoint_never_goes_back(tmp_path: Path, now_maker: Maker) -> None:
    service = prepare(settings_for(tmp_path))
    append_some(service, now_maker, ["a", "b"])
    cp2 = service.storage.head().checkpoint
    cp0 = service.storage.checkpoint_at(0)
    service.close()
    assert cp0 is not None
    path = tmp_path / "published-checkpoint"
    PublishedCheckpoint(path).record(0, cp0.checkpoint)  # another process, older news
    assert path.read_bytes() == cp2
    assert not list(tmp_path.glob(".published-checkpoint.*.tmp"))


# --- run and exit status ------------------------------------------------------------------


def test_run_prepares_then_starts_uvicorn_with_the_app_factory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    monkeypatch.setattr(api.server.uvicorn, "run", lambda *a, **k: calls.append((a, k)))
    s = settings_for(tmp_path, port=8123, workers=2)
    for name in s.to_env():  # run() exports them: have monkeypatch restore them after
        monkeypatch.setenv(name, "")
    api.server.run(s)
    ((args, kwargs),) = calls
    assert args == ("api.app:create_app",)
    assert kwargs["factory"] is True
    assert (kwargs["host"], kwargs["port"], kwargs["workers"]) == ("127.0.0.1", 8123, 2)
    assert os.environ["LEDGER_ORIGIN"] == ORIGIN
    assert os.environ["LEDGER_DATA_DIR"] == str(tmp_path.absolute())
    assert Settings() == s  # what a worker process will read
    vkey = (tmp_path / "log.vkey").read_text().strip()
    assert vkey in capsys.readouterr().out


def test_serve_refuses_with_a_message_and_exit_status(
    tmp_path: Path, now_maker: Maker, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"
    service = prepare(settings_for(data_dir))
    service.close()
    backup_sqlite(data_dir, tmp_path / "backup.db")
    service = prepare(settings_for(data_dir))
    append_some(service, now_maker, ["a"])
    service.close()
    restore_sqlite(tmp_path / "backup.db", data_dir)

    assert serve(settings_for(data_dir)) == EXIT_REFUSED
    assert "refusing to start" in capsys.readouterr().err

    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env.update(LEDGER_DATA_DIR=str(data_dir), LEDGER_ORIGIN=ORIGIN)
    proc = subprocess.run(
        [sys.executable, "-m", "api.server"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=Path(__file__).parent.parent,
    )
    assert proc.returncode == EXIT_REFUSED
    assert "refusing to start" in proc.stderr and "old backup" in proc.stderr


def test_start_publishes_what_a_crash_left_committed(tmp_path: Path, now_maker: Maker) -> None:
    """A crash after a batch's commit and before its checkpoint was published leaves
    entries beyond the published checkpoint: start-up publishes them before serving."""
    service = prepare(settings_for(tmp_path))
    append_some(service, now_maker, ["a"])
    published = service.storage.head()
    # The log writer commits; the process dies before the publisher runs.
    outcome = service.storage.append_batch([now_maker.register("b")])
    assert outcome.size == 2 and service.storage.head() == published
    service.close()
    again = prepare(settings_for(tmp_path))
    try:
        head = again.storage.head()
        assert (head.size, head.root) == (2, outcome.root)
        cp, _ = open_checkpoint(head.checkpoint, [parse_vkey(again.vkey)], ORIGIN)
        assert (cp.size, cp.root) == (2, outcome.root)
        assert PublishedCheckpoint(again.settings.published_checkpoint_path).read() == (
            head.checkpoint
        )
    finally:
        again.close()
