"""Trust policies (C2SP tlog-policy): strict parsing and witness quorums."""

from __future__ import annotations

import hashlib
import itertools

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.core.checkpoint import Checkpoint, sign_checkpoint
from ledger.core.errors import FormatError, SignatureError, TooLargeError, VerificationError
from ledger.core.note import (
    ALG_COSIGNATURE_V1,
    Ed25519NoteSigner,
    Ed25519Verifier,
    Note,
    NoteSignature,
    cosign,
    make_vkey,
    parse_note,
)
from ledger.core.policy import MAX_ITEMS, check_quorum, parse_policy

ORIGIN = "ledger.example.org/policy"
ROOT = hashlib.sha256(b"policy root").digest()


def _priv(label: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(label.encode()).digest())


LOG = Ed25519NoteSigner(ORIGIN, _priv("policy log"))
WITNESS_KEYS = {n: _priv(f"policy witness {n}") for n in ("X1", "X2", "X3", "Y1", "Y2", "Y3")}


def _wvkey(name: str, key_name: str | None = None) -> str:
    pub = WITNESS_KEYS[name].public_key().public_bytes_raw()
    return make_vkey(key_name or f"{name.lower()}.witness.example", pub, ALG_COSIGNATURE_V1)


def _checkpoint(*cosigners: str) -> bytes:
    """The log's signed checkpoint, cosigned by the named witnesses."""
    cp = Checkpoint(ORIGIN, 10, ROOT)
    note = parse_note(sign_checkpoint(cp, LOG))
    sigs = [
        cosign(cp.to_text(), f"{n.lower()}.witness.example", WITNESS_KEYS[n], 1_700_000_000)
        for n in cosigners
    ]
    return note.add(*sigs).encode()


SPEC_SHAPED = f"""\
log {LOG.vkey}

witness X1 {_wvkey("X1")}
witness X2 {_wvkey("X2")}
witness X3 {_wvkey("X3")}
group X-witnesses 2 X1 X2 X3

witness Y1 {_wvkey("Y1")}
witness Y2 {_wvkey("Y2")}
witness Y3 {_wvkey("Y3")}
group Y-witnesses any Y1 Y2 Y3

group X-and-Y all X-witnesses Y-witnesses
quorum X-and-Y
""".encode()


def test_spec_example_shape_parses() -> None:
    policy = parse_policy(SPEC_SHAPED)
    assert [v.vkey for v in policy.logs] == [LOG.vkey]
    assert policy.log_urls == (None,)
    assert [w.name for w in policy.witnesses] == ["X1", "X2", "X3", "Y1", "Y2", "Y3"]
    assert [(g.name, g.threshold, g.members) for g in policy.groups] == [
        ("X-witnesses", 2, ("X1", "X2", "X3")),
        ("Y-witnesses", 1, ("Y1", "Y2", "Y3")),
        ("X-and-Y", 2, ("X-witnesses", "Y-witnesses")),
    ]
    assert policy.quorum == "X-and-Y"


@pytest.mark.parametrize("r", range(7))
def test_quorum_over_every_subset_of_cosigners(r: int) -> None:
    policy = parse_policy(SPEC_SHAPED)
    for cosigners in itertools.combinations(WITNESS_KEYS, r):
        data = _checkpoint(*cosigners)
        xs = sum(c.startswith("X") for c in cosigners)
        ys = sum(c.startswith("Y") for c in cosigners)
        assert set(policy.cosigners(data)) == set(cosigners)
        if xs >= 2 and ys >= 1:
            policy.check_quorum(data)
            cp, _ = policy.open_checkpoint(data, ORIGIN)
            assert cp.size == 10
        else:
            with pytest.raises(VerificationError, match="quorum not met") as exc:
                check_quorum(parse_note(data), policy)
            assert exc.value.code == "quorum_not_met"


def test_unmet_quorum_names_what_is_missing() -> None:
    policy = parse_policy(SPEC_SHAPED)
    with pytest.raises(VerificationError) as exc:
        policy.check_quorum(_checkpoint("X1", "X2"))
    message = str(exc.value)
    assert "group 'X-and-Y' needs 2 of its 2 members and has 1" in message
    assert "group 'Y-witnesses' needs 1 of its 3 members and has 0" in message
    assert "no valid cosignature from witness 'Y1'" in message
    assert "X-witnesses'" not in message.split("unmet:")[1]  # X is satisfied


