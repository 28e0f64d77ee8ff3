"""``ledger witness serve`` (C2SP tlog-witness) as a process on loopback, answer by answer.

Each test starts the witness with ``ledger witness keygen`` / ``serve``, speaks HTTP to
it and checks every cosignature with the independent verifier of tests/test_witness_kit.py.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from test_witness_kit import Log, WitnessProcess, ledger, verify_cosignature

from ledger.core import witness as core
from ledger.core.errors import FormatError, TooLargeError
from ledger.core.note import CosignatureVerifier, open_note, parse_vkey


@pytest.fixture
def log() -> Log:
    return Log()


@pytest.fixture
def witness(tmp_path: Path, log: Log) -> Iterator[WitnessProcess]:
    w = WitnessProcess(tmp_path, [log]).start()
    yield w
    w.kill()


def cosigned(w: WitnessProcess, log: Log, old: int) -> int:
    """POST log's current checkpoint from ``old``; check the 200 and its cosignature."""
    r = w.post(log.request(old))
    assert r.status == 200, r.body
    assert r.content_type.startswith("text/plain")
    lines = r.body.decode().splitlines(keepends=True)
    assert len(lines) == 1
    timestamp = verify_cosignature(w.vkey, log.text(len(log.leaves)), lines[0])
    assert abs(timestamp - time.time()) < 300  # the time of signing, in POSIX seconds
    return timestamp


def test_keygen_writes_a_private_key_and_a_cosigner_vkey(witness: WitnessProcess) -> None:
    assert stat.S_IMODE(os.stat(witness.key).st_mode) == 0o600
    name, key_id, b64 = witness.vkey.split("+", 2)
    assert name == "witness.example.org/w1" and len(key_id) == 8
    assert base64.b64decode(b64)[0] == 0x04
    assert (witness.directory / "witness.key.vkey").read_text() == witness.vkey + "\n"
    again = ledger("witness", "keygen", str(witness.key), "--name", "x", check=False)
    assert again.returncode != 0  # never overwrites a key


def test_first_checkpoint_then_growth_with_proofs(witness: WitnessProcess, log: Log) -> None:
    log.grow(5)
    cosigned(witness, log, 0)
    for step in (1, 2, 3, 250, 7, 1):  # power-of-two and other old sizes
        old = len(log.leaves)
        log.grow(step)
        cosigned(witness, log, old)
    assert len(log.leaves) == 269
    cosigned(witness, log, 269)  # the same checkpoint again: cosigned again
    served = witness.checkpoint(log.origin)
    assert served.status == 200
    text, _, sigs = served.body.decode().partition("\n\n")
    assert text + "\n" == log.text(269)
    lines = sigs.splitlines(keepends=True)
    assert lines[0].startswith(f"\u2014 {log.origin} ")  # the log's signature first
    verify_cosignature(witness.vkey, log.text(269), lines[1])


def test_empty_tree_and_size_zero(witness: WitnessProcess, log: Log) -> None:
    cosigned(witness, log, 0)  # a size-0 checkpoint: root SHA-256("")
    log.grow(3)
    cosigned(witness, log, 0)


def test_stale_old_size_gets_409_with_the_latest_size(witness: WitnessProcess, log: Log) -> None:
    log.grow(10)
    cosigned(witness, log, 0)
    log.grow(5)
    for stale in (0, 9, 11, 14):
        body = log.request(stale) if stale < 10 else _with_old(log, stale)
        r = witness.post(body)
        assert r.status == 409
        assert r.content_type == "text/x.tlog.size"
        assert r.body == b"10\n"
        assert core.parse_size(r.body) == 10
    cosigned(witness, log, 10)


def _with_old(log: Log, old: int) -> bytes:
    """A request with a proof for the wrong old size (its proof does not matter: 409 first)."""
    body = log.request(0)
    return body.replace(b"old 0\n", f"old {old}\n".encode(), 1)


def test_bad_proof_gets_422_and_is_kept(witness: WitnessProcess, log: Log) -> None:
    log.grow(6)
    cosigned(witness, log, 0)
    log.grow(7)
    good = log.request(6)
    lines = good.split(b"\n")
    flipped = base64.b64encode(bytes(32)).decode().encode()
    bad = b"\n".join([lines[0], flipped, *lines[2:]])
    r = witness.post(bad)
    assert r.status == 422
    problem = json.loads(r.body)
    assert problem["code"] in ("bad_proof", "root_mismatch") and problem["status"] == 422
    short = b"\n".join([lines[0], *lines[2:]])
    assert witness.post(short).status == 422
    # A non-empty proof from size 0 is a bad proof too.
    from_zero = log.request(0).replace(b"old 0\n", b"old 0\n" + lines[1] + b"\n", 1)
    assert witness.post(from_zero).status in (409, 422)
    assert witness.post(log.request(6)).status == 200
    out = ledger("witness", "evidence", "--db", str(witness.db)).stdout
    assert "422 bad_proof" in out or "422 root_mismatch" in out


def test_bad_signature_gets_403(witness: WitnessProcess, log: Log) -> None:
    log.grow(4)
    impostor = Log(log.origin, leaves=list(log.leaves))  # another key, same origin
    assert witness.post(impostor.request(0)).status == 403
    body = bytearray(log.request(0))
    body[-10] ^= 1  # the log's signature, damaged (still valid base64)
    r = witness.post(bytes(body))
    assert r.status in (400, 403)
    text = log.request(0).replace(b"\n4\n", b"\n5\n", 1)  # the text changed under the signature
    assert witness.post(text).status == 403
    assert witness.checkpoint(log.origin).status == 404  # nothing cosigned
    cosigned(witness, log, 0)


