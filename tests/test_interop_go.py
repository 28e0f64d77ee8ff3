"""Interoperability: Go's golang.org/x/mod/sumdb/{note,tlog} accept what our core publishes.

An independent implementation checks our signed notes and vkeys, checkpoints,
stored hashes, roots, inclusion and consistency proofs, tiles, receipts and
cosignatures, and we verify a note Go signs. The Go side is
tests/interop/gocheck/main.go, built once per session, offline, in GOPATH mode
against Debian's golang-golang-x-mod-dev (installed by .ci/install-go-interop).

Skips when `go` is missing, unless LEDGER_REQUIRE_INTEROP is set (CI sets it):
then a missing toolchain is a failure.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from keys.signer import Signer
from ledger.core import merkle
from ledger.core.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from ledger.core.encoding import b64encode
from ledger.core.errors import SignatureError
from ledger.core.note import (
    ALG_COSIGNATURE_V1,
    Ed25519NoteSigner,
    cosign,
    make_vkey,
    open_note,
    parse_note,
    parse_vkey,
)
from ledger.core.receipt import Receipt, parse_receipt
from ledger.core.tiles import read_tile_data, tile_path, tiles_for_size

GO_SRC = Path(__file__).resolve().parent / "interop" / "gocheck" / "main.go"
XMOD = Path("/usr/share/gocode/src/golang.org/x/mod/sumdb")

LOG_NAME = "ledger.example.org/interop"
WITNESS_NAME = "witness.example.org/w1"

# Tree sizes Go checks. Every size 1..300, a few larger ones, and tile edges.
SMALL_SIZES = range(1, 301)
TILE_SIZES = (1, 2, 255, 256, 257, 300, 511, 512, 513, 1000, 4097, 65535, 65536, 65793)
TREE_SIZE = max(TILE_SIZES)  # 65536 + 256 + 1: three tile levels, partial at each
# Checkpoints: signed with keys.Signer, with ledger.core.note.Ed25519NoteSigner, and one
# carrying an extension line; each cosigned by a witness.
CHECKPOINT_SIZES = (TREE_SIZE, 257, 4097)


def _required() -> bool:
    return os.environ.get("LEDGER_REQUIRE_INTEROP", "") not in ("", "0")


def _go_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GO")}
    env.update(
        GO111MODULE="off",  # GOPATH mode: x/mod comes from Debian's source tree
        GOPATH=f"{tmp / 'gopath'}{os.pathsep}/usr/share/gocode",
        GOCACHE=str(tmp / "gocache"),
        GOENV="off",
        GOFLAGS="",
        GOPROXY="off",  # never the network
        GOTOOLCHAIN="local",
    )
    return env


@pytest.fixture(scope="session")
def gocheck(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Go checker, built once per session."""
    go = shutil.which("go")
    missing = None
    if go is None:
        missing = "the Go toolchain (`go`) is not installed"
    elif not (XMOD / "note").is_dir() or not (XMOD / "tlog").is_dir():
        missing = f"golang.org/x/mod source is not at {XMOD.parent}"
    if missing is not None:
        hint = "run `sudo bash .ci/install-go-interop`"
        if _required():
            pytest.fail(f"LEDGER_REQUIRE_INTEROP is set but {missing}; {hint}")
        pytest.skip(f"{missing}; {hint} (LEDGER_REQUIRE_INTEROP=1 makes this a failure)")
    assert go is not None
    tmp = tmp_path_factory.mktemp("gocheck")
    binary = tmp / "gocheck"
    build = subprocess.run(
        [go, "build", "-o", str(binary), str(GO_SRC)],
        env=_go_env(tmp),
        cwd=tmp,
        capture_output=True,
        text=True,
        check=False,
    )
    assert build.returncode == 0, f"go build failed:\n{build.stdout}{build.stderr}"
    return binary


def _run(gocheck: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(gocheck), *args], capture_output=True, text=True, check=False, timeout=300
    )


# --- Our side: a tree, its proofs, tiles, checkpoints and receipts ---------------


class _ListReader:
    """Stored hashes in a list, filled through merkle.stored_hashes_for_append."""

    def __init__(self) -> None:
        self.hashes: list[bytes] = []

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        return [self.hashes[i] for i in indexes]