def test_quorum_none_and_single_witness() -> None:
    none = parse_policy(f"log {LOG.vkey}\nquorum none\n".encode())
    assert none.quorum is None and none.witnesses == ()
    none.check_quorum(_checkpoint())
    single = parse_policy(f"witness X1 {_wvkey('X1')}\nquorum X1\nlog {LOG.vkey}\n".encode())
    single.check_quorum(_checkpoint("X1"))
    with pytest.raises(VerificationError, match="witness 'X1'"):
        single.check_quorum(_checkpoint("X2"))


def test_invalid_cosignature_of_a_listed_witness_rejects() -> None:
    policy = parse_policy(SPEC_SHAPED)
    note = parse_note(_checkpoint("X1", "X2", "Y1"))
    bad = note.signatures[-1]
    forged = NoteSignature(
        bad.name, bad.key_id, bad.signature[:-1] + bytes([bad.signature[-1] ^ 1])
    )
    data = Note(note.text, (*note.signatures[:-1], forged)).encode()
    with pytest.raises(SignatureError, match="invalid cosignature by witness 'Y1'"):
        policy.check_quorum(data)


def test_invalid_cosignature_of_a_listed_witness_rejects_under_quorum_none() -> None:
    """Every key the policy lists is a known key: the quorum does not change that."""
    policy = parse_policy(f"log {LOG.vkey}\nwitness X1 {_wvkey('X1')}\nquorum none\n".encode())
    note = parse_note(_checkpoint("X1"))
    policy.check_quorum(note)  # valid: accepted
    bad = note.signatures[-1]
    forged = NoteSignature(
        bad.name, bad.key_id, bad.signature[:-1] + bytes([bad.signature[-1] ^ 1])
    )
    data = Note(note.text, (*note.signatures[:-1], forged)).encode()
    with pytest.raises(SignatureError, match="invalid cosignature by witness 'X1'"):
        policy.check_quorum(data)


def test_cosignature_of_another_checkpoint_does_not_count() -> None:
    policy = parse_policy(f"log {LOG.vkey}\nwitness X1 {_wvkey('X1')}\nquorum X1\n".encode())
    other = Checkpoint(ORIGIN, 11, ROOT).to_text()
    sig = cosign(other, "x1.witness.example", WITNESS_KEYS["X1"], 1)
    data = parse_note(_checkpoint()).add(sig).encode()
    with pytest.raises(SignatureError):
        policy.check_quorum(data)


def test_unlisted_cosigners_are_ignored() -> None:
    policy = parse_policy(f"log {LOG.vkey}\nwitness X1 {_wvkey('X1')}\nquorum X1\n".encode())
    assert policy.cosigners(_checkpoint("X1", "Y1", "Y2")) == {"X1": 1_700_000_000}


def test_syntax_details() -> None:
    text = (
        f"# a comment\n   # an indented comment\n\n \t \n"
        f"\tlog  {LOG.vkey}\thttps://log.example/  \n"
        f"witness\tX1 {_wvkey('X1')} https://x1.example/\n"
        f"group g all X1 # not a comment: an undefined member\n"
    ).encode()
    with pytest.raises(FormatError, match="line 7"):
        parse_policy(text + b"quorum g\n")
    text = text.replace(b" # not a comment: an undefined member", b"") + b"quorum g\n"
    policy = parse_policy(text)
    assert policy.log_urls == ("https://log.example/",)
    assert policy.witnesses[0].url == "https://x1.example/"
    assert isinstance(policy.logs[0], Ed25519Verifier)


def test_names_are_opaque_octets() -> None:
    kelvin = "\u212a".encode()
    text = (
        b"witness K " + _wvkey("X1").encode() + b"\n"
        b"witness " + kelvin + b" " + _wvkey("X2").encode() + b"\n"
        b"witness \xff " + _wvkey("X3").encode() + b"\n"
        b"group g all K " + kelvin + b" \xff\n"
        b"quorum g\n"
    )
    policy = parse_policy(text)
    assert len({w.name for w in policy.witnesses}) == 3
    policy.check_quorum(_checkpoint("X1", "X2", "X3"))


def test_supports_32_of_each() -> None:
    keys = [_priv(f"many {i}").public_key().public_bytes_raw() for i in range(64)]
    lines = [f"log {make_vkey(f'log{i}.example', keys[i])}" for i in range(32)]
    lines += [
        f"witness w{i} {make_vkey(f'w{i}.example', keys[32 + i], ALG_COSIGNATURE_V1)}"
        for i in range(32)
    ]
    lines += [f"group g{i} any w{i}" for i in range(32)]
    lines += ["group all all " + " ".join(f"g{i}" for i in range(31)), "quorum all"]
    policy = parse_policy(("\n".join(lines) + "\n").encode())
    assert (len(policy.logs), len(policy.witnesses), len(policy.groups)) == (32, 32, 33)


