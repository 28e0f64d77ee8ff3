"""ledger-verify: whole logs, damaged logs, incremental runs, forks, receipts, JSON.

Every damaged log asserts the exit code *and* what the message names: the entry,
the field (or tile path) and, where it helps, expected and found values.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import http.server
import io
import json
import shutil
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from logfactory import (
    ORIGIN,
    LogFactory,
    LogKey,
    private_key,
    public_bytes,
    sign_record,
    write_static_log,
)

from ledger.core import merkle, tiles
from ledger.core.entry import Entry, parse_entry
from ledger.core.fork import evidence_bytes, fork_evidence
from ledger.core.note import ALG_COSIGNATURE_V1, cosign, make_vkey, parse_note
from ledger.core.receipt import Receipt
from ledger.core.records import Endorsement, Kind, Registration, SignedRecord
from ledger.core.state import KINDS
from ledger.verify import cli as verify_cli
from ledger.verify.cli import _ProgressBar, main
from ledger.verify.source import DirectorySource
from ledger.verify.statefile import load_state
from ledger.verify.trust import Trust
from ledger.verify.verifier import verify_log

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    """Run ``ledger-verify`` in-process: (exit code, stdout, stderr)."""

    def _run(*args: str | Path) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return _run


BIG = 20_000


@pytest.fixture(scope="session")
def big_log(tmp_path_factory: pytest.TempPathFactory) -> tuple[LogFactory, Path]:
    """A log of 20,000 entries, built once per session (a few seconds of signing)."""
    f = LogFactory(seed="big")
    f.grow(BIG)
    return f, f.write(tmp_path_factory.mktemp("big") / "log")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_dir() -> Iterator[Callable[[Path], str]]:
    """Serve a directory over HTTP on localhost; yields directory -> URL prefix."""
    servers: list[http.server.ThreadingHTTPServer] = []

    def serve(directory: Path) -> str:
        handler = functools.partial(_QuietHandler, directory=str(directory))
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}/"

    yield serve
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


def make_log(tmp_path: Path, size: int, *, seed: str = "factory") -> tuple[LogFactory, Path]:
    f = LogFactory(seed=seed)
    f.grow(size)
    return f, f.write(tmp_path / f"log-{seed}-{size}")


def expected_tallies(f: LogFactory) -> dict[str, object]:
    """The tallies recomputed from what the factory did, independently of the verifier."""
    by_kind = Counter(m.kind.value for m in f.members)
    per_statement: dict[bytes, Counter[str]] = {s: Counter() for s in f.statements}
    for member_no, st in f.active_pairs:
        per_statement[st][f.members[member_no].kind.value] += 1
    return {
        "signatories": len(f.members),
        "signatories_by_kind": {k: by_kind.get(k, 0) for k in KINDS},
        "endorsements": {s.hex(): sum(c.values()) for s, c in per_statement.items()},
    }


def check_tallies(report: dict[str, object], f: LogFactory) -> None:
    tallies = report["tallies"]
    assert isinstance(tallies, dict)
    want = expected_tallies(f)
    assert tallies["signatories"] == want["signatories"]
    assert tallies["signatories_by_kind"] == want["signatories_by_kind"]
    assert {st["id"]: st["endorsements"] for st in tallies["statements"]} == want["endorsements"]


# --- valid logs ------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 255, 256, 257])
def test_valid_logs_of_edge_sizes(tmp_path: Path, run: Run, size: int) -> None:
    f, log = make_log(tmp_path, size)
    code, out, err = run("log", log, "--log-key", f.log_key.vkey, "--json", "--jobs", "1")
    assert (code, err) == (0, "")
    report = json.loads(out)
    assert report["valid"] is True
    assert report["size"] == size
    assert report["entries_checked"] == size
    assert report["root"] == base64.b64encode(f.root()).decode()
    check_tallies(report, f)
    # every hash tile of the tree was read and checked
    assert report["tiles_checked"] == len(tiles.tiles_for_size(size))


def test_human_summary(tmp_path: Path, run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    f, log = make_log(tmp_path, 300)
    code, out, err = run("log", log, "--log-key", f.log_key.vkey)
    assert code == 0
    assert err == ""  # no progress bar: stderr is not a terminal
    assert out.startswith(f"VALID: {ORIGIN} at {log}")
    assert "entries 0..299 (300 entries" in out
    kinds = Counter(m.kind.value for m in f.members)
    assert f"signatories: {len(f.members)} (state {kinds['state']}, company" in out
    assert f"statements: {len(f.statements)}" in out
    assert "active endorsements (state " in out
    monkeypatch.setattr(verify_cli, "MAX_SHOWN", 2)
    code, out, _ = run("log", log, "--log-key", f.log_key.vkey)
    assert "(the 2 most endorsed; --json lists them all)" in out
    assert out.count(" active endorsements (") == 2


def test_worked_example_of_the_spec(tmp_path: Path, run: Run) -> None:
    """The 8-entry log of docs/spec.md, with its published checkpoint, verifies."""
    vectors = Path(__file__).parent / "vectors" / "records"
    ex = json.loads((vectors / "examples.json").read_text())
    entries = [base64.b64decode(e["entry_b64"]) for e in ex["log"]]
    log = write_static_log(
        tmp_path / "example", entries, None, checkpoint=(vectors / "checkpoint.txt").read_bytes()
    )
    code, out, _ = run("log", log, "--log-key", ex["log_vkey"], "--json")
    assert code == 0, out
    report = json.loads(out)
    assert base64.b64decode(report["root"]).hex() == (
        "f366c4f6aa2d776e43fa48c4370c81b02dadcb71caffc2a15af351113e00ff83"
    )
    tallies = report["tallies"]
    assert tallies["signatories"] == 3
    assert [st["endorsements"] for st in tallies["statements"]] == [0]


def test_big_log_same_result_with_1_and_2_jobs(big_log: tuple[LogFactory, Path], run: Run) -> None:
    f, log = big_log
    reports = []
    for jobs in ("1", "2"):
        code, out, _ = run("log", log, "--log-key", f.log_key.vkey, "--json", "--jobs", jobs)
        assert code == 0
        report = json.loads(out)
        del report["elapsed_s"]
        reports.append(report)
    assert reports[0] == reports[1]
    assert reports[0]["entries_checked"] == f.size
    assert reports[0]["signatures_checked"] > f.size  # statements and rotations sign twice+
    check_tallies(reports[0], f)


def test_big_log_same_failure_with_1_and_2_jobs(
    big_log: tuple[LogFactory, Path], tmp_path: Path, run: Run
) -> None:
    f, log = big_log
    bad = tmp_path / "bad"
    shutil.copytree(log, bad)
    index = 5_000
    _replace_entry(bad, f, index, _flip_signature(f.entries[index]))
    outs = []
    for jobs in ("1", "2"):
        code, out, _ = run("log", bad, "--log-key", f.log_key.vkey, "--json", "--jobs", jobs)
        assert code == 1
        outs.append(json.loads(out))
    assert outs[0] == outs[1]
    assert outs[0]["error"]["index"] == index
    assert outs[0]["error"]["code"] == "bad_signature"


def test_http_source(tmp_path: Path, run: Run, http_dir: Callable[[Path], str]) -> None:
    f, log = make_log(tmp_path, 600)
    code, out, err = run("log", http_dir(log), "--log-key", f.log_key.vkey, "--json")
    assert code == 0, err
    assert json.loads(out)["size"] == 600


def test_too_old_is_a_warning_not_an_error(tmp_path: Path, run: Run) -> None:
    f = LogFactory()
    f.grow(10)
    m = f.active[0]
    st = f.statement([m])  # new: no earlier endorsement of it to replay
    late = Endorsement(ORIGIN, f.signed_at - 3600, m.id, st, "late")
    f.append_record(sign_record(late, [m.current]))
    log = f.write(tmp_path / "log")
    code, out, _ = run("log", log, "--log-key", f.log_key.vkey)
    assert code == 0
    assert "warnings" not in out
    code, out, _ = run("log", log, "--log-key", f.log_key.vkey, "--max-age", "60")
    assert code == 0
    assert "warnings: 1 (not errors)" in out
    assert f"entry {f.size - 1}: too_old" in out


# --- damaged logs ----------------------------------------------------------------------

SIZE = 300  # a full bundle and tile, then partial ones


def _bundle_path(log: Path, f: LogFactory, index: int) -> Path:
    k = index // 256
    width = min(256, f.size - 256 * k)
    return log / tiles.entries_path(k, width)


def _replace_entry(log: Path, f: LogFactory, index: int, data: bytes) -> None:
    """Rewrite one entry inside its bundle, leaving tiles and checkpoint as they were."""
    path = _bundle_path(log, f, index)
    entries = tiles.decode_bundle(path.read_bytes())
    entries[index % 256] = data
    path.write_bytes(tiles.encode_bundle(entries))


def _flip_signature(entry: bytes) -> bytes:
    """Flip one bit of the (decoded) last signature and re-encode it canonically."""
    head, _, b64 = entry.rstrip(b"\n").rpartition(b" ")
    sig = bytearray(base64.b64decode(b64))
    sig[10] ^= 0x01
    return head + b" " + base64.b64encode(bytes(sig)) + b"\n"


def _flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _resign(tmp_path: Path, f: LogFactory, entries: list[bytes]) -> Path:
    return write_static_log(tmp_path / "resigned", entries, f.log_key)


Damage = Callable[[Path, Path, LogFactory], Path]


def dmg_entry_byte(tmp: Path, log: Path, f: LogFactory) -> Path:
    entry = f.entries[5]
    pos = entry.index(b"signed_at 1") + len(b"signed_at 1")
    damaged = entry[:pos] + bytes([entry[pos] ^ 0x01]) + entry[pos + 1 :]  # a digit changes
    _replace_entry(log, f, 5, damaged)
    return log


def dmg_tile_hash(tmp: Path, log: Path, f: LogFactory) -> Path:
    _flip_byte(log / "tile/0/000", 32 * 7 + 3)
    return log


def dmg_signature(tmp: Path, log: Path, f: LogFactory) -> Path:
    _replace_entry(log, f, 9, _flip_signature(f.entries[9]))
    return log


def dmg_checkpoint_root(tmp: Path, log: Path, f: LogFactory) -> Path:
    cp = (log / "checkpoint").read_bytes().split(b"\n")
    root = bytearray(base64.b64decode(cp[2]))
    root[0] ^= 0x01
    cp[2] = base64.b64encode(bytes(root))
    (log / "checkpoint").write_bytes(b"\n".join(cp))
    return log


def dmg_checkpoint_signature(tmp: Path, log: Path, f: LogFactory) -> Path:
    cp = (log / "checkpoint").read_bytes().rstrip(b"\n").split(b"\n")
    name, _, b64 = cp[-1].rpartition(b" ")
    sig = bytearray(base64.b64decode(b64))
    sig[20] ^= 0x01
    cp[-1] = name + b" " + base64.b64encode(bytes(sig))
    (log / "checkpoint").write_bytes(b"\n".join(cp) + b"\n")
    return log


def dmg_entry_dropped(tmp: Path, log: Path, f: LogFactory) -> Path:
    return _resign(tmp, f, f.entries[:10] + f.entries[11:])


def dmg_entry_duplicated(tmp: Path, log: Path, f: LogFactory) -> Path:
    return _resign(tmp, f, [*f.entries[:11], f.entries[10], *f.entries[11:]])


def dmg_entries_reordered(tmp: Path, log: Path, f: LogFactory) -> Path:
    e = list(f.entries)
    e[20], e[21] = e[21], e[20]
    return _resign(tmp, f, e)


def dmg_truncated_tile(tmp: Path, log: Path, f: LogFactory) -> Path:
    path = log / "tile/0/000"
    path.write_bytes(path.read_bytes()[:8000])
    return log


def dmg_truncated_bundle(tmp: Path, log: Path, f: LogFactory) -> Path:
    path = log / "tile/entries/000"
    path.write_bytes(path.read_bytes()[:-7])
    return log


def dmg_missing_bundle(tmp: Path, log: Path, f: LogFactory) -> Path:
    (log / "tile/entries/000").unlink()
    return log


def dmg_other_key(tmp: Path, log: Path, f: LogFactory) -> Path:
    other = LogKey.for_origin(ORIGIN, label="another key")
    (log / "checkpoint").write_bytes(other.sign(f.size, f.root()))
    return log


def dmg_wrong_origin(tmp: Path, log: Path, f: LogFactory) -> Path:
    (log / "checkpoint").write_bytes(f.log_key.sign(f.size, f.root(), "evil.example/log"))
    return log


def dmg_records_for_another_log(tmp: Path, log: Path, f: LogFactory) -> Path:
    other = LogFactory("other.example.org/log")
    other.grow(5)
    # The trusted log key signs a tree of another log's records.
    return write_static_log(tmp / "other", other.entries, f.log_key)


def dmg_registered_twice(tmp: Path, log: Path, f: LogFactory) -> Path:
    g = LogFactory()
    g.grow(40)
    m = g.members[1]
    again = Registration(ORIGIN, g.signed_at, public_bytes(m.keys[0]), "Again", Kind.OTHER)
    g.append_record(sign_record(again, [m.keys[0]]))
    f.__dict__.update(g.__dict__)  # the test reads the index from f
    return g.write(tmp / "twice")


def dmg_endorsement_by_revoked_key(tmp: Path, log: Path, f: LogFactory) -> Path:
    g = LogFactory()
    g.grow(40)
    m = g.active[0]
    g.revoke(m)
    g.endorse(m, g.statements[0])  # whether or not it endorsed it already
    f.__dict__.update(g.__dict__)
    return g.write(tmp / "revoked")


def dmg_broken_prev(tmp: Path, log: Path, f: LogFactory) -> Path:
    e = Entry(7, bytes(32), f.time_ms, _parse_record_of(f.entries[7]))
    entries = list(f.entries)
    entries[7] = e.encode()
    return _resign(tmp, f, entries)


def dmg_time_goes_back(tmp: Path, log: Path, f: LogFactory) -> Path:
    old = parse_entry(f.entries[12])
    entries = list(f.entries)
    entries[12] = Entry(12, old.prev, old.time_ms - 60_000, old.record).encode()
    # entry 13 must still link to the (changed) entry 12
    nxt = parse_entry(f.entries[13])
    entries[13] = Entry(13, merkle.leaf_hash(entries[12]), nxt.time_ms, nxt.record).encode()
    return _resign(tmp, f, entries)


def dmg_root_not_of_entries(tmp: Path, log: Path, f: LogFactory) -> Path:
    (log / "checkpoint").write_bytes(f.log_key.sign(f.size, bytes(32)))
    return log


def _parse_record_of(entry: bytes) -> SignedRecord:
    return parse_entry(entry).record


DAMAGES: list[tuple[Damage, int, list[str]]] = [
    (dmg_entry_byte, 1, ["entry 5", "signature does not verify"]),
    (dmg_tile_hash, 1, ["entry 7, field 'tile/0/000'", "at hash 7 (entry 7)", "expected"]),
    (dmg_signature, 1, ["entry 9", "field 'signature'", "signature does not verify"]),
    (dmg_checkpoint_root, 1, ["field 'checkpoint signatures'", "signature does not verify"]),
    (dmg_checkpoint_signature, 1, ["field 'checkpoint signatures'", "invalid signature by"]),
    (dmg_entry_dropped, 1, ["entry 10, field 'index'", "expected 10, found 11"]),
    (dmg_entry_duplicated, 1, ["entry 11, field 'index'", "expected 11, found 10"]),
    (dmg_entries_reordered, 1, ["entry 20, field 'index'", "expected 20, found 21"]),
    (dmg_truncated_tile, 1, ["field 'tile/0/000'", "truncated", "expected 8192, found 8000"]),
    (dmg_truncated_bundle, 1, ["field 'tile/entries/000'", "entries 0..255", "truncated"]),
    (dmg_other_key, 1, ["field 'checkpoint signatures'", "no valid signature by a known key"]),
    (dmg_wrong_origin, 1, ["field 'checkpoint origin'", "found 'evil.example/log'"]),
    (dmg_records_for_another_log, 1, ["entry 0, field 'log'", "bound to another log"]),
    (dmg_registered_twice, 1, ["field 'key'", "already registered"]),
    (dmg_endorsement_by_revoked_key, 1, ["field 'signatory'", "revoked"]),
    (dmg_broken_prev, 1, ["entry 7, field 'prev'", "previous entry"]),
    (dmg_time_goes_back, 1, ["entry 12, field 'time'", "time goes back"]),
    (dmg_root_not_of_entries, 1, ["root", "not the root of the signed checkpoint"]),
    (dmg_missing_bundle, 2, ["tile/entries/000", "no such file"]),
]


@pytest.mark.parametrize(
    ("damage", "code", "words"), DAMAGES, ids=[d[0].__name__[4:] for d in DAMAGES]
)
def test_damaged_log(tmp_path: Path, run: Run, damage: Damage, code: int, words: list[str]) -> None:
    f, log = make_log(tmp_path, SIZE)
    bad = damage(tmp_path, log, f)
    got, out, err = run("log", bad, "--log-key", f.log_key.vkey, "--jobs", "1")
    assert got == code, err
    assert out == ""
    first = err.splitlines()[0]
    for w in words:
        assert w in first, (w, first)
    # the same failure, machine-readable
    got, out, _ = run("log", bad, "--log-key", f.log_key.vkey, "--json")
    assert got == code
    report = json.loads(out)
    assert report["valid"] is False
    assert report["exit_code"] == code
    assert report["error"]["text"] in first


def test_rule_failures_name_index_and_code(tmp_path: Path, run: Run) -> None:
    f = LogFactory()
    bad = dmg_registered_twice(tmp_path, tmp_path, f)
    code, out, _ = run("log", bad, "--log-key", f.log_key.vkey, "--json")
    assert code == 1
    error = json.loads(out)["error"]
    assert error["index"] == f.size - 1
    assert error["code"] == "already_registered"
    assert error["field"] == "key"

    g = LogFactory()
    bad = dmg_endorsement_by_revoked_key(tmp_path, tmp_path, g)
    code, out, _ = run("log", bad, "--log-key", g.log_key.vkey, "--json")
    error = json.loads(out)["error"]
    assert (code, error["index"], error["code"]) == (1, g.size - 1, "key_revoked")


# --- incremental runs and forks ----------------------------------------------------------


class CountingSource(DirectorySource):
    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.paths: list[str] = []

    def fetch(self, path: str) -> bytes:
        self.paths.append(path)
        return super().fetch(path)


def test_incremental_fetches_only_new_entries(tmp_path: Path, run: Run) -> None:
    f = LogFactory()
    f.grow(300)
    log = f.write(tmp_path / "log")
    state = tmp_path / "state.json"
    code, out, _ = run("log", log, "--log-key", f.log_key.vkey, "--state", state)
    assert code == 0
    assert f"state saved to {state}" in out
    saved = load_state(state)
    assert saved is not None and saved.size == 300

    f.grow(400)  # 700 entries: bundle 1 fills up, bundle 2 is partial
    f.write(log)
    trust = Trust.from_vkeys([f.log_key.vkey])
    source = CountingSource(log)
    result = verify_log(source, trust, state=saved)
    assert (result.previous_size, result.entries_checked) == (300, 400)
    # Only what the new entries need, each once: the checkpoint, the tiles of the
    # consistency proof (also checked against the new entries) and two bundles.
    assert sorted(source.paths) == [
        "checkpoint",
        "tile/0/001",
        "tile/0/002.p/188",
        "tile/1/000.p/2",
        "tile/entries/001",
        "tile/entries/002.p/188",
    ]

    # the same through the CLI, and the state moves on
    code, out, _ = run("log", log, "--log-key", f.log_key.vkey, "--state", state, "--json")
    assert code == 0
    report = json.loads(out)
    assert (report["verified_from"], report["entries_checked"]) == (300, 400)
    check_tallies(report, f)
    code, out, _ = run("log", log, "--log-key", f.log_key.vkey, "--state", state)
    assert code == 0
    assert "no new entries (0 entries" in out
    assert not list(tmp_path.glob(".state.json.*"))  # no temporary file left behind


def test_incremental_equals_full(tmp_path: Path, run: Run) -> None:
    f = LogFactory()
    state = tmp_path / "state.json"
    log = tmp_path / "log"
    for step in (1, 254, 1, 513, 3):
        f.grow(step)
        f.write(log)
        code, out, err = run("log", log, "--log-key", f.log_key.vkey, "--state", state, "--json")
        assert code == 0, err
    incremental = json.loads(out)
    code, out, _ = run("log", log, "--log-key", f.log_key.vkey, "--json")
    full = json.loads(out)
    assert incremental["tallies"] == full["tallies"]
    assert incremental["root"] == full["root"]


def test_incremental_damaged_new_part_is_invalid_not_fork(tmp_path: Path, run: Run) -> None:
    f = LogFactory()
    f.grow(300)
    log = f.write(tmp_path / "log")
    state = tmp_path / "state.json"
    assert run("log", log, "--log-key", f.log_key.vkey, "--state", state)[0] == 0
    f.grow(300)
    f.write(log)
    _replace_entry(log, f, 450, _flip_signature(f.entries[450]))
    code, _, err = run("log", log, "--log-key", f.log_key.vkey, "--state", state)
    assert code == 1
    assert "entry 450" in err
    saved = load_state(state)
    assert saved is not None and saved.size == 300  # not replaced


def _fork_setup(tmp_path: Path, run: Run, old: int, new: int) -> tuple[LogFactory, Path, Path]:
    a = LogFactory()
    a.grow(old)
    log = a.write(tmp_path / "log")
    state = tmp_path / "state.json"
    assert run("log", log, "--log-key", a.log_key.vkey, "--state", state)[0] == 0
    b = LogFactory(seed="another history")
    b.grow(new)
    shutil.rmtree(log)
    b.write(log)
    return b, log, state


@pytest.mark.parametrize(("old", "new"), [(300, 300), (300, 500), (256, 700), (1, 2)])
def test_fork_is_detected_and_evidence_checks(tmp_path: Path, run: Run, old: int, new: int) -> None:
    b, log, state = _fork_setup(tmp_path, run, old, new)
    before = state.read_bytes()
    code, out, err = run("log", log, "--log-key", b.log_key.vkey, "--state", state)
    assert code == 3
    assert out == ""
    assert err.startswith("ledger-verify: FORK:")
    assert "field 'root'" in err
    evidence = Path(f"{state}.fork-evidence.json")
    assert f"saved to {evidence}" in err
    assert state.read_bytes() == before  # the stored checkpoint is kept
    doc = json.loads(evidence.read_text())
    assert len(doc["checkpoints"]) == 2
    # anyone with the log's key can check the evidence
    code, out, _ = run("evidence", evidence, "--log-key", b.log_key.vkey)
    assert code == 3
    assert out.startswith("FORK PROVEN")
    # evidence whose proof was tampered with proves nothing
    if doc["consistency_proof"]:
        doc["consistency_proof"][0] = base64.b64encode(bytes(32)).decode()
        evidence.write_text(json.dumps(doc))
        code, _, err = run("evidence", evidence, "--log-key", b.log_key.vkey)
        assert code == 1
        assert "NOT A FORK PROOF" in err


def test_fork_evidence_path_and_json(tmp_path: Path, run: Run) -> None:
    b, log, state = _fork_setup(tmp_path, run, 100, 200)
    where = tmp_path / "proof.json"
    code, out, _ = run(
        "log", log, "--log-key", b.log_key.vkey, "--state", state, "--evidence", where, "--json"
    )
    assert code == 3
    report = json.loads(out)
    assert report["error"]["code"] == "fork"
    assert report["evidence"] == str(where)
    assert where.exists()


def test_consistent_checkpoints_are_no_evidence(tmp_path: Path, run: Run) -> None:
    f = LogFactory()
    f.grow(300)
    proof = merkle.consistency_proof(100, 300, f.store)
    path = tmp_path / "e.json"
    path.write_bytes(evidence_bytes(fork_evidence(f.checkpoint(100), f.checkpoint(300), proof)))
    code, _, err = run("evidence", path, "--log-key", f.log_key.vkey)
    assert code == 1
    assert "no fork" in err


def test_rollback_is_reported_as_fork(tmp_path: Path, run: Run) -> None:
    f = LogFactory()
    f.grow(300)
    log = f.write(tmp_path / "log")
    state = tmp_path / "state.json"
    assert run("log", log, "--log-key", f.log_key.vkey, "--state", state)[0] == 0
    shutil.rmtree(log)
    f.write(log, size=200)
    code, _, err = run("log", log, "--log-key", f.log_key.vkey, "--state", state)
    assert code == 3
    assert "older than the stored verified checkpoint" in err
    assert "expected '>= 300', found 200" in err


def test_state_file_errors(tmp_path: Path, run: Run) -> None:
    f, log = make_log(tmp_path, 10)
    state = tmp_path / "state.json"
    state.write_text("{not json")
    code, _, err = run("log", log, "--log-key", f.log_key.vkey, "--state", state)
    assert code == 2
    assert "state file" in err
    other = LogFactory("other.example.org/log")
    other.grow(3)
    olog = other.write(tmp_path / "other")
    state.unlink()
    assert run("log", olog, "--log-key", other.log_key.vkey, "--state", state)[0] == 0
    code, _, err = run("log", log, "--log-key", f.log_key.vkey, "--state", state)
    assert code == 2
    assert "state file is for another log" in err
    # a state whose tree or checkpoint was tampered with is refused, not trusted
    state.unlink()
    assert run("log", log, "--log-key", f.log_key.vkey, "--state", state)[0] == 0
    good = state.read_bytes()
    _reseal(state, good, lambda doc: doc["tiles"][0].__setitem__(0, "00" * 32))
    code, _, err = run("log", log, "--log-key", f.log_key.vkey, "--state", state)
    assert code == 2
    assert "its tree does not give its root" in err

    def forge(doc: dict[str, Any]) -> None:
        doc["checkpoint"] = doc["checkpoint"].replace("\n10\n", "\n11\n")

    _reseal(state, good, forge)
    code, _, err = run("log", log, "--log-key", f.log_key.vkey, "--state", state)
    assert code == 2
    assert "checkpoint does not verify" in err


def _reseal(path: Path, data: bytes, change: Callable[[dict[str, Any]], None]) -> None:
    """Write the state file ``data`` with its JSON header changed and its SHA-256
    trailer recomputed: damage that only the checks of the content can catch."""
    line, _, rest = data.partition(b"\n")
    doc = json.loads(line)
    change(doc)
    head = json.dumps(doc, separators=(",", ":")).encode() + b"\n"
    body = rest[:-32]
    path.write_bytes(head + body + hashlib.sha256(head + body).digest())


# --- receipts ---------------------------------------------------------------------------


def _receipt(f: LogFactory, index: int, size: int | None = None) -> bytes:
    size = f.size if size is None else size
    proof = merkle.inclusion_proof(index, size, f.store)
    return Receipt(index, proof, f.checkpoint(size), None).encode()


def test_receipts(tmp_path: Path, run: Run) -> None:
    f = LogFactory()
    f.grow(300)
    rc = tmp_path / "r.tlog-proof"
    rc.write_bytes(_receipt(f, 123))
    entry = tmp_path / "entry"
    entry.write_bytes(f.entries[123])
    vkey = f.log_key.vkey

    code, out, _ = run("receipt", rc, "--entry", entry, "--log-key", vkey)
    assert code == 0
    assert out.startswith("VALID receipt: entry 123")
    code, out, _ = run("receipt", rc, "--leaf-hash", f.leaf_hash(123).hex(), "--log-key", vkey)
    assert code == 0
    code, out, _ = run("receipt", rc, "--entry", entry, "--log-key", vkey, "--json")
    report = json.loads(out)
    assert (report["valid"], report["index"], report["size"]) == (True, 123, 300)

    # another entry: the proof leads elsewhere
    entry.write_bytes(f.entries[124])
    code, _, err = run("receipt", rc, "--entry", entry, "--log-key", vkey)
    assert code == 1
    assert "INVALID receipt" in err and "root" in err
    # a receipt whose checkpoint another key signed
    other = LogKey.for_origin(ORIGIN, label="another key")
    bad = _receipt(f, 123).replace(f.checkpoint(), other.sign(f.size, f.root()))
    rc.write_bytes(bad)
    code, _, err = run("receipt", rc, "--leaf-hash", f.leaf_hash(123).hex(), "--log-key", vkey)
    assert code == 1
    assert "no valid signature by a known key" in err
    # a tampered proof
    proof = merkle.inclusion_proof(123, 300, f.store)
    proof[2] = bytes(32)
    rc.write_bytes(Receipt(123, proof, f.checkpoint(), None).encode())
    code, _, err = run("receipt", rc, "--leaf-hash", f.leaf_hash(123).hex(), "--log-key", vkey)
    assert code == 1
    # usage errors
    code, _, err = run("receipt", rc, "--leaf-hash", "zz", "--log-key", vkey)
    assert code == 2
    code, _, err = run("receipt", rc, "--log-key", vkey)
    assert code == 2


# --- trust from a policy file ------------------------------------------------------------


def test_policy_trust_and_witness_quorum(tmp_path: Path, run: Run) -> None:
    f, log = make_log(tmp_path, 20)
    witness = private_key("witness one")
    wvkey = make_vkey("witness.example/one", public_bytes(witness), ALG_COSIGNATURE_V1)
    policy = tmp_path / "policy"
    policy.write_text(f"log {f.log_key.vkey}\nquorum none\n")
    code, out, _ = run("log", log, "--policy", policy, "--json")
    assert code == 0 and json.loads(out)["valid"]

    policy.write_text(f"log {f.log_key.vkey}\nwitness w1 {wvkey}\nquorum w1\n")
    code, _, err = run("log", log, "--policy", policy)
    assert code == 1
    assert "field 'checkpoint cosignatures'" in err and "quorum not met" in err

    note = parse_note((log / "checkpoint").read_bytes())
    cosigned = note.add(cosign(note.text, "witness.example/one", witness, 1_767_225_700))
    (log / "checkpoint").write_bytes(cosigned.encode())
    code, out, _ = run("log", log, "--policy", policy, "--json")
    assert code == 0
    # a receipt is held to the same quorum
    rc = tmp_path / "r.tlog-proof"
    proof = merkle.inclusion_proof(3, f.size, f.store)
    rc.write_bytes(Receipt(3, proof, cosigned.encode(), None).encode())
    leaf = f.leaf_hash(3).hex()
    assert run("receipt", rc, "--leaf-hash", leaf, "--policy", policy)[0] == 0
    rc.write_bytes(Receipt(3, proof, f.checkpoint(), None).encode())
    code, _, err = run("receipt", rc, "--leaf-hash", leaf, "--policy", policy)
    assert code == 1 and "quorum not met" in err
    # a policy file that does not parse is a usage error
    policy.write_text("log nonsense\n")
    code, _, err = run("log", log, "--policy", policy)
    assert code == 2 and "bad policy" in err
    assert run("log", log, "--policy", tmp_path / "missing")[0] == 2
    assert run("log", log, "--policy", policy, "--log-key", f.log_key.vkey)[0] == 2


# --- usage -------------------------------------------------------------------------------


def test_usage_errors(tmp_path: Path, run: Run) -> None:
    f, log = make_log(tmp_path, 3)
    code, out, _ = run("--help")
    assert code == 0
    for line in ("0  valid", "1  invalid", "2  usage error", "3  fork"):
        assert line in out
    assert run("log", log)[0] == 2  # no trust
    code, _, err = run("log", log, "--log-key", "not a vkey")
    assert code == 2 and "bad log key" in err
    code, _, err = run("log", tmp_path / "nowhere", "--log-key", f.log_key.vkey)
    assert code == 2 and "no such directory" in err
    code, _, err = run("log", log, "--log-key", f.log_key.vkey, "--jobs", "0")
    assert code == 2
    code, _, err = run("log", log, "--log-key", f.log_key.vkey, "--evidence", tmp_path / "e")
    assert code == 2 and "--evidence needs --state" in err
    code, out, _ = run("log", log, "--log-key", f.log_key.vkey, "--json")
    assert code == 0 and json.loads(out)["valid"]


def test_progress_bar_draws_and_clears() -> None:
    out = io.StringIO()
    bar = _ProgressBar(out)
    bar(128, 256)
    bar(256, 256)
    bar.clear()
    text = out.getvalue()
    assert "\r[" in text and "256/256 entries" in text
    assert text.endswith("\r\x1b[K")
