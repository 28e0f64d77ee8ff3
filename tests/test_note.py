"""Signed notes, vkeys and cosignatures (C2SP signed-note, tlog-cosignature).

The vectors in tests/vectors/note/ are written by an independent generator and
include the published examples: the signed-note spec's vkey and note, the notes of
golang.org/x/mod/sumdb/note's tests and the tlog-cosignature spec's checkpoint.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.core import errors
from ledger.core.errors import FormatError, SignatureError, TooLargeError, UnknownKeyError
from ledger.core.note import (
    ALG_COSIGNATURE_V1,
    ALG_ED25519,
    MAX_NOTE_SIZE,
    MAX_SIGNATURES,
    CosignatureVerifier,
    Ed25519NoteSigner,
    Ed25519Verifier,
    Note,
    NoteSignature,
    cosign,
    cosignature_message,
    key_id,
    make_vkey,
    open_note,
    parse_note,
    parse_vkey,
    sign_note,
    split_cosignature,
)

VECTORS_DIR = Path(__file__).resolve().parent / "vectors" / "note"
DOC: dict[str, Any] = json.loads((VECTORS_DIR / "vectors.json").read_text("utf-8"))
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("note_vectors", VECTORS_DIR / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _key(label: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(label.encode()).digest())


def _data(v: dict[str, Any]) -> bytes:
    return v["note"].encode("utf-8") if "note" in v else base64.b64decode(v["note_b64"])


VKEYS = {v["name"]: v for v in DOC["vkeys"]}
LOG = "ledger.example.org/log"
LOG_SIGNER = Ed25519NoteSigner(LOG, _key("test_note log"))
WITNESS = "witness.example.org/w1"
WITNESS_KEY = _key("test_note witness")
TEXT = "ledger.example.org/log\n7\n" + base64.b64encode(bytes(32)).decode() + "\n"


def test_committed_vectors_are_the_generator_output() -> None:
    assert (VECTORS_DIR / "vectors.json").read_bytes() == _generator().render()


@pytest.mark.parametrize("v", DOC["vkeys"], ids=[v["name"] for v in DOC["vkeys"]])
def test_vkey_vector(v: dict[str, Any]) -> None:
    if v["expected"] == "accept":
        verifier = parse_vkey(v["vkey"])
        assert verifier.vkey == v["vkey"]  # re-encodes to the same string
    else:
        with pytest.raises(FormatError) as exc:
            parse_vkey(v["vkey"])
        assert type(exc.value).__name__ == v["expected"]


@pytest.mark.parametrize("v", DOC["notes"], ids=[v["name"] for v in DOC["notes"]])
def test_note_vector(v: dict[str, Any]) -> None:
    data = _data(v)
    verifiers = [parse_vkey(VKEYS[name]["vkey"]) for name in v["vkeys"]]
    if v["expected"] == "accept":
        note = open_note(data, verifiers)
        assert [s.name for s in note.verified] == v["verified"]
        assert note.encode() == data
        assert parse_note(data) == note
    else:
        expected = getattr(errors, v["expected"])
        with pytest.raises(expected) as exc:
            open_note(data, verifiers)
        assert type(exc.value) is expected
        if issubclass(expected, FormatError):  # a parse error, whatever the keys
            with pytest.raises(expected):
                parse_note(data)


def test_spec_example() -> None:
    verifier = parse_vkey(SPEC_VKEY)
    assert isinstance(verifier, Ed25519Verifier)
    assert verifier.name == "example.com/foo"
    assert verifier.key_id == bytes.fromhex("530d903a")
    assert key_id("example.com/foo", verifier.public_key) == verifier.key_id
    assert make_vkey("example.com/foo", verifier.public_key) == SPEC_VKEY
    note = open_note(
        _data(next(v for v in DOC["notes"] if v["name"] == "spec-example")), [verifier]
    )
    assert note.text == "This is an example message.\n"


def test_cosignature_spec_example_framing() -> None:
    # The spec publishes no witness key: check the framing it fixes.
    data = DOC["cosignature_spec_note"].encode()
    note = parse_note(data)
    assert note.encode() == data
    assert note.text.startswith("example.com/behind-the-sofa\n20852163\n")
    log, witness = note.signatures
    assert (log.name, len(log.signature)) == ("example.com/behind-the-sofa", 64)
    assert (witness.name, witness.key_id.hex()) == ("witness.example.com/w1", "8d66cf3f")
    timestamp, sig = split_cosignature(witness.signature)
    assert (timestamp, len(sig)) == (1679315147, 64)
    # The signed message of tlog-cosignature, "Ed25519 signed message".
    assert cosignature_message(note.text, timestamp) == (
        b"cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\n"
        b"CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    )


def test_sign_and_open_round_trip() -> None:
    other = Ed25519NoteSigner("other.example/key", _key("test_note other"))
    data = sign_note(TEXT, [LOG_SIGNER, other])
    assert data.startswith(TEXT.encode() + b"\n\xe2\x80\x94 ledger.example.org/log ")
    verifier = parse_vkey(LOG_SIGNER.vkey)
    note = open_note(data, [verifier])
    assert note.text == TEXT
    assert [s.name for s in note.signatures] == [LOG, "other.example/key"]
    assert [s.name for s in note.verified] == [LOG]
    assert note.encode() == data
    with pytest.raises(UnknownKeyError):
        open_note(data, [])


def test_signer_key_id_and_vkey() -> None:
    pub = LOG_SIGNER.public_key
    assert LOG_SIGNER.key_id == hashlib.sha256(LOG.encode() + b"\n\x01" + pub).digest()[:4]
    assert LOG_SIGNER.vkey == make_vkey(LOG, pub, ALG_ED25519)
    assert "private" not in repr(LOG_SIGNER).lower()


@pytest.mark.parametrize("text", ["no newline", "", "a\r\n", "tab\there\n", "nul\x00\n"], ids=repr)
def test_sign_note_rejects_bad_text(text: str) -> None:
    with pytest.raises(FormatError):
        sign_note(text, [LOG_SIGNER])


@pytest.mark.parametrize("name", ["", "a b", "a+b", "a\u00a0b", "a\nb"], ids=repr)
def test_bad_key_names_rejected_everywhere(name: str) -> None:
    with pytest.raises(FormatError):
        Ed25519NoteSigner(name, _key("x"))
    with pytest.raises(FormatError):
        NoteSignature(name, bytes(4), bytes(64))
    with pytest.raises(FormatError):
        make_vkey(name, LOG_SIGNER.public_key)


def test_note_object_invariants() -> None:
    sig = NoteSignature(LOG, bytes(4), bytes(64))
    with pytest.raises(FormatError):
        Note(TEXT, ())
    with pytest.raises(TooLargeError):
        Note(TEXT, (sig,) * (MAX_SIGNATURES + 1))
    with pytest.raises(FormatError):
        NoteSignature(LOG, bytes(3), bytes(64))
    with pytest.raises(FormatError):
        NoteSignature(LOG, bytes(4), b"")


def test_cosign_and_verify() -> None:
    signed = sign_note(TEXT, [LOG_SIGNER])
    cosignature = cosign(TEXT, WITNESS, WITNESS_KEY, 1_767_225_600)
    pub = WITNESS_KEY.public_key().public_bytes_raw()
    assert cosignature.key_id == key_id(WITNESS, pub, ALG_COSIGNATURE_V1)
    assert cosignature.signature[:8] == (1_767_225_600).to_bytes(8, "big")
    verifier = parse_vkey(make_vkey(WITNESS, pub, ALG_COSIGNATURE_V1))
    assert isinstance(verifier, CosignatureVerifier)
    assert verifier.verify(TEXT.encode(), cosignature.signature) == 1_767_225_600
    # Appended to the log's note, it is opened by either key, and ignored by the log's alone.
    cosigned = parse_note(signed).add(cosignature).encode()
    assert cosigned == signed + cosignature.line().encode()
    both = open_note(cosigned, [parse_vkey(LOG_SIGNER.vkey), verifier])
    assert [s.name for s in both.verified] == [LOG, WITNESS]
    assert [s.name for s in open_note(cosigned, [parse_vkey(LOG_SIGNER.vkey)]).verified] == [LOG]
    # Not valid over another text, nor as a plain note signature of the same key.
    with pytest.raises(SignatureError):
        verifier.verify(TEXT.replace("7", "8").encode(), cosignature.signature)
    with pytest.raises(SignatureError):
        CosignatureVerifier(WITNESS, pub).verify(TEXT.encode(), cosignature.signature[8:])
    with pytest.raises(FormatError):
        cosign(TEXT, WITNESS, WITNESS_KEY, 2**63)


def test_the_same_key_as_note_signer_and_cosigner_has_two_key_ids() -> None:
    pub = WITNESS_KEY.public_key().public_bytes_raw()
    assert key_id(WITNESS, pub, ALG_ED25519) != key_id(WITNESS, pub, ALG_COSIGNATURE_V1)


def test_ambiguous_verifiers_rejected() -> None:
    data = sign_note(TEXT, [LOG_SIGNER])
    verifier = parse_vkey(LOG_SIGNER.vkey)

    class Impostor:
        name = verifier.name
        key_id = verifier.key_id

        def verify(self, message: bytes, signature: bytes) -> None:
            return None

    with pytest.raises(SignatureError, match="ambiguous"):
        open_note(data, [verifier, Impostor()])


def test_too_large_note_rejected() -> None:
    text = "x" * MAX_NOTE_SIZE + "\n"
    data = sign_note(text, [LOG_SIGNER])
    with pytest.raises(TooLargeError):
        parse_note(data)
    # Just under the limit is fine.
    text = "x" * (MAX_NOTE_SIZE - 200) + "\n"
    assert open_note(sign_note(text, [LOG_SIGNER]), [parse_vkey(LOG_SIGNER.vkey)]).text == text


_TEXT_CHARS = st.characters(
    blacklist_categories=("Cs",), blacklist_characters=[chr(c) for c in range(32) if c != 10]
)
_NAMES = st.text(
    st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc"), blacklist_characters="+"),
    min_size=1,
    max_size=30,
).filter(lambda s: not any(c.isspace() for c in s))


@settings(max_examples=100, deadline=None)
@given(st.text(_TEXT_CHARS, max_size=200).map(lambda s: s + "\n"), _NAMES)
def test_any_text_and_name_round_trip(text: str, name: str) -> None:
    signer = Ed25519NoteSigner(name, _key("round trip"))
    data = sign_note(text, [signer])
    note = open_note(data, [parse_vkey(signer.vkey)])
    assert note.text == text
    assert note.encode() == data
    assert parse_vkey(signer.vkey).vkey == signer.vkey


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_parse_note_accepts_only_what_round_trips(data: bytes) -> None:
    try:
        note = parse_note(data)
    except FormatError:
        return
    assert note.encode() == data


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_signed_note_never_opens_with_another_text(data: st.DataObject) -> None:
    signed = bytearray(sign_note(TEXT, [LOG_SIGNER]))
    i = data.draw(st.integers(0, len(signed) - 1))
    signed[i] ^= 1 << data.draw(st.integers(0, 7))
    try:
        note = open_note(bytes(signed), [parse_vkey(LOG_SIGNER.vkey)])
    except (FormatError, SignatureError):
        return
    assert note.text == TEXT  # only the (unsigned) signature line can change harmlessly
