"""The witness under attack and under faults, as a process on loopback.

- Hypothesis over the add-checkpoint body (bad old line, too many proof lines, bad
  base64, wrong origin, oversize, damage anywhere): always a 4xx, never a 5xx, never a
  change of the stored state.
- A forked log (two histories signed with the same key) presented to the witness, also
  concurrently: at most one history is ever cosigned, and the fork is kept as evidence
  that ``ledger-verify evidence`` accepts.
- SIGKILL at random moments under concurrent load, then restart, several times: the
  cosignatures collected never cover two inconsistent trees, and the witness never
  rolls back below a size it cosigned.
- A disk that fails: 503, nothing cosigned.
"""

from __future__ import annotations

import base64
import http.client
import random
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_witness_kit import Log, WitnessProcess, env, ledger, verify_cosignature

from ledger.core.note import parse_vkey
from ledger.core.witness import MAX_BODY_SIZE, parse_size
from ledger.witness.service import Witness
from ledger.witness.store import WitnessStore

# --- malformed requests -----------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[WitnessProcess, Log]]:
    log = Log()
    w = WitnessProcess(tmp_path_factory.mktemp("witness"), [log]).start()
    log.grow(21)
    assert w.post(log.request(0)).status == 200
    log.grow(12)  # the next valid request: old 21, size 33
    yield w, log
    w.kill()


B64_HASH = base64.b64encode(bytes(range(32))).decode()


def _mutations(log: Log) -> st.SearchStrategy[bytes]:
    good = log.request(21)
    head, _, rest = good.partition(b"\n")
    proof_block, _, checkpoint = rest.partition(b"\n\n")
    proof = proof_block.split(b"\n")
    other = Log("elsewhere.example.org/log", key=log.key, leaves=list(log.leaves))
    old_lines = st.one_of(
        st.sampled_from(
            [b"old", b"old ", b"old 021", b"old -21", b"old +21", b"OLD 21", b"old  21",
             b"old 21 ", b"old\t21", b"old 0x15", b"old 99999999999999999999999",
             b"old 9223372036854775808", b"new 21", b"", b"old \xd9\xa221"]
        ),
        st.binary(max_size=30).map(lambda b: b"old " + b),
    )  # fmt: skip
    bad_hashes = st.one_of(
        st.sampled_from(
            [B64_HASH.rstrip("=").encode(), B64_HASH[:-2].encode() + b"A=", b"AAAA",
             B64_HASH.encode() + b"AAAA", B64_HASH.replace("A", "-").encode(),
             b" " + B64_HASH.encode(),
             base64.b64encode(bytes(31)), base64.b64encode(bytes(33)), b"!!!!"]
        ),
        st.binary(min_size=1, max_size=60).filter(lambda b: b"\n" not in b),
    )  # fmt: skip

    def rebuild(h: bytes, p: list[bytes], c: bytes) -> bytes:
        return h + b"\n" + b"".join(x + b"\n" for x in p) + b"\n" + c

    return st.one_of(
        old_lines.map(lambda h: rebuild(h, proof, checkpoint)),
        st.tuples(st.integers(0, len(proof)), bad_hashes).map(
            lambda t: rebuild(head, [*proof[: t[0]], t[1], *proof[t[0] :]], checkpoint)
        ),
        st.integers(64, 200).map(lambda n: rebuild(head, [B64_HASH.encode()] * n, checkpoint)),
        st.just(other.request(21)),  # wrong origin: 404
        st.integers(MAX_BODY_SIZE - len(good) + 1, MAX_BODY_SIZE).map(
            lambda n: good + b"x" * n
        ),  # oversize
        st.integers(0, len(good) - 1).map(lambda i: good[:i]),  # truncated
        st.tuples(st.integers(0, len(good) - 1), st.integers(1, 255)).map(
            lambda t: good[: t[0]] + bytes([good[t[0]] ^ t[1]]) + good[t[0] + 1 :]
        ),  # one byte damaged
        st.binary(max_size=2000),
        st.just(good.replace(b"\n\n", b"\n", 1)),  # no empty line
        st.just(good.replace(b"\n", b"\r\n")),
    )


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_malformed_requests_get_a_4xx_and_change_nothing(
    served: tuple[WitnessProcess, Log], data: st.DataObject
) -> None:
    w, log = served
    before = w.checkpoint(log.origin).body
    body = data.draw(_mutations(log))
    if body == log.request(21):
        return
    r = w.post(body)
    assert 400 <= r.status < 500, (r.status, r.body, body[:300])
    assert r.status != 200
    assert w.checkpoint(log.origin).body == before


