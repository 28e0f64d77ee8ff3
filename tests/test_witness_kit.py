"""What the witness tests share, written from the C2SP specs and independent of ``ledger/``.

- :func:`verify_cosignature`: a tlog-cosignature/v1 verifier (hashlib and cryptography
  only): vkey ``name+hex(keyID)+base64(0x04 || key)``, key ID
  ``SHA-256(name || 0x0A || 0x04 || key)[:4]``, signature ``uint64 BE time || ed25519``
  over ``cosignature/v1\\ntime <t>\\n`` and the checkpoint text.
- :class:`Log`: a log (RFC 6962 section 2.1 hashing and consistency proofs, written
  recursively from the RFC's definitions; signed-note checkpoints signed by hand) that
  can fork.
- :class:`WitnessProcess`: ``ledger witness serve`` as a subprocess on loopback, with
  :meth:`WitnessProcess.post` and :meth:`WitnessProcess.kill`.

The few tests here check the kit itself, so that the other tests can trust it.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

# Only the kit's self-tests (at the end) use production code, to compare with it.
from ledger.core import merkle
from ledger.core.note import cosign

ROOT = Path(__file__).resolve().parent.parent
DASH = "\u2014 "


# --- tlog-cosignature/v1, independently ----------------------------------------------


def _key_id(name: str, alg: int, pub: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([alg]) + pub).digest()[:4]


def vkey_of(name: str, alg: int, pub: bytes) -> str:
    return f"{name}+{_key_id(name, alg, pub).hex()}+{base64.b64encode(bytes([alg]) + pub).decode()}"


def verify_cosignature(vkey: str, checkpoint_text: str, line: str) -> int:
    """Check one cosignature line of ``vkey`` over ``checkpoint_text``; return its time."""
    name, hex_id, b64 = vkey.split("+", 2)
    raw = base64.b64decode(b64, validate=True)
    assert raw[0] == 0x04 and len(raw) == 33, "not an Ed25519 cosigner vkey"
    pub = raw[1:]
    assert bytes.fromhex(hex_id) == _key_id(name, 0x04, pub), "vkey key ID is wrong"
    assert line.startswith(DASH) and line.endswith("\n")
    signer, sig_b64 = line[len(DASH) : -1].split(" ")
    assert signer == name
    blob = base64.b64decode(sig_b64, validate=True)
    assert len(blob) == 4 + 8 + 64
    assert blob[:4] == _key_id(name, 0x04, pub), "cosignature key ID is wrong"
    timestamp = int.from_bytes(blob[4:12], "big")
    assert timestamp < 2**63
    message = f"cosignature/v1\ntime {timestamp}\n".encode() + checkpoint_text.encode()
    Ed25519PublicKey.from_public_bytes(pub).verify(blob[12:], message)  # raises if bad
    return timestamp


# --- an RFC 6962 log that can fork -----------------------------------------------------


def _leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 2.1: MTH of leaf hashes."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return _node(mth(leaves[:k]), mth(leaves[k:]))


def _subproof(m: int, leaves: list[bytes], complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [mth(leaves)]
    k = _split(n)
    if m <= k:
        return [*_subproof(m, leaves[:k], complete), mth(leaves[k:])]
    return [*_subproof(m - k, leaves[k:], False), mth(leaves[:k])]


def consistency(m: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 6962 2.1.2: PROOF(m, D[n])."""
    if m == 0 or m == len(leaves):
        return []
    return _subproof(m, leaves, True)


@dataclass
class Log:
    """A log signing C2SP checkpoints with an Ed25519 key named after its origin."""

    origin: str = "log.example.org/witness-test"
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    leaves: list[bytes] = field(default_factory=list)

    @property
    def pub(self) -> bytes:
        return self.key.public_key().public_bytes_raw()

    @property
    def vkey(self) -> str:
        return vkey_of(self.origin, 0x01, self.pub)

    def grow(self, n: int, tag: str = "a") -> None:
        start = len(self.leaves)
        self.leaves.extend(_leaf(f"{tag}-{i}".encode()) for i in range(start, start + n))

    def fork(self, key_tag: str = "b") -> Log:
        """Another history under the same key: same leaves so far, different from now on."""
        return Log(self.origin, self.key, list(self.leaves))

    def text(self, size: int) -> str:
        root = base64.b64encode(mth(self.leaves[:size])).decode()
        return f"{self.origin}\n{size}\n{root}\n"

    def checkpoint(self, size: int | None = None, key: Ed25519PrivateKey | None = None) -> bytes:
        size = len(self.leaves) if size is None else size
        text = self.text(size)
        k = key or self.key
        pub = k.public_key().public_bytes_raw()
        sig = base64.b64encode(_key_id(self.origin, 0x01, pub) + k.sign(text.encode())).decode()
        return f"{text}\n{DASH}{self.origin} {sig}\n".encode()

    def proof(self, old: int, new: int | None = None) -> list[bytes]:
        new = len(self.leaves) if new is None else new
        return consistency(old, self.leaves[:new])

    def request(self, old: int, new: int | None = None) -> bytes:
        new = len(self.leaves) if new is None else new
        lines = [
            f"old {old}\n",
            *(base64.b64encode(h).decode() + "\n" for h in self.proof(old, new)),
        ]
        return ("".join(lines) + "\n").encode() + self.checkpoint(new)