def test_unknown_origin_gets_404(witness: WitnessProcess) -> None:
    other = Log("other.example.org/log")
    other.grow(2)
    r = witness.post(other.request(0))
    assert r.status == 404
    assert json.loads(r.body)["code"] == "unknown_origin"
    assert witness.checkpoint("other.example.org/log").status == 404
    assert witness.request("GET", "/" + "0" * 64 + "/checkpoint").status == 404


def test_old_larger_than_size_gets_400(witness: WitnessProcess, log: Log) -> None:
    log.grow(3)
    r = witness.post(_with_old(log, 4))
    assert r.status == 400
    assert json.loads(r.body)["code"] == "old_size_too_large"


def test_http_edges(witness: WitnessProcess, log: Log) -> None:
    assert witness.request("GET", "/add-checkpoint").status == 404
    assert witness.request("PUT", "/add-checkpoint", b"x").status == 405
    assert witness.request("POST", "/elsewhere", b"x").status == 404
    assert witness.request("GET", "/healthz").body == b"ok\n"
    big = b"old 0\n\n" + b"x" * (core.MAX_BODY_SIZE + 1)
    assert witness.post(big).status == 413
    conn = witness.connection()
    conn.putrequest("POST", "/add-checkpoint")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    conn.send(b"0\r\n\r\n")
    assert conn.getresponse().status == 411
    conn.close()


def test_keep_alive_serves_many_requests_on_one_connection(
    witness: WitnessProcess, log: Log
) -> None:
    conn = witness.connection()
    old = 0
    for _ in range(20):
        log.grow(3)
        conn.request("POST", "/add-checkpoint", body=log.request(old))
        r = conn.getresponse()
        assert r.status == 200, r.read()
        verify_cosignature(witness.vkey, log.text(len(log.leaves)), r.read().decode())
        old = len(log.leaves)
    conn.close()


def test_sigterm_stops_cleanly_and_state_survives_a_restart(
    witness: WitnessProcess, log: Log
) -> None:
    log.grow(8)
    cosigned(witness, log, 0)
    assert witness.stop() == 0
    witness.start()
    log.grow(1)
    assert witness.post(log.request(0)).body == b"8\n"
    cosigned(witness, log, 8)


# --- the pure protocol (ledger.core.witness) ---------------------------------------------


def test_request_round_trip_and_limits(log: Log) -> None:
    log.grow(100)
    body = log.request(37)
    req = core.parse_request(body)
    assert req.old_size == 37 and len(req.proof) == len(log.proof(37))
    assert req.encode() == body
    assert core.encode_request(req.old_size, req.proof, req.checkpoint) == body
    with pytest.raises(TooLargeError):
        core.encode_request(0, [bytes(32)] * 64, b"")
    many = b"old 1\n" + b"".join(base64.b64encode(bytes(32)) + b"\n" for _ in range(64))
    with pytest.raises(TooLargeError):
        core.parse_request(many + b"\n" + log.checkpoint())
    exactly = b"old 1\n" + b"".join(base64.b64encode(bytes(32)) + b"\n" for _ in range(63))
    assert len(core.parse_request(exactly + b"\n" + log.checkpoint()).proof) == 63
    for bad in (
        b"",
        b"old\n\n" + log.checkpoint(),
        b"old 01\n\n" + log.checkpoint(),
        b"old -1\n\n" + log.checkpoint(),
        b"Old 1\n\n" + log.checkpoint(),
        b"old 1 \n\n" + log.checkpoint(),
        b"old 1\nAAAA\n\n" + log.checkpoint(),
        b"old 1\n" + base64.b64encode(bytes(32)).rstrip(b"=") + b"\n\n" + log.checkpoint(),
        b"old 1\n",
        b"old 1\n\n",
        b"old 1",
    ):
        with pytest.raises(FormatError):
            core.parse_request(bad)


def test_decide_in_the_spec_order(log: Log) -> None:
    logs = {log.origin: [parse_vkey(log.vkey)]}
    log.grow(4)
    req = core.parse_request(log.request(0))
    cp, _ = core.decide(req, logs, None)
    head = core.TreeHead(cp.size, cp.root)
    with pytest.raises(core.SizeMismatchError) as e:
        core.decide(req, logs, head)
    assert e.value.latest == 4 and core.status_of(e.value) == 409
    fork = log.fork()
    fork.leaves[3] = bytes(32)
    with pytest.raises(core.RootConflictError) as c:
        core.decide(core.parse_request(fork.request(0).replace(b"old 0", b"old 4")), logs, head)
    assert core.status_of(c.value) == 409
    with pytest.raises(core.UnknownOriginError) as u:
        core.decide(req, {}, None)
    assert core.status_of(u.value) == 404


def test_cosign_response_and_parse_cosignatures(log: Log) -> None:
    """What a log does with a 200 body: append the lines to its checkpoint and open it."""
    log.grow(9)
    logs = {log.origin: [parse_vkey(log.vkey)]}
    _, note = core.decide(core.parse_request(log.request(0)), logs, None)
    key = Ed25519PrivateKey.generate()
    body, served = core.cosign_response(note, "w.example/1", key, 1_800_000_000)
    (sig,) = core.parse_cosignatures(body)
    assert sig.name == "w.example/1"
    witness = CosignatureVerifier("w.example/1", key.public_key().public_bytes_raw())
    opened = open_note(log.checkpoint() + body, [witness])
    assert [s.name for s in opened.verified] == ["w.example/1"]
    assert served == log.checkpoint() + body  # the log's signature, then ours
    assert witness.verify(note.message, sig.signature) == 1_800_000_000
    with pytest.raises(FormatError):
        core.parse_cosignatures(b"")
    with pytest.raises(FormatError):
        core.parse_cosignatures(b"not a signature line\n")
