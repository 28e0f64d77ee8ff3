"""Crash safety: the real server, SIGKILLed under load, loses nothing and never forks.

The harness (tests/crashharness.py; docs/crash-safety.md) runs here at a size that
fits CI: 600 appends from 32 concurrent clients, 5 kills, on SQLite and, when
``LEDGER_TEST_DATABASE_URL`` is set, on PostgreSQL (a schema of its own per run).
Its full-size runs are ``python -m tests.crashharness --appends 10000 --kills 20``.

A restored old SQLite database is refused by the real ``ledger serve`` in the
SQLite run; tests/test_server_start.py covers the same refusal in ``prepare``
(``test_refuses_a_restored_old_backup``, ``test_refuses_a_fork``,
``test_prepare_on_postgres``) and through ``python -m api.server``
(``test_serve_refuses_with_a_message_and_exit_status``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from conftest import ORIGIN, SKIP_PG, pg_base_url
from crashharness import Options, run, verdict

from api.server import prepare
from api.settings import Settings

CI_SIZE = {"appends": 600, "clients": 32, "kills": 5}
ZERO = ("lost", "gaps", "duplicates", "forks", "unacknowledged", "unexpected_entries")


def assert_crash_safe(summary: dict[str, Any], opts: Options) -> None:
    shown = json.dumps(summary, indent=2)
    for name in ZERO:
        assert summary[name] == 0, f"{name}: {summary[name]}\n{shown}"
    assert summary["acknowledged"] == summary["final_size"] == opts.appends, shown
    assert summary["kills"] >= opts.kills, shown
    assert summary["receipt_failures"] == 0 and summary["resubmit_mismatches"] == 0, shown
    assert summary["resubmitted"] > 0 and summary["checkpoints_seen"] > 1, shown
    assert summary["rejected"] == {} and summary["server_errors_5xx"] == 0, shown
    assert summary["verify_exit"] == 0, shown
    assert summary["ok"] is True, shown


def test_crash_sqlite(tmp_path: Path) -> None:
    opts = Options(backend="sqlite", seed=11, workdir=tmp_path, **CI_SIZE)
    summary = run(opts)
    assert_crash_safe(summary, opts)
    assert "journal_mode=wal, synchronous=2" in summary["durability_logged"]
    # The copy taken after the first kill, restored behind the published checkpoint.
    assert summary["restore_refused"] is True, summary
    assert summary["restore_exit"] == 2 and "old backup" in summary["restore_message"]
    assert summary["restarted_on_newest_size"] == opts.appends


@pytest.mark.postgres
def test_crash_postgres(tmp_path: Path) -> None:
    base = pg_base_url()
    if base is None:
        pytest.skip(SKIP_PG)
    opts = Options(backend="postgres", seed=12, database_url=base, workdir=tmp_path, **CI_SIZE)
    summary = run(opts)
    assert_crash_safe(summary, opts)
    line = summary["durability_logged"]
    assert "fsync=on" in line and "synchronous_commit=on" in line


def test_the_harness_catches_a_lost_record_and_a_fork(tmp_path: Path) -> None:
    """One acknowledgement moved to another index, one forked checkpoint signed."""
    opts = Options(
        backend="sqlite", appends=40, clients=4, kills=1, seed=13, workdir=tmp_path, tamper=True
    )
    summary = run(opts)
    assert summary["lost"] == 1 and summary["forks"] == 1, summary
    assert summary["resubmit_mismatches"] == 1, summary
    assert summary["ok"] is False
    assert verdict({**summary, "lost": 0, "forks": 0, "resubmit_mismatches": 0}, opts) is (
        summary["verify_exit"] == 0
    )


def test_durability_settings_are_logged_at_start(
    database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="api.server")
    service = prepare(Settings(data_dir=tmp_path, origin=ORIGIN, database_url=database_url))
    service.close()
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("database ")]
    if database_url.startswith("sqlite"):
        assert line.endswith(": journal_mode=wal, synchronous=2"), line
    else:
        assert "fsync=on" in line and "synchronous_commit=on" in line, line
    assert service.warnings == []