def _leaf_data(i: int) -> bytes:
    # Varied lengths, the empty entry included, and bytes that are not text.
    if i % 7 == 0:
        return b""
    return hashlib.sha256(i.to_bytes(8, "big")).digest()[: i % 33] + f"entry {i}\n".encode()


def _inclusion_pairs() -> Iterator[tuple[int, int]]:
    for size in SMALL_SIZES:
        if size <= 128:
            yield from ((i, size) for i in range(size))
        else:
            yield from ((i, size) for i in sorted({0, 1, size // 3, size // 2, size - 2, size - 1}))
    for size in TILE_SIZES:
        if size > 300:
            yield from ((i, size) for i in sorted({0, 255, 256, size // 2, size - 1} - {size}))


def _consistency_pairs() -> Iterator[tuple[int, int]]:
    for new in SMALL_SIZES:
        if new <= 128:
            yield from ((old, new) for old in range(1, new + 1))
        else:
            yield from ((old, new) for old in sorted({1, 2, new // 3, new // 2, new - 1, new}))
    yield from ((300, 1000), (1000, 4097), (256, 65536), (4097, 65793), (65535, 65536))
    yield from ((65536, 65793), (1, 65793))


@dataclass
class Artifacts:
    dir: Path
    log: Signer
    roots: dict[int, bytes]
    checkpoints: dict[int, bytes]  # size -> signed checkpoint (log + cosignature)


def _add_cosignature(signed: bytes, witness: Ed25519PrivateKey, timestamp: int) -> bytes:
    note = parse_note(signed)
    return note.add(cosign(note.text, WITNESS_NAME, witness, timestamp)).encode()


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Artifacts:
    """Everything Go checks, written by our modules into one directory."""
    out = tmp_path_factory.mktemp("interop")
    log_seed = hashlib.sha256(b"interop log").digest()
    log = Signer.from_seed(log_seed, name=LOG_NAME)
    # The same log key through ledger.core.note's own signer, for the second checkpoint.
    log_note_signer = Ed25519NoteSigner(LOG_NAME, Ed25519PrivateKey.from_private_bytes(log_seed))
    assert log_note_signer.vkey == log.vkey()
    witness = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"interop witness").digest())
    witness_pub = witness.public_key().public_bytes_raw()

    leaves = [_leaf_data(i) for i in range(TREE_SIZE)]
    reader = _ListReader()
    for i, data in enumerate(leaves):
        reader.hashes.extend(merkle.stored_hashes_for_append(i, merkle.leaf_hash(data), reader))

    inclusion = list(_inclusion_pairs())
    consistency = list(_consistency_pairs())
    sizes = {*SMALL_SIZES, *TILE_SIZES, *(s for _, s in inclusion)}
    sizes |= {s for pair in consistency for s in pair}
    roots = {size: merkle.tree_hash(size, reader) for size in sorted(sizes)}

    checkpoints: dict[int, bytes] = {}
    made = (
        (Checkpoint(LOG_NAME, TREE_SIZE, roots[TREE_SIZE]), log.note_signer()),
        (Checkpoint(LOG_NAME, 257, roots[257]), log_note_signer),
        (Checkpoint(LOG_NAME, 4097, roots[4097], ("interop extension line",)), log.note_signer()),
    )
    for cp, signer in made:
        signed = sign_checkpoint(cp, signer)
        checkpoints[cp.size] = _add_cosignature(signed, witness, 1_700_000_000 + cp.size)
        (out / f"checkpoint-{cp.size}").write_bytes(checkpoints[cp.size])
    assert tuple(checkpoints) == CHECKPOINT_SIZES

    tile_sets = []
    for size in TILE_SIZES:
        paths = []
        for t in tiles_for_size(size):
            path = tile_path(t.level, t.n, t.width)
            paths.append(path)
            file = out / "tiles" / str(size) / path
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_bytes(read_tile_data(t, reader))
        tile_sets.append({"size": size, "dir": f"tiles/{size}", "paths": paths})

    receipts = []
    (out / "receipts").mkdir()
    for index, extra in ((0, None), (1, b"opaque \x00 extra"), (TREE_SIZE // 2, None)):
        receipts.append(_write_receipt(out, reader, checkpoints[TREE_SIZE], index, extra))
    receipts.append(_write_receipt(out, reader, checkpoints[257], 256, None))

    stored = b"".join(reader.hashes)
    manifest = {
        "log": _key(LOG_NAME, log.public_key, log.vkey()),
        "witnesses": [
            _key(
                WITNESS_NAME, witness_pub, make_vkey(WITNESS_NAME, witness_pub, ALG_COSIGNATURE_V1)
            )
        ],
        "checkpoints": [f"checkpoint-{size}" for size in CHECKPOINT_SIZES],
        "leaves": [b64encode(d) for d in leaves],
        "stored_hashes": {
            "count": len(reader.hashes),
            "sha256": b64encode(hashlib.sha256(stored).digest()),
        },
        "roots": [{"size": s, "root": b64encode(r)} for s, r in roots.items()],
        "inclusion": [
            {"index": i, "size": s, "proof": [b64encode(h) for h in _inclusion(reader, i, s)]}
            for i, s in inclusion
        ],
        "consistency": [
            {"old": o, "new": n, "proof": [b64encode(h) for h in _consistency(reader, o, n)]}
            for o, n in consistency
        ],
        "tiles": tile_sets,
        "receipts": receipts,
    }
    (out / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return Artifacts(out, log, roots, checkpoints)


def _inclusion(reader: _ListReader, index: int, size: int) -> list[bytes]:
    return merkle.inclusion_proof(index, size, reader)


def _consistency(reader: _ListReader, old: int, new: int) -> list[bytes]:
    return merkle.consistency_proof(old, new, reader)


def _key(name: str, public_key: bytes, vkey: str) -> dict[str, str]:
    return {"name": name, "public_key": public_key.hex(), "vkey": vkey}


def _write_receipt(
    out: Path, reader: _ListReader, checkpoint: bytes, index: int, extra: bytes | None
) -> dict[str, object]:
    size = int(checkpoint.split(b"\n")[1])
    receipt = Receipt(index, tuple(_inclusion(reader, index, size)), checkpoint, extra)
    data = receipt.encode()
    assert parse_receipt(data) == receipt
    name = f"receipts/{index}-of-{size}.tlog-proof"
    (out / name).write_bytes(data)
    return {"file": name, "index": index}


# --- Go checks our artifacts ------------------------------------------------------


@pytest.fixture(scope="session")
def go_report(gocheck: Path, artifacts: Artifacts) -> tuple[int, list[str]]:
    result = _run(gocheck, "check", str(artifacts.dir))
    assert not result.stderr, result.stderr
    return result.returncode, result.stdout.splitlines()


def _lines(report: tuple[int, list[str]], topic: str) -> tuple[list[str], list[str]]:
    """The ok and FAIL lines of one topic of the Go report."""
    _, lines = report
    ok = [line for line in lines if line.startswith(f"ok   {topic}")]
    failed = [line for line in lines if line.startswith(f"FAIL {topic}")]
    return ok, failed


def _assert_topic(report: tuple[int, list[str]], topic: str, expected_ok: int) -> None:
    ok, failed = _lines(report, topic)
    assert not failed, "Go rejects:\n" + "\n".join(failed)
    assert len(ok) == expected_ok, (
        f"expected {expected_ok} passing {topic!r} checks:\n" + "\n".join(report[1])
    )


def test_go_check_passes_overall(go_report: tuple[int, list[str]]) -> None:
    code, lines = go_report
    failed = [line for line in lines if line.startswith("FAIL")]
    assert code == 0 and not failed, "\n".join(lines)
    assert lines[-1].endswith(" 0 failed"), lines[-1]


def test_go_makes_the_same_vkey_and_parses_ours(
    go_report: tuple[int, list[str]], artifacts: Artifacts
) -> None:
    govkeys = [line.split(" ", 2)[1:] for line in go_report[1] if line.startswith("govkey ")]
    assert govkeys == [[LOG_NAME, artifacts.log.vkey()]]
    assert make_vkey(LOG_NAME, artifacts.log.public_key) == artifacts.log.vkey()
    _assert_topic(go_report, "vkey:", 2)
    _assert_topic(go_report, "cosigner vkey", 1)


def test_go_opens_our_signed_checkpoints(go_report: tuple[int, list[str]]) -> None:
    # Per checkpoint: note.Open, text parsed (by hand and tlog.ParseTree), root
    # equal to Go's, and the witness cosignature.
    _assert_topic(go_report, "checkpoint", 4 * len(CHECKPOINT_SIZES))


def test_go_computes_our_stored_hashes_and_roots(go_report: tuple[int, list[str]]) -> None:
    _assert_topic(go_report, "stored hashes:", 1)
    _assert_topic(go_report, "root:", 1)


def test_go_accepts_our_inclusion_and_consistency_proofs(
    go_report: tuple[int, list[str]],
) -> None:
    _assert_topic(go_report, "inclusion", 1)
    _assert_topic(go_report, "consistency", 1)


def test_go_builds_the_same_tiles(go_report: tuple[int, list[str]]) -> None:
    # Per size: paths and bytes equal Go's, and Go's tile client accepts them.
    _assert_topic(go_report, "tiles", 2 * len(TILE_SIZES))


def test_go_verifies_our_receipts(go_report: tuple[int, list[str]]) -> None:
    _assert_topic(go_report, "receipt", 4)


def test_go_rejects_a_tampered_checkpoint(gocheck: Path, artifacts: Artifacts) -> None:
    """The Go check can fail: one changed root byte and note.Open refuses our note."""
    bad = artifacts.dir.parent / (artifacts.dir.name + "-tampered")
    bad.mkdir()
    manifest = json.loads((artifacts.dir / "manifest.json").read_text(encoding="utf-8"))
    manifest.update(inclusion=[], consistency=[], tiles=[], receipts=[])
    manifest["checkpoints"] = ["checkpoint"]
    (bad / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    note = bytearray(artifacts.checkpoints[257])
    root_line = note.index(b"\n", note.index(b"\n") + 1) + 1
    note[root_line] = ord("B") if note[root_line] == ord("A") else ord("A")
    (bad / "checkpoint").write_bytes(bytes(note))
    result = _run(gocheck, "check", str(bad))
    assert result.returncode == 1, result.stdout
    assert "FAIL checkpoint checkpoint: note.Open with our log vkey" in result.stdout


# --- We verify what Go signs -------------------------------------------------------


def test_go_vkey_equals_ours_for_other_names(gocheck: Path) -> None:
    signer = Signer.from_seed(bytes(range(32)))
    for name in ("example.com", "ledger.example.org/paris-call", "oid/1.3.6.1.4.1", "é.example/ü"):
        result = _run(gocheck, "vkey", name, signer.public_key.hex())
        assert result.returncode == 0, result.stderr
        assert result.stdout == make_vkey(name, signer.public_key) + "\n"


def test_we_open_a_checkpoint_go_signed(
    gocheck: Path, artifacts: Artifacts, tmp_path: Path
) -> None:
    cp = Checkpoint("go.example/log", 300, artifacts.roots[300])
    text = tmp_path / "text"
    text.write_text(cp.to_text(), encoding="utf-8")
    signed = tmp_path / "signed"
    result = _run(gocheck, "sign", str(text), str(signed), "go.example/log", "go.example/other")
    assert result.returncode == 0, result.stderr
    go_vkey, other_vkey = result.stdout.splitlines()
    data = signed.read_bytes()

    # Go's vkey is the one we would make for its key.
    verifier = parse_vkey(go_vkey)
    assert make_vkey("go.example/log", _vkey_public_key(go_vkey)) == go_vkey

    note = open_note(data, [verifier])
    assert note.text == cp.to_text()
    assert [s.name for s in note.signatures] == ["go.example/log", "go.example/other"]
    assert [s.name for s in note.verified] == ["go.example/log"]  # the other key is unknown

    both = open_note(data, [verifier, parse_vkey(other_vkey)])
    assert len(both.verified) == 2

    parsed, _ = open_checkpoint(data, [verifier], "go.example/log")
    assert parsed == cp

    # A flipped bit in Go's signature is a known key's bad signature: rejected.
    sig_start = data.index("— go.example/log ".encode()) + len("— go.example/log ".encode())
    tampered = bytearray(data)
    tampered[sig_start + 10] = ord("A") if tampered[sig_start + 10] != ord("A") else ord("B")
    with pytest.raises(SignatureError):
        open_note(bytes(tampered), [verifier])


def _vkey_public_key(vkey: str) -> bytes:
    key = base64.b64decode(vkey.split("+", 2)[2], validate=True)
    assert key[0] == 0x01 and len(key) == 33
    return key[1:]
