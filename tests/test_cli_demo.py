"""``ledger demo`` on a temporary directory, then ``ledger serve`` on what it left.

The demo runs with 3 of its 51 states (the hidden --states option) to keep the
test short; everything else (companies, civil society, the two authors, the
withdrawal, rotation and revocation) is the full example.
"""

from __future__ import annotations

import csv
import importlib.resources
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cli.bulk import read_signatories_csv
from cli.demo import DEMO_ORIGIN, EXAMPLE, EXAMPLE_FILES, free_port, local_server
from cli.errors import EXIT_USAGE
from cli.main import cli as ledger_cli
from ledger.core.entry import parse_entry
from ledger.core.records import MAX_TITLE, Kind, Statement
from ledger.verify import cli as verify_cli

STATES = 3


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    for name in list(os.environ):
        if name.startswith("LEDGER_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("LEDGER_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.chdir(tmp_path)
    yield CliRunner()


def invoke(runner: CliRunner, *args: object) -> Result:
    return runner.invoke(ledger_cli, [str(a) for a in args], catch_exceptions=False)


def example_rows() -> list[dict[str, str]]:
    with (EXAMPLE / "signatories.csv").open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_the_example_is_labelled_and_complete() -> None:
    rows = example_rows()
    kinds = [r["kind"] for r in rows]
    assert kinds.count("state") == 51
    assert kinds.count("company") >= 3 and kinds.count("civil-society") >= 3
    assert all(r["name"].startswith("Demo ") for r in rows)
    assert all(r["domain"].endswith(".example") for r in rows if r["domain"])
    assert len({r["name"] for r in rows}) == len(rows)
    assert sorted(r["demo"] for r in rows if r["demo"]) == [
        "author", "author", "revoke", "rotate", "withdraw",
    ]  # fmt: skip
    text = (EXAMPLE / "statement.txt").read_text(encoding="utf-8")
    assert text.startswith("EXAMPLE TEXT FOR DEMONSTRATIONS ONLY")
    assert [f"{i}. " in text for i in range(1, 10)] == [True] * 9
    title = (EXAMPLE / "title.txt").read_text(encoding="utf-8").strip()
    assert "demo" in title.lower() and len(title.encode()) <= MAX_TITLE


def test_demo_then_serve_its_log(runner: CliRunner, tmp_path: Path) -> None:
    data = tmp_path / "demo"
    result = invoke(runner, "demo", "--data-dir", data, "--states", STATES)
    assert result.exit_code == 0, result.output
    assert "the server's tallies match the verified log's" in result.stderr
    assert "refused, as it must be" in result.stderr and "key_rotated" in result.stderr
    assert "key_revoked" in result.stderr

    rows = example_rows()
    companies = sum(r["kind"] == "company" for r in rows)
    ngos = sum(r["kind"] == "civil-society" for r in rows)
    signatories = STATES + companies + ngos
    # The tallies table: kind, signatories, active endorsements (one company withdrew).
    expected = {
        "state": (STATES, STATES),
        "company": (companies, companies - 1),
        "civil-society": (ngos, ngos),
        "total": (signatories, signatories - 1),
    }
    table = {
        parts[0]: (int(parts[1]), int(parts[2]))
        for parts in (line.split() for line in result.stdout.splitlines())
        if len(parts) == 3 and parts[0] in expected
    }
    assert table == expected

    # Every receipt it kept verifies with ledger-verify against the log's key.
    vkey = (data / "log.vkey").read_text().strip()
    receipts = sorted((data / "receipts").glob("*.tlog-proof"))
    assert len(receipts) == 2 * signatories + 4  # registrations, endorsements, 4 others
    for r in receipts[:3] + receipts[-3:]:
        entry = r.with_suffix(".txt")
        assert verify_cli.main(["receipt", str(r), "--entry", str(entry), "--log-key", vkey]) == 0
    statements = [
        parse_entry(r.with_suffix(".txt").read_bytes()).record
        for r in receipts
        if b"statement\nlog " in r.with_suffix(".txt").read_bytes()
    ]
    assert len(statements) == 1 and isinstance(statements[0].body, Statement)
    assert len(statements[0].body.authors) == 2 and len(statements[0].signatures) == 2

    # The demo's keys are throwaway keys, and say so.
    assert "THROWAWAY" in (data / "demo-keys" / "README.txt").read_text()
    assert len(list((data / "demo-keys").glob("*.key"))) == signatories + 1  # + rotated

    # ledger serve --data-dir DIR serves the same log afterwards.
    with local_server(data, free_port(), origin=DEMO_ORIGIN) as url:
        listed = invoke(runner, "statements", "--server", url, "--json")
        assert listed.exit_code == 0, listed.output
        (item,) = json.loads(listed.stdout)["items"]
        assert item["tally"]["total"] == signatories - 1
        assert item["tally"]["by_kind"] == {
            "state": STATES, "company": companies - 1, "civil-society": ngos,
            "individual": 0, "other": 0,
        }  # fmt: skip
        assert verify_cli.main(["log", url, "--log-key", vkey, "--quiet"]) == 0


def test_demo_needs_a_fresh_directory(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "ledger.db").write_bytes(b"")
    result = invoke(runner, "demo", "--data-dir", tmp_path / "used", "--states", STATES)
    assert result.exit_code == EXIT_USAGE
    assert "ledger serve --data-dir" in result.stderr
    assert sorted(p.name for p in (tmp_path / "used").iterdir()) == ["ledger.db"]


def test_every_example_row_is_a_valid_registration() -> None:
    # read_signatories_csv encodes each row as a registration body, checking every field.
    with importlib.resources.as_file(EXAMPLE / "signatories.csv") as path:
        rows = read_signatories_csv(path)
    assert {r.kind for r in rows} == {Kind.STATE, Kind.COMPANY, Kind.CIVIL_SOCIETY}
    assert sum(r.country is not None for r in rows) == 42  # the ISO user-assigned codes


def test_export_example_copies_the_packaged_files(runner: CliRunner, tmp_path: Path) -> None:
    result = invoke(runner, "demo", "--export-example", "paris-call")
    assert result.exit_code == 0, result.output
    for name in EXAMPLE_FILES:
        assert (tmp_path / "paris-call" / name).read_bytes() == (EXAMPLE / name).read_bytes()
    assert not (tmp_path / "ledger-demo").exists()  # nothing else was done
    again = invoke(runner, "demo", "--export-example", "paris-call")
    assert again.exit_code == EXIT_USAGE and "refusing to overwrite" in again.stderr


def test_demo_without_the_server_extra_names_it(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "api.settings", None)  # as in a [cli]-only install
    result = invoke(runner, "demo", "--data-dir", tmp_path / "d", "--states", STATES)
    assert result.exit_code == EXIT_USAGE
    assert "pip install 'endorsement-ledger[server]'" in result.stderr
    assert not (tmp_path / "d").exists()