def test_after_the_storm_the_valid_request_is_cosigned(
    served: tuple[WitnessProcess, Log],
) -> None:
    w, log = served
    r = w.post(log.request(21))
    assert r.status == 200
    verify_cosignature(w.vkey, log.text(33), r.body.decode())
    assert "Traceback" not in w.stderr()


@settings(max_examples=1000, deadline=None)
@given(data=st.data())
def test_malformed_requests_in_process_never_raise(data: st.DataObject) -> None:
    """The same mutations, many more, straight into the service: a 4xx, never an exception."""
    w, log = _IN_PROCESS
    before = w.store.latest(log.origin)
    body = data.draw(_mutations(log))
    if body == log.request(21):
        return
    answer = w.add_checkpoint(body)
    assert 400 <= answer.status < 500, (answer.status, answer.body, body[:300])
    assert w.store.latest(log.origin) == before


def _in_process() -> tuple[Witness, Log]:
    log = Log()
    directory = Path(tempfile.mkdtemp(prefix="witness-"))
    w = Witness(
        "w.example/1",
        Ed25519PrivateKey.generate(),
        {log.origin: [parse_vkey(log.vkey)]},
        WitnessStore(directory / "w.db"),
    )
    log.grow(21)
    assert w.add_checkpoint(log.request(0)).status == 200
    log.grow(12)
    return w, log


_IN_PROCESS = _in_process()


def test_a_slow_client_is_cut_off_and_others_are_served(tmp_path: Path) -> None:
    log = Log()
    log.grow(2)
    w = WitnessProcess(tmp_path, [log]).start("--timeout", "1")
    try:
        slow = socket.create_connection(("127.0.0.1", w.port), timeout=10)
        slow.sendall(b"POST /add-checkpoint HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\nold")
        assert w.post(log.request(0)).status == 200  # served meanwhile
        started = time.monotonic()
        assert slow.recv(100) == b""  # closed by the witness, without an answer
        assert time.monotonic() - started < 5
        slow.close()
        idle = socket.create_connection(("127.0.0.1", w.port), timeout=10)
        assert idle.recv(100) == b""  # an idle connection is closed too
        idle.close()
    finally:
        w.kill()


# --- forks --------------------------------------------------------------------------------


def _cosigned_sizes_consistent(cosigned: list[tuple[str, int]], fork_at: int) -> None:
    """Cosigned (history, size) pairs: beyond the fork point, one history only."""
    beyond = {h for h, size in cosigned if size > fork_at}
    assert len(beyond) <= 1, f"both histories cosigned beyond size {fork_at}: {cosigned}"