# --- the witness as a process ------------------------------------------------------------


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    e.pop("LEDGER_KEY_PASSPHRASE", None)
    return e


def ledger(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        env=env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=check,
    )


class HasVkey(Protocol):
    @property
    def vkey(self) -> str: ...


@dataclass
class Response:
    status: int
    content_type: str
    body: bytes


class WitnessProcess:
    """``ledger witness serve`` on 127.0.0.1 (a free port), restartable on the same files."""

    runs = 0  # processes started, for the names of their output files

    def __init__(
        self, directory: Path, logs: Sequence[HasVkey], name: str = "witness.example.org/w1"
    ):
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.key = directory / "witness.key"
        self.db = directory / "witness.db"
        self.policy = directory / "logs.policy"
        if not self.key.exists():
            self.vkey = ledger("witness", "keygen", str(self.key), "--name", name).stdout.strip()
        else:
            self.vkey = (directory / "witness.key.vkey").read_text().strip()
        lines = [f"log {log.vkey}\n" for log in logs]
        self.policy.write_text("".join(lines) + "quorum none\n")
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self, *extra: str) -> WitnessProcess:
        WitnessProcess.runs += 1
        self.run = WitnessProcess.runs
        out = self.directory / f"witness-{self.run}.out"
        err = self.directory / f"witness-{self.run}.err"
        with out.open("wb") as o, err.open("wb") as e:
            self.proc = subprocess.Popen(
                [
                    sys.executable, "-m", "cli", "witness", "serve",
                    "--key", str(self.key), "--policy", str(self.policy), "--db", str(self.db),
                    "--listen", "127.0.0.1:0", *extra,
                ],
                env=env(),
                stdout=o,
                stderr=e,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for line in out.read_text().splitlines():
                if line.startswith("listening on http://"):
                    self.port = int(line.strip().rsplit(":", 1)[1])
                    return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"witness exited: {err.read_text()}")
            time.sleep(0.02)
        raise RuntimeError("witness did not start")

    def stderr(self) -> str:
        return (self.directory / f"witness-{self.run}.err").read_text()

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(10)
        self.proc = None
        return code

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def request(self, method: str, path: str, body: bytes | None = None) -> Response:
        conn = self.connection()
        try:
            conn.request(method, path, body=body)
            r = conn.getresponse()
            return Response(r.status, r.getheader("Content-Type", ""), r.read())
        finally:
            conn.close()

    def post(self, body: bytes) -> Response:
        return self.request("POST", "/add-checkpoint", body)

    def checkpoint(self, origin: str) -> Response:
        return self.request("GET", f"/{hashlib.sha256(origin.encode()).hexdigest()}/checkpoint")


# --- the kit's own checks -----------------------------------------------------------------


def test_consistency_proofs_match_the_production_prover() -> None:
    """The kit's recursive RFC 6962 prover agrees with ledger.core.merkle on every pair."""
    leaves = [_leaf(bytes([i])) for i in range(40)]
    store = merkle.MemoryHashStore()
    for h in leaves:
        store.append(h)
    for n in range(1, 41):
        assert mth(leaves[:n]) == merkle.tree_hash(n, store)
        for m in range(n + 1):
            assert consistency(m, leaves[:n]) == merkle.consistency_proof(m, n, store)


def test_independent_verifier_accepts_our_cosign_and_rejects_tampering() -> None:
    key = Ed25519PrivateKey.generate()
    pub = key.public_key().public_bytes_raw()
    vkey = vkey_of("w.example/1", 0x04, pub)
    text = Log().text(0)
    line = cosign(text, "w.example/1", key, 1_700_000_000).line()
    assert verify_cosignature(vkey, text, line) == 1_700_000_000
    with pytest.raises(InvalidSignature):
        verify_cosignature(vkey, text.replace("0", "1", 1), line)
    other = vkey_of(
        "w.example/1", 0x04, Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    )
    with pytest.raises(AssertionError):
        verify_cosignature(other, text, line)
