"""bench.workloads: the supporters-list log is a valid log of the shape the mission has."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from bench.workloads import PARIS_CALL, keys_introduced, supporters_list
from ledger.core.entry import parse_entry
from ledger.verify import cli as verify_cli


@pytest.fixture(scope="module")
def paris() -> object:
    return supporters_list(PARIS_CALL)


def test_the_shape_is_a_supporters_list(paris) -> None:  # type: ignore[no-untyped-def]
    assert paris.size == PARIS_CALL
    types = Counter(parse_entry(e).record.body.TYPE for e in paris.entries)
    # about 1,200 signatories at the Paris Call's scale, each a new key
    assert 1_100 <= types["register"] <= 1_400
    assert keys_introduced(paris) >= 0.3 * paris.size
    assert types["statement"] == 4
    assert types["endorse"] >= 2 * types["register"] - 200
    assert types["withdraw"] > 0 and types["rotate"] > 0 and types["revoke"] > 0
    authors = [
        len(parse_entry(e).record.body.authors)  # type: ignore[union-attr]
        for e in paris.entries
        if parse_entry(e).record.body.TYPE == "statement"
    ]
    assert max(authors) >= 2  # co-authored


def test_it_is_deterministic() -> None:
    assert supporters_list(300).entries == supporters_list(300).entries
    assert supporters_list(300).entries != supporters_list(300, seed="other").entries


def test_the_verifier_accepts_it(paris, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    log = paris.write(tmp_path / "log")
    assert verify_cli.main(["log", str(log), "--log-key", paris.log_key.vkey]) == 0
