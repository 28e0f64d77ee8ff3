"""The auditing witness (``ledger witness serve --audit``), as a process on loopback.

The log is a tlog-tiles directory written by tests/logfactory.py (real signed records
of every type); the witness fetches its bundles and tiles, checks them against the
submitted checkpoint and replays the rules with the verifier's incremental state.
"""

from __future__ import annotations

import base64
import functools
import http.server
import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from logfactory import LogFactory
from test_witness_kit import WitnessProcess, env, ledger, verify_cosignature

from ledger.core import merkle
from ledger.core.encoding import b64encode


class FactoryLog:
    """A LogFactory seen as the witness tests' log (origin, vkey, requests)."""

    def __init__(self, directory: Path) -> None:
        self.f = LogFactory()
        self.directory = directory
        self.origin = self.f.origin
        self.vkey = self.f.log_key.vkey

    def publish(self) -> None:
        self.f.write(self.directory)

    def request(self, old: int) -> bytes:
        proof = merkle.consistency_proof(old, self.f.size, self.f.store) if old else []
        lines = [f"old {old}\n", *(b64encode(h) + "\n" for h in proof), "\n"]
        return "".join(lines).encode() + self.f.checkpoint()

    def text(self) -> str:
        return self.f.checkpoint().decode().split("\n\n")[0] + "\n"


@pytest.fixture
def log(tmp_path: Path) -> FactoryLog:
    return FactoryLog(tmp_path / "log")


@pytest.fixture
def auditing(tmp_path: Path, log: FactoryLog) -> Iterator[WitnessProcess]:
    w = WitnessProcess(tmp_path / "w", [log])
    w.start("--audit", "--source", f"{log.origin}={log.directory}")
    yield w
    w.kill()


def test_audits_a_lawful_log_incrementally_across_restarts(
    auditing: WitnessProcess, log: FactoryLog
) -> None:
    log.f.grow(100)
    log.publish()
    r = auditing.post(log.request(0))
    assert r.status == 200, r.body
    verify_cosignature(auditing.vkey, log.text(), r.body.decode())
    log.f.grow(300)  # across a tile boundary
    log.publish()
    r = auditing.post(log.request(100))
    assert r.status == 200, r.body
    state = auditing.db.with_name(auditing.db.name + ".audit")
    assert len(list(state.glob("*.state"))) == 1
    auditing.kill()
    auditing.start("--audit", "--source", f"{log.origin}={log.directory}")
    log.f.grow(57)
    log.publish()
    r = auditing.post(log.request(400))
    assert r.status == 200, r.body
    verify_cosignature(auditing.vkey, log.text(), r.body.decode())
    # A lost audit state (disk trouble, a restore): the next audit replays everything.
    for f in state.glob("*.state"):
        f.unlink()
    auditing.kill()
    auditing.start("--audit", "--source", f"{log.origin}={log.directory}")
    log.f.grow(3)
    log.publish()
    assert auditing.post(log.request(457)).status == 200
    assert len(list(state.glob("*.state"))) == 1


def test_audits_a_checkpoint_older_than_the_one_the_log_serves(
    auditing: WitnessProcess, log: FactoryLog
) -> None:
    log.f.grow(70)
    cp70 = log.request(0)
    log.f.grow(130)
    log.publish()  # a static log at 200 has only tile/0/000.p/200 and its bundle
    assert not (log.directory / "tile" / "0" / "000.p" / "70").exists()
    r = auditing.post(cp70)
    assert r.status == 200, r.body
    cp200 = log.request(70)
    log.f.grow(400)
    log.publish()  # at 600: full tiles and bundles 000 and 001, partial 002.p/88
    for stale in ("tile/0/000.p", "tile/entries/000.p"):
        shutil.rmtree(log.directory / stale)  # a mirror drops partials once full
    r = auditing.post(cp200)
    assert r.status == 200, r.body


