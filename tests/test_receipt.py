"""Receipts (C2SP tlog-proof): strict parsing and verification against a signed checkpoint."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.core import merkle
from ledger.core.checkpoint import Checkpoint, WrongOriginError, sign_checkpoint
from ledger.core.errors import (
    FormatError,
    ProofError,
    RootMismatchError,
    TooLargeError,
    UnknownKeyError,
    VerificationError,
)
from ledger.core.note import (
    ALG_COSIGNATURE_V1,
    Ed25519NoteSigner,
    cosign,
    make_vkey,
    parse_note,
    parse_vkey,
)
from ledger.core.policy import parse_policy
from ledger.core.receipt import HEADER, MAX_PROOF_HASHES, Receipt, parse_receipt, verify_receipt

ORIGIN = "ledger.example.org/receipts"
SIGNER = Ed25519NoteSigner(
    ORIGIN, Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"test_receipt").digest())
)
VERIFIERS = [parse_vkey(SIGNER.vkey)]
WITNESS_KEY = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"test_receipt w").digest())
WITNESS_VKEY = make_vkey(
    "w.example", WITNESS_KEY.public_key().public_bytes_raw(), ALG_COSIGNATURE_V1
)


def _leaf(i: int) -> bytes:
    return merkle.leaf_hash(f"entry {i}".encode())


def _tree(size: int) -> merkle.MemoryHashStore:
    store = merkle.MemoryHashStore()
    for i in range(size):
        store.append(_leaf(i))
    return store


def _receipt(index: int, size: int, extra: bytes | None = None) -> Receipt:
    store = _tree(size)
    checkpoint = sign_checkpoint(Checkpoint(ORIGIN, size, store.root()), SIGNER)
    return Receipt(index, merkle.inclusion_proof(index, size, store), checkpoint, extra)


@pytest.mark.parametrize("size", range(1, 34))
def test_every_index_of_small_trees(size: int) -> None:
    store = _tree(size)
    checkpoint = sign_checkpoint(Checkpoint(ORIGIN, size, store.root()), SIGNER)
    for index in range(size):
        receipt = Receipt(index, merkle.inclusion_proof(index, size, store), checkpoint)
        data = receipt.encode()
        parsed = parse_receipt(data)
        assert parsed == receipt
        assert parsed.encode() == data
        cp = verify_receipt(parsed, _leaf(index), VERIFIERS, ORIGIN)
        assert (cp.size, cp.root) == (size, store.root())
        with pytest.raises(RootMismatchError):
            verify_receipt(parsed, _leaf(index + 1), VERIFIERS, ORIGIN)


def test_layout() -> None:
    receipt = _receipt(2, 5, extra=b"opaque")
    data = receipt.encode()
    lines = data.split(b"\n")
    assert lines[0] == HEADER.encode()
    assert lines[1] == b"extra " + base64.b64encode(b"opaque")
    assert lines[2] == b"index 2"
    assert [base64.b64decode(h) for h in lines[3:6]] == list(receipt.proof)
    assert lines[6] == b""
    assert data.endswith(b"\n\n" + receipt.checkpoint)
    assert parse_receipt(data) == receipt


def test_spec_example_head_with_our_checkpoint() -> None:
    # The head of the tlog-proof spec's example (its checkpoint signatures are elided there).
    head = (
        b"c2sp.org/tlog-proof@v1\n"
        b"extra YWdlLXYxLjIuMS1kYXJ3aW4tYXJtNjQudGFyLmd6kYXJ3aW4tYXJ\n"
        b"index 73894\n"
        b"gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=\n"
        b"B95lDa8R83lS8n0eG+o0buTxRKQTYFi//1U8anccXmA=\n"
        b"EKNzoDWG8LGC0Yp9o+sv3qllpMP9uHQ9B20KNL+Q1zs=\n"
        b"RoopEkOdqkYqMB4MJXrbt/hMjOxsVn0IrWjpz1ZMMes=\n"
        b"AHCioX9nLjsrse6YhjRRmk1WUEirVOLLRoOQ6vfO5vk=\n"
        b"\n"
    )
    data = head + _receipt(0, 1).checkpoint
    receipt = parse_receipt(data)
    assert (receipt.index, len(receipt.proof)) == (73894, 5)
    assert receipt.extra is not None and receipt.extra.startswith(b"age-v1.2.1-darwin-arm64.tar.gz")
    assert receipt.encode() == data


def test_extra_is_optional_and_may_be_empty() -> None:
    for extra in (None, b"", b"\x00\xff" * 100):
        receipt = _receipt(0, 3, extra)
        assert parse_receipt(receipt.encode()) == receipt


def test_index_not_below_size() -> None:
    good = _receipt(3, 4)
    receipt = Receipt(4, good.proof, good.checkpoint)
    with pytest.raises(ProofError, match="not below"):
        verify_receipt(receipt, _leaf(4), VERIFIERS, ORIGIN)


def test_tampered_and_truncated_proofs() -> None:
    good = _receipt(5, 13)
    for i in range(len(good.proof)):
        proof = list(good.proof)
        proof[i] = bytes([proof[i][0] ^ 1]) + proof[i][1:]
        with pytest.raises(RootMismatchError):
            verify_receipt(Receipt(5, proof, good.checkpoint), _leaf(5), VERIFIERS, ORIGIN)
    for proof in (good.proof[:-1], (*good.proof, bytes(32)), ()):
        with pytest.raises(ProofError):
            verify_receipt(Receipt(5, proof, good.checkpoint), _leaf(5), VERIFIERS, ORIGIN)


def test_checkpoint_must_be_trusted_and_for_the_origin() -> None:
    receipt = _receipt(0, 2)
    with pytest.raises(WrongOriginError):
        verify_receipt(receipt, _leaf(0), VERIFIERS, "ledger.example.org/other")
    other = parse_vkey(Ed25519NoteSigner(ORIGIN, Ed25519PrivateKey.generate()).vkey)
    with pytest.raises(UnknownKeyError):
        verify_receipt(receipt, _leaf(0), [other], ORIGIN)
    # origin=None: any origin, as long as a trusted key named after it signed.
    assert verify_receipt(receipt, _leaf(0), VERIFIERS, None).origin == ORIGIN


def test_cosigned_checkpoint_and_policy() -> None:
    good = _receipt(1, 3)
    note = parse_note(good.checkpoint)
    cosigned = note.add(cosign(note.text, "w.example", WITNESS_KEY, 1_700_000_000)).encode()
    receipt = Receipt(1, good.proof, cosigned)
    assert parse_receipt(receipt.encode()) == receipt
    verify_receipt(receipt, _leaf(1), VERIFIERS, ORIGIN)  # the cosignature is ignored
    policy = parse_policy(f"log {SIGNER.vkey}\nwitness w {WITNESS_VKEY}\nquorum w\n".encode())
    verify_receipt(receipt, _leaf(1), policy.logs, ORIGIN, policy=policy)
    with pytest.raises(VerificationError, match="quorum"):
        verify_receipt(good, _leaf(1), policy.logs, ORIGIN, policy=policy)


def _good_data() -> bytes:
    return _receipt(2, 5, extra=b"x").encode()


def _mutations() -> dict[str, bytes]:
    data = _good_data()
    head, _, checkpoint = data.partition(b"\n\n")
    lines = head.split(b"\n")
    hash_line = lines[3]
    b64_last = hash_line[-2:-1]
    out = {
        "wrong-header": b"c2sp.org/tlog-proof@v2\n" + b"\n".join(lines[1:]) + b"\n\n" + checkpoint,
        "no-header": b"\n".join(lines[1:]) + b"\n\n" + checkpoint,
        "no-index": b"\n".join([lines[0], lines[1], *lines[3:]]) + b"\n\n" + checkpoint,
        "index-leading-zero": data.replace(b"index 2\n", b"index 02\n"),
        "index-plus": data.replace(b"index 2\n", b"index +2\n"),
        "index-two-spaces": data.replace(b"index 2\n", b"index  2\n"),
        "index-tab": data.replace(b"index 2\n", b"index\t2\n"),
        "index-too-large": data.replace(b"index 2\n", f"index {2**63}\n".encode()),
        "extra-after-index": b"\n".join([lines[0], lines[2], lines[1], *lines[3:]])
        + b"\n\n"
        + checkpoint,
        "two-extra-lines": data.replace(lines[1] + b"\n", lines[1] + b"\n" + lines[1] + b"\n"),
        "extra-bad-base64": data.replace(lines[1], b"extra eA"),
        "extra-no-space": data.replace(lines[1], b"extra"),
        "hash-non-canonical": data.replace(
            hash_line, hash_line[:-2] + bytes([b64_last[0] + 1]) + b"="
        ),
        "hash-31-bytes": data.replace(hash_line, base64.b64encode(bytes(31))),
        "hash-33-bytes": data.replace(hash_line, base64.b64encode(bytes(33))),
        "hash-hex": data.replace(hash_line, base64.b64decode(hash_line).hex().encode()),
        "too-many-hashes": head
        + (b"\n" + base64.b64encode(bytes(32))) * (MAX_PROOF_HASHES + 1 - 2)
        + b"\n\n"
        + checkpoint,
        "no-empty-line": head + b"\n" + checkpoint,
        "crlf": data.replace(b"\n", b"\r\n"),
        "non-ascii-head": data.replace(b"index 2", "index \uff12".encode()),
        "checkpoint-missing": head + b"\n\n",
        "checkpoint-not-a-note": head + b"\n\n" + parse_note(checkpoint).text.encode(),
        "checkpoint-text-not-a-checkpoint": head
        + b"\n\n"
        + checkpoint.replace(b"\n5\n", b"\n05\n", 1),
        "trailing-garbage": data + b"garbage\n",
        "empty": b"",
    }
    for name, mutated in out.items():
        assert mutated != data, name
    return out


MUTATIONS = _mutations()


@pytest.mark.parametrize("data", MUTATIONS.values(), ids=MUTATIONS.keys())
def test_malformed_receipt_rejected(data: bytes) -> None:
    with pytest.raises(FormatError):
        parse_receipt(data)


def test_too_large_receipt() -> None:
    with pytest.raises(TooLargeError):
        parse_receipt(_good_data() + b"x" * (2 << 20))


def test_receipt_invariants() -> None:
    cp = _receipt(0, 1).checkpoint
    with pytest.raises(FormatError):
        Receipt(-1, (), cp)
    with pytest.raises(FormatError):
        Receipt(0, (bytes(31),), cp)
    with pytest.raises(FormatError):
        Receipt(0, (bytes(32),) * (MAX_PROOF_HASHES + 1), cp)
    assert Receipt(0, [bytes(32)], cp) == Receipt(0, (bytes(32),), cp)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_receipt_parses_only_if_it_round_trips(data: st.DataObject) -> None:
    raw = bytearray(_GOOD)
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    try:
        receipt = parse_receipt(bytes(raw))
    except FormatError:
        return
    assert receipt.encode() == bytes(raw)


_GOOD = _good_data()
