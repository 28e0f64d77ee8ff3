"""Checkpoints (C2SP tlog-checkpoint): strict text, signing and opening."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.core.checkpoint import (
    Checkpoint,
    WrongOriginError,
    open_checkpoint,
    parse_checkpoint_text,
    sign_checkpoint,
)
from ledger.core.errors import FormatError, SignatureError, UnknownKeyError, VerificationError
from ledger.core.note import Ed25519NoteSigner, cosign, parse_note, parse_vkey, sign_note

VECTORS = Path(__file__).resolve().parent / "vectors" / "records"
ORIGIN = "ledger.example.org/test"
ROOT = hashlib.sha256(b"root").digest()
ROOT_B64 = base64.b64encode(ROOT).decode()
SIGNER = Ed25519NoteSigner(
    ORIGIN, Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"test_checkpoint").digest())
)
VERIFIER = parse_vkey(SIGNER.vkey)

# The tlog-checkpoint spec's example text.
SPEC_TEXT = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
# docs/spec.md, "Identities and keys": the example log's vkey.
EXAMPLE_LOG_VKEY = (
    "ledger.example.org/paris-call+862f1e68+AWzr2KAlxRMQXlnjRueosC84ZigS4Xy0UvIsmb9bl/Jg"
)


def test_spec_example_text() -> None:
    cp = parse_checkpoint_text(SPEC_TEXT)
    assert (cp.origin, cp.size, cp.extensions) == ("example.com/behind-the-sofa", 20852163, ())
    assert base64.b64encode(cp.root).decode() == "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="
    assert cp.to_text() == SPEC_TEXT


def test_example_log_checkpoint_of_the_spec() -> None:
    data = (VECTORS / "checkpoint.txt").read_bytes()
    cp, note = open_checkpoint(
        data, [parse_vkey(EXAMPLE_LOG_VKEY)], "ledger.example.org/paris-call"
    )
    assert cp.size == 8
    assert cp.root.hex() == "f366c4f6aa2d776e43fa48c4370c81b02dadcb71caffc2a15af351113e00ff83"
    assert note.encode() == data


def test_round_trip_with_extensions() -> None:
    cp = Checkpoint(ORIGIN, 0, ROOT, ("ext one", "— ext two"))
    text = cp.to_text()
    assert text == f"{ORIGIN}\n0\n{ROOT_B64}\next one\n— ext two\n"
    assert parse_checkpoint_text(text) == cp


URLSAFE = base64.urlsafe_b64encode(bytes([0xFB]) * 32).decode()
BAD_TEXTS = {
    "leading-zero-size": f"{ORIGIN}\n08\n{ROOT_B64}\n",
    "plus-size": f"{ORIGIN}\n+8\n{ROOT_B64}\n",
    "underscore-size": f"{ORIGIN}\n1_000\n{ROOT_B64}\n",
    "space-size": f"{ORIGIN}\n 8\n{ROOT_B64}\n",
    "negative-size": f"{ORIGIN}\n-1\n{ROOT_B64}\n",
    "fullwidth-digit-size": f"{ORIGIN}\n\uff18\n{ROOT_B64}\n",
    "size-over-2^63-1": f"{ORIGIN}\n{2**63}\n{ROOT_B64}\n",
    "hex-size": f"{ORIGIN}\n0x8\n{ROOT_B64}\n",
    "empty-size": f"{ORIGIN}\n\n{ROOT_B64}\n",
    "root-non-canonical-base64": f"{ORIGIN}\n8\n{ROOT_B64[:-2]}{chr(ord(ROOT_B64[-2]) + 1)}=\n",
    "root-no-padding": f"{ORIGIN}\n8\n{ROOT_B64.rstrip('=')}\n",
    "root-31-bytes": f"{ORIGIN}\n8\n{base64.b64encode(ROOT[:31]).decode()}\n",
    "root-33-bytes": f"{ORIGIN}\n8\n{base64.b64encode(ROOT + b'x').decode()}\n",
    "root-hex": f"{ORIGIN}\n8\n{ROOT.hex()}\n",
    "root-url-alphabet": f"{ORIGIN}\n8\n{URLSAFE}\n",
    "empty-origin": f"\n8\n{ROOT_B64}\n",
    "two-lines": f"{ORIGIN}\n8\n",
    "no-final-newline": f"{ORIGIN}\n8\n{ROOT_B64}",
    "trailing-empty-line": f"{ORIGIN}\n8\n{ROOT_B64}\n\n",
    "empty-extension-line": f"{ORIGIN}\n8\n{ROOT_B64}\n\next\n",
    "cr-in-origin": f"{ORIGIN}\r\n8\n{ROOT_B64}\n",
    "empty": "",
}


@pytest.mark.parametrize("text", BAD_TEXTS.values(), ids=BAD_TEXTS.keys())
def test_bad_text_rejected(text: str) -> None:
    with pytest.raises(FormatError):
        parse_checkpoint_text(text)


@pytest.mark.parametrize(
    "args",
    [("", 1, ROOT), ("a\nb", 1, ROOT), (ORIGIN, -1, ROOT), (ORIGIN, 2**63, ROOT), (ORIGIN, 1, b"")],
    ids=["empty-origin", "newline-origin", "negative", "too-big", "short-root"],
)
def test_checkpoint_invariants(args: tuple[str, int, bytes]) -> None:
    with pytest.raises(FormatError):
        Checkpoint(*args)
    with pytest.raises(FormatError):
        Checkpoint(ORIGIN, 1, ROOT, ("",))


def test_sign_and_open() -> None:
    cp = Checkpoint(ORIGIN, 42, ROOT)
    data = sign_checkpoint(cp, SIGNER)
    assert data.startswith(cp.to_text().encode() + "\n— ".encode())
    opened, note = open_checkpoint(data, [VERIFIER], ORIGIN)
    assert opened == cp
    assert note.text == cp.to_text()
    assert [s.name for s in note.verified] == [ORIGIN]
    assert open_checkpoint(data, [VERIFIER]) == (cp, note)


def test_signer_must_be_named_after_the_origin() -> None:
    with pytest.raises(FormatError):
        sign_checkpoint(Checkpoint("other.example/log", 1, ROOT), SIGNER)


def test_wrong_origin_is_a_typed_error() -> None:
    data = sign_checkpoint(Checkpoint(ORIGIN, 1, ROOT), SIGNER)
    with pytest.raises(WrongOriginError) as exc:
        open_checkpoint(data, [VERIFIER], "ledger.example.org/other")
    assert isinstance(exc.value, VerificationError)
    assert (exc.value.expected, exc.value.found) == ("ledger.example.org/other", ORIGIN)


def test_a_log_key_cannot_sign_for_another_origin() -> None:
    # A trusted key named ORIGIN signs a checkpoint naming another log: not that log's checkpoint.
    text = Checkpoint("ledger.example.org/other", 1, ROOT).to_text()
    data = sign_note(text, [SIGNER])
    with pytest.raises(UnknownKeyError):
        open_checkpoint(data, [VERIFIER])


def test_bad_and_unknown_signatures() -> None:
    data = bytearray(sign_checkpoint(Checkpoint(ORIGIN, 1, ROOT), SIGNER))
    data[-10] = ord("A") if data[-10] != ord("A") else ord("B")
    with pytest.raises(SignatureError):
        open_checkpoint(bytes(data), [VERIFIER])
    other = Ed25519NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
    with pytest.raises(UnknownKeyError):
        open_checkpoint(sign_checkpoint(Checkpoint(ORIGIN, 1, ROOT), other), [VERIFIER])


def test_cosignatures_are_tolerated() -> None:
    cp = Checkpoint(ORIGIN, 5, ROOT)
    signed = sign_checkpoint(cp, SIGNER)
    witness_key = Ed25519PrivateKey.from_private_bytes(bytes(32))
    cosigned = parse_note(signed).add(cosign(cp.to_text(), "w.example", witness_key, 1)).encode()
    assert open_checkpoint(cosigned, [VERIFIER], ORIGIN)[0] == cp


def test_note_text_that_is_not_a_checkpoint() -> None:
    data = sign_note("hello\n", [SIGNER])
    with pytest.raises(FormatError):
        open_checkpoint(data, [VERIFIER])


@settings(max_examples=200, deadline=None)
@given(
    st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=50),
    st.integers(0, 2**63 - 1),
    st.binary(min_size=32, max_size=32),
    st.lists(st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1), max_size=3),
)
def test_round_trip(origin: str, size: int, root: bytes, extensions: list[str]) -> None:
    cp = Checkpoint(origin, size, root, tuple(extensions))
    assert parse_checkpoint_text(cp.to_text()) == cp
