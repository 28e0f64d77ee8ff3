"""Storage: the conformance suite (tests/storage_conformance.py) on every backend.

The factory is SqlStorage on the ``database_url`` fixture (SQLite, and PostgreSQL
when LEDGER_TEST_DATABASE_URL is set). SQL-specific behaviour (migrations, locks,
constraints, the head's compare-and-swap): tests/test_storage_sql.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from conftest import ORIGIN
from storage_conformance import *  # noqa: F403 - the suite runs here
from storage_conformance import MakeStorage

from api.storage.sql import SqlStorage


@pytest.fixture
def make_storage(database_url: str) -> Iterator[MakeStorage]:
    opened: list[SqlStorage] = []

    def make(origin: str = ORIGIN, **options: Any) -> SqlStorage:
        s = SqlStorage(database_url, origin=origin, **options)
        opened.append(s)
        return s

    yield make
    for s in opened:
        s.close()