def test_item_limit() -> None:
    pubs = [_priv(f"limit {i}").public_key().public_bytes_raw() for i in range(MAX_ITEMS + 1)]
    lines = [f"witness w{i} {make_vkey('w.example', pub, 4)}" for i, pub in enumerate(pubs)]
    with pytest.raises(TooLargeError, match=f"line {MAX_ITEMS + 1}"):
        parse_policy(("\n".join(lines) + "\nquorum none\n").encode())


def test_size_limit() -> None:
    with pytest.raises(TooLargeError):
        parse_policy(b"# " + b"x" * (64 * 1024) + b"\nquorum none\n")


X1, X2 = _wvkey("X1"), _wvkey("X2")
OTHER_LOG = Ed25519NoteSigner("other.example/log", _priv("policy log")).vkey  # same key
BAD_POLICIES = {
    "no-quorum": f"log {LOG.vkey}\n",
    "empty": "",
    "two-quorums": "quorum none\nquorum none\n",
    "no-final-newline": "quorum none",
    "crlf": "quorum none\r\n",
    "control-character": "quorum none\n\x01\n",
    "del": "quorum none\n# \x7f\n",
    "unknown-keyword": "quorum none\nlogs x\n",
    "uppercase-keyword": "QUORUM none\n",
    "log-without-vkey": "log\nquorum none\n",
    "log-too-many-items": f"log {LOG.vkey} url extra\nquorum none\n",
    "log-cosigner-key": f"log {X1}\nquorum none\n",
    "log-bad-vkey": f"log {LOG.vkey[:-2]}\nquorum none\n",
    "duplicate-log": f"log {LOG.vkey}\nlog {LOG.vkey}\nquorum none\n",
    "duplicate-log-key-other-name": f"log {LOG.vkey}\nlog {OTHER_LOG}\nquorum none\n",
    "witness-note-key": f"witness w {LOG.vkey}\nquorum none\n",
    "witness-without-vkey": "witness w\nquorum none\n",
    "witness-too-many-items": f"witness w {X1} url extra\nquorum none\n",
    "duplicate-witness-key": f"witness a {X1}\nwitness b {X1}\nquorum none\n",
    "duplicate-witness-name": f"witness a {X1}\nwitness a {X2}\nquorum none\n",
    "witness-named-none": f"witness none {X1}\nquorum none\n",
    "group-named-none": f"witness a {X1}\ngroup none any a\nquorum none\n",
    "group-name-taken": f"witness a {X1}\ngroup a any a\nquorum none\n",
    "group-no-members": f"witness a {X1}\ngroup g any\nquorum none\n",
    "group-undefined-member": f"witness a {X1}\ngroup g any a b\nquorum none\n",
    "group-member-defined-later": f"group g any a\nwitness a {X1}\nquorum none\n",
    "group-member-none": f"witness a {X1}\ngroup g any a none\nquorum none\n",
    "group-member-twice": f"witness a {X1}\ngroup g all a a\nquorum none\n",
    "member-of-two-groups": f"witness a {X1}\nwitness b {X2}\ngroup g any a\n"
    "group h any a b\nquorum none\n",
    "group-self-member": f"witness a {X1}\ngroup g any g\nquorum none\n",
    "threshold-zero": f"witness a {X1}\ngroup g 0 a\nquorum none\n",
    "threshold-above-n": f"witness a {X1}\ngroup g 2 a\nquorum none\n",
    "threshold-leading-zero": f"witness a {X1}\nwitness b {X2}\ngroup g 01 a b\nquorum none\n",
    "threshold-word": f"witness a {X1}\ngroup g one a\nquorum none\n",
    "threshold-uppercase-any": f"witness a {X1}\ngroup g ANY a\nquorum none\n",
    "quorum-undefined": f"witness a {X1}\nquorum b\n",
    "quorum-defined-later": f"quorum a\nwitness a {X1}\n",
    "quorum-two-names": f"witness a {X1}\nwitness b {X2}\nquorum a b\n",
    "quorum-empty": "quorum\n",
}


@pytest.mark.parametrize("text", BAD_POLICIES.values(), ids=BAD_POLICIES.keys())
def test_bad_policy_rejected(text: str) -> None:
    with pytest.raises(FormatError):
        parse_policy(text.encode())