def test_refuses_a_lawless_entry_naming_it_and_keeps_the_evidence(
    tmp_path: Path, auditing: WitnessProcess, log: FactoryLog
) -> None:
    log.f.grow(40)
    log.publish()
    assert auditing.post(log.request(0)).status == 200
    member = log.f.active[-1]
    statement = log.f.statements[0]
    log.f.grow(5)
    log.f.revoke(member)  # its current key: revoked
    bad = log.f.size
    log.f.endorse(member, statement)  # signed with the revoked key, inserted by the log
    log.f.grow(3)
    log.publish()
    body = log.request(40)
    r = auditing.post(body)
    assert r.status == 422, r.body
    problem = json.loads(r.body)
    assert problem["index"] == bad
    assert problem["code"] == problem["rule"] == "key_revoked"
    assert f"entry {bad}" in problem["detail"]
    # Not cosigned: the served checkpoint is still the one of size 40.
    assert auditing.checkpoint(log.origin).body.split(b"\n")[1] == b"40"

    # A plain witness, by contrast, cosigns the same (consistent) checkpoint.
    plain = WitnessProcess(tmp_path / "plain", [log])
    plain.start()
    try:
        assert plain.post(log.request(0)).status == 200
    finally:
        plain.kill()

    out = ledger("witness", "evidence", "--db", str(auditing.db), "--out", str(tmp_path / "ev"))
    assert "422 key_revoked" in out.stdout
    doc = json.loads(next((tmp_path / "ev").glob("*.evidence.json")).read_bytes())
    assert doc["format"] == "endorsement-ledger/witness-refusal/v1"
    assert doc["index"] == bad and doc["code"] == "key_revoked"
    entry = base64.b64decode(doc["entry"])
    assert entry == log.f.entries[bad]
    (tmp_path / "entry").write_bytes(entry)
    (tmp_path / "receipt").write_text(doc["receipt"])
    check = subprocess.run(
        [sys.executable, "-m", "ledger.verify.cli", "receipt", str(tmp_path / "receipt"),
         "--entry", str(tmp_path / "entry"), "--log-key", log.vkey],
        check=False, env=env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr


def test_tiles_that_do_not_match_the_checkpoint_are_refused(
    auditing: WitnessProcess, log: FactoryLog
) -> None:
    log.f.grow(300)
    log.publish()
    bundle = log.directory / "tile" / "entries" / "000"
    data = bytearray(bundle.read_bytes())
    data[100] ^= 1
    bundle.write_bytes(bytes(data))
    r = auditing.post(log.request(0))
    assert r.status == 422, r.body
    assert auditing.checkpoint(log.origin).status == 404


def test_an_unreadable_source_is_503_and_nothing_is_cosigned(
    tmp_path: Path, log: FactoryLog
) -> None:
    w = WitnessProcess(tmp_path / "w", [log])
    w.start("--audit", "--source", f"{log.origin}={tmp_path / 'nowhere'}")
    try:
        log.f.grow(10)
        r = w.post(log.request(0))
        assert r.status == 503, r.body
        assert json.loads(r.body)["code"] == "audit_unavailable"
        assert w.checkpoint(log.origin).status == 404
        log.publish()
        log.directory.rename(tmp_path / "nowhere")
        assert w.post(log.request(0)).status == 200
    finally:
        w.kill()


def test_audit_needs_a_source(tmp_path: Path, log: FactoryLog) -> None:
    w = WitnessProcess(tmp_path / "w", [log])
    with pytest.raises(RuntimeError, match="needs a source"):
        w.start("--audit")


def test_audits_from_an_http_mirror(tmp_path: Path, log: FactoryLog) -> None:
    """The log's tiles served over HTTP (a static mirror) by a thread of the test."""
    log.f.grow(300)
    log.publish()
    handler = functools.partial(_Quiet, directory=str(log.directory))
    mirror = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=mirror.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{mirror.server_address[1]}/"
    w = WitnessProcess(tmp_path / "w", [log])
    w.start("--audit", "--source", f"{log.origin}={url}", "--audit-timeout", "5")
    try:
        r = w.post(log.request(0))
        assert r.status == 200, r.body
        log.f.grow(20)
        log.publish()
        assert w.post(log.request(300)).status == 200
        assert _Quiet.paths, "the witness fetched nothing from the mirror"
        assert any(p.startswith("/tile/entries/001") for p in _Quiet.paths)
    finally:
        w.kill()
        mirror.shutdown()
        mirror.server_close()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    paths: list[str] = []  # noqa: RUF012 - what the witness fetched, for the test

    def log_message(self, format: str, *args: object) -> None:
        _Quiet.paths.append(self.path)