def test_a_forked_log_gets_one_history_cosigned_and_the_fork_kept(tmp_path: Path) -> None:
    a = Log()
    a.grow(10)
    b = a.fork()
    a.grow(6, "a")
    b.grow(6, "b")
    w = WitnessProcess(tmp_path, [a]).start()
    try:
        assert w.post(a.request(0, 10)).status == 200
        assert w.post(b.request(0, 10)).status == 409  # old 0: not the latest
        assert w.post(a.request(10)).status == 200  # A grows to 16
        r = w.post(b.request(10))  # B from 10 to 16: old size is stale
        assert r.status == 409 and parse_size(r.body) == 16
        same_size = b.request(16).replace(b"old 16\n", b"old 16\n", 1)
        r = w.post(same_size)  # B's 16 against A's 16: a fork
        assert r.status == 409
        assert r.content_type == "application/problem+json"
        b.grow(3, "b")
        r = w.post(b.request(16))  # B's proof from 16 cannot join A's 16
        assert r.status == 422
        out = ledger("witness", "evidence", "--db", str(w.db), "--out", str(tmp_path / "ev"))
        assert "409 fork" in out.stdout and "422" in out.stdout
        evidence = sorted((tmp_path / "ev").glob("*.evidence.json"))
        assert len(evidence) == 1
        check = subprocess.run(
            [sys.executable, "-m", "ledger.verify.cli", "evidence", str(evidence[0]),
             "--log-key", a.vkey],
            check=False, env=env(), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert check.returncode == 3, check.stdout + check.stderr  # 3: fork proven
        assert check.stdout.startswith("FORK PROVEN")
        served = w.checkpoint(a.origin).body.decode()
        assert served.startswith(a.text(16))
    finally:
        w.kill()


def _submitter(
    w: WitnessProcess,
    log: Log,
    tag: str,
    sizes: list[int],
    cosigned: list[tuple[str, int, str]],
    stop: threading.Event,
) -> None:
    """Walk ``log`` through ``sizes`` as a log would: learn the old size from 409s."""
    old = 0
    i = 0
    while not stop.is_set() and i < len(sizes):
        size = sizes[i]
        try:
            r = w.post(log.request(old, size) if old <= size else log.request(0, size))
        except (OSError, http.client.HTTPException):
            time.sleep(0.01)  # the witness is down, or died mid-answer: retry
            continue
        if r.status == 200:
            cosigned.append((tag, size, r.body.decode()))
            old = size
            i += 1
        elif r.status == 409 and r.content_type == "text/x.tlog.size":
            old = parse_size(r.body)
            if old >= size:
                i += 1
        else:
            i += 1  # refused (a fork, a proof from the other history): move on


def test_concurrent_forks_and_sigkill_never_cosign_two_histories(tmp_path: Path) -> None:
    fork_at = 40
    a = Log()
    a.grow(fork_at)
    b = a.fork()
    a.grow(400, "a")
    b.grow(400, "b")
    w = WitnessProcess(tmp_path, [a]).start()
    cosigned: list[tuple[str, int, str]] = []
    stop = threading.Event()
    rng = random.Random(15)
    plans = [
        (a, "a", list(range(1, 441, 3))),
        (b, "b", list(range(2, 441, 3))),
        (a, "a", list(range(5, 441, 7))),
        (b, "b", list(range(3, 441, 5))),
    ]
    threads = [
        threading.Thread(target=_submitter, args=(w, log, tag, sizes, cosigned, stop))
        for log, tag, sizes in plans
    ]
    for t in threads:
        t.start()
    try:
        for _ in range(6):
            time.sleep(rng.uniform(0.05, 0.6))
            w.kill()  # SIGKILL, mid-request
            w.start()
        for t in threads:
            t.join(120)
        assert not any(t.is_alive() for t in threads)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    try:
        assert cosigned, "nothing was cosigned"
        for tag, size, line in cosigned:
            verify_cosignature(w.vkey, (a if tag == "a" else b).text(size), line)
        _cosigned_sizes_consistent([(t, s) for t, s, _ in cosigned], fork_at)
        # Never rolled back: the stored size is at least every size cosigned.
        r = w.post(a.request(0, 1))
        latest = 0 if r.status == 200 else parse_size(r.body)
        assert latest >= max(s for _, s, _ in cosigned)
        assert "Traceback" not in w.stderr()
    finally:
        w.kill()


# --- storage faults -------------------------------------------------------------------------


def test_a_failing_disk_answers_503_and_cosigns_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = Log()
    log.grow(3)
    store = WitnessStore(tmp_path / "w.db")
    witness = Witness(
        "w.example/1",
        Ed25519PrivateKey.generate(),
        {log.origin: [parse_vkey(log.vkey)]},
        store,
    )

    real = store._conn()

    class FailingCommit:
        """The store's connection, whose COMMIT fails as a full or broken disk does."""

        in_transaction = property(lambda self: real.in_transaction)

        def execute(self, sql: str, *args: object) -> object:
            if sql == "COMMIT":
                raise sqlite3.OperationalError("disk I/O error")
            return real.execute(sql, *args)

    monkeypatch.setattr(store, "_conn", FailingCommit)
    answer = witness.add_checkpoint(log.request(0))
    assert answer.status == 503
    assert "\u2014" not in answer.body.decode()
    monkeypatch.undo()
    assert store.latest(log.origin) is None
    assert witness.add_checkpoint(log.request(0)).status == 200


def test_two_witness_processes_on_one_database_never_cosign_two_histories(
    tmp_path: Path,
) -> None:
    """A misconfiguration (two servers, one SQLite file): BEGIN IMMEDIATE and the
    compare-and-swap still serialise every check-and-persist."""
    fork_at = 30
    a = Log()
    a.grow(fork_at)
    b = a.fork()
    a.grow(300, "a")
    b.grow(300, "b")
    first = WitnessProcess(tmp_path, [a]).start()
    second = WitnessProcess(tmp_path, [a]).start()
    cosigned: list[tuple[str, int, str]] = []
    stop = threading.Event()
    plans = [
        (first, a, "a", list(range(1, 331, 2))),
        (second, b, "b", list(range(2, 331, 2))),
        (second, a, "a", list(range(3, 331, 5))),
        (first, b, "b", list(range(4, 331, 3))),
    ]
    threads = [
        threading.Thread(target=_submitter, args=(w, log, tag, sizes, cosigned, stop))
        for w, log, tag, sizes in plans
    ]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(180)
        assert not any(t.is_alive() for t in threads)
        assert cosigned
        for tag, size, line in cosigned:
            verify_cosignature(first.vkey, (a if tag == "a" else b).text(size), line)
        _cosigned_sizes_consistent([(t, s) for t, s, _ in cosigned], fork_at)
        assert "Traceback" not in first.stderr() + second.stderr()
    finally:
        stop.set()
        first.kill()
        second.kill()
