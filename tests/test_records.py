"""ledger.core.records: canonical record bodies, strict parsing, drafts and signatures."""

from __future__ import annotations

import contextlib
import doctest
import hashlib
import unicodedata
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.core import records
from ledger.core.encoding import b64encode
from ledger.core.errors import FormatError, SignatureError, TooLargeError
from ledger.core.records import (
    MAX_AUTHORS,
    MAX_RECORD_SIZE,
    Body,
    Endorsement,
    Kind,
    RecordSignature,
    Registration,
    Revocation,
    Rotation,
    SignedRecord,
    Statement,
    Withdrawal,
    add_signature,
    encode_body,
    parse_body,
    parse_record,
    sign_record,
    signatory_id,
    verify_signatures,
)
from ledger.core.unicode import category_class

ORIGIN = "ledger.example.org/test"
T = 1767225600


class Signer:
    def __init__(self, label: str) -> None:
        self.priv = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(label.encode()).digest())
        self.pub = self.priv.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.id = hashlib.sha256(self.pub).digest()

    def sign(self, msg: bytes) -> bytes:
        return self.priv.sign(msg)


A, B, C = Signer("test key a"), Signer("test key b"), Signer("test key c")
STMT_ID = hashlib.sha256(b"some statement").digest()


def reg(**kw: object) -> Registration:
    fields: dict[str, object] = {
        "log": ORIGIN,
        "signed_at": T,
        "key": A.pub,
        "name": "Alice Example",
        "kind": Kind.INDIVIDUAL,
    }
    fields.update(kw)
    return Registration(**fields)  # type: ignore[arg-type]


def stmt(**kw: object) -> Statement:
    fields: dict[str, object] = {
        "log": ORIGIN,
        "signed_at": T,
        "title": "A title",
        "authors": (A.id, B.id),
        "text": "Line one.\n\tIndented line two.\n",
    }
    fields.update(kw)
    return Statement(**fields)  # type: ignore[arg-type]


def signed(body: Body, *signers: Signer) -> SignedRecord:
    record = SignedRecord(body, encode_body(body))
    for s in signers:
        record = sign_record(record, s.sign, s.pub)
    return record


# --- Hypothesis strategies of valid bodies -------------------------------------------------

# Characters a text may hold: assigned in Unicode 14.0.0 (the spec's pinned version) and
# not of a control class there, whatever the Unicode version of this Python.
_NOT_CONTROL = st.characters(blacklist_categories=("Cc", "Cf", "Zl", "Zp", "Cs", "Cn")).filter(
    lambda c: category_class(c) not in ("control", "unassigned")
)


def _one_line(max_bytes: int) -> st.SearchStrategy[str]:
    def ok(s: str) -> bool:
        return (
            bool(s)
            and category_class(s[0]) != "space"
            and category_class(s[-1]) != "space"
            and len(s.encode()) <= max_bytes
        )

    return (
        st.text(_NOT_CONTROL, min_size=1, max_size=min(max_bytes, 60))
        .map(lambda s: unicodedata.normalize("NFC", s))
        .filter(ok)
    )


ids = st.binary(min_size=32, max_size=32)
keys = st.binary(min_size=32, max_size=32)
logs = st.from_regex(r"[\x21-\x2a\x2c-\x7e]{1,40}", fullmatch=True)
times = st.integers(min_value=0, max_value=2**63 - 1)
labels = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
domains = st.lists(labels, min_size=2, max_size=4).map(".".join)
countries = st.from_regex(r"[A-Z]{2}", fullmatch=True)
long_texts = (
    st.text(_NOT_CONTROL | st.sampled_from("\n\t"), min_size=1, max_size=300)
    .map(lambda s: unicodedata.normalize("NFC", s))
    .filter(bool)
)

bodies: st.SearchStrategy[Body] = st.one_of(
    st.builds(
        Registration,
        log=logs,
        signed_at=times,
        key=keys,
        name=_one_line(200),
        kind=st.sampled_from(Kind),
        country=st.none() | countries,
        domain=st.none() | domains,
    ),
    st.builds(
        Statement,
        log=logs,
        signed_at=times,
        title=_one_line(200),
        authors=st.lists(ids, min_size=1, max_size=MAX_AUTHORS, unique=True).map(tuple),
        text=long_texts,
    ),
    st.builds(
        Endorsement,
        log=logs,
        signed_at=times,
        signatory=ids,
        statement=ids,
        comment=st.none() | _one_line(1000),
    ),
    st.builds(Withdrawal, log=logs, signed_at=times, signatory=ids, statement=ids),
    st.builds(Rotation, log=logs, signed_at=times, signatory=ids, new_key=keys),
    st.builds(
        Revocation,
        log=logs,
        signed_at=times,
        signatory=ids,
        key=keys,
        reason=st.none() | _one_line(1000),
    ),
)


@given(bodies)
def test_every_valid_body_round_trips(body: Body) -> None:
    data = encode_body(body)
    assert parse_body(data) == body
    assert encode_body(parse_body(data)) == data


@given(bodies, st.data())
def test_records_with_any_signature_bytes_round_trip(body: Body, data: st.DataObject) -> None:
    n = SignedRecord(body, encode_body(body)).required_signatures
    sigs = data.draw(
        st.lists(
            st.builds(RecordSignature, keys, st.binary(min_size=64, max_size=64)),
            min_size=n,
            max_size=n,
        )
    )
    record = SignedRecord(body, encode_body(body), tuple(sigs))
    parsed = parse_record(record.encode())
    assert parsed == record
    assert parsed.encode() == record.encode()
    assert parsed.record_id == hashlib.sha256(encode_body(body)).digest()


@settings(max_examples=300)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_raise_only_format_error(data: bytes) -> None:
    for parse in (parse_body, parse_record):
        with contextlib.suppress(FormatError):
            parse(data)


@settings(max_examples=300)
@given(bodies, st.data())
def test_edited_records_raise_only_format_error(body: Body, data: st.DataObject) -> None:
    """Random edits of a valid record either still parse (canonically) or raise FormatError."""
    record = SignedRecord(body, encode_body(body))
    raw = bytearray(record.encode())
    for _ in range(data.draw(st.integers(1, 3))):
        pos = data.draw(st.integers(0, len(raw)))
        op = data.draw(st.sampled_from(["insert", "delete", "replace"]))
        byte = data.draw(st.sampled_from(b" \n\r\t0aA+/=\x00\x80\xff"))
        if op == "insert":
            raw[pos:pos] = bytes([byte])
        elif pos < len(raw):
            raw[pos : pos + 1] = b"" if op == "delete" else bytes([byte])
    try:
        parsed = parse_record(bytes(raw), allow_draft=True)
    except FormatError:
        return
    assert parsed.encode() == bytes(raw)


# --- canonical text -------------------------------------------------------------------------


def test_registration_bytes_are_exactly_as_specified() -> None:
    body = reg(country="NL", domain="example.org")
    assert encode_body(body) == (
        b"endorsement-ledger/v1 register\n"
        b"log ledger.example.org/test\n"
        b"signed_at 1767225600\n"
        b"key " + b64encode(A.pub).encode() + b"\n"
        b"name Alice Example\n"
        b"kind individual\n"
        b"country NL\n"
        b"domain example.org\n"
    )


def test_optional_fields_are_omitted_when_absent() -> None:
    data = encode_body(reg(domain="example.org"))
    assert b"country" not in data and data.endswith(b"kind individual\ndomain example.org\n")
    assert encode_body(Endorsement(ORIGIN, T, A.id, STMT_ID)).endswith(
        f"statement {STMT_ID.hex()}\n".encode()
    )


def test_statement_text_is_base64_of_utf8() -> None:
    body = stmt(text="Ünïcödé\n")
    line = encode_body(body).split(b"\n")[-2]
    assert line == b"text " + b64encode("Ünïcödé\n".encode()).encode()


def test_record_id_is_the_hash_of_the_body_whatever_the_signatures() -> None:
    body = Endorsement(ORIGIN, T, A.id, STMT_ID)
    r1 = signed(body, A)
    r2 = SignedRecord(body, r1.body_bytes, (RecordSignature(B.pub, bytes(64)),))
    assert r1.record_id == r2.record_id == hashlib.sha256(r1.body_bytes).digest()
    assert r1.encode() != r2.encode()


def test_signatory_id_is_sha256_of_the_key() -> None:
    assert signatory_id(A.pub) == hashlib.sha256(A.pub).digest()
    with pytest.raises(FormatError):
        signatory_id(A.pub[:31])


# --- rejections -----------------------------------------------------------------------------


def _body_with(old: bytes, new: bytes, body: Body | None = None) -> bytes:
    data = encode_body(body or reg(country="NL", domain="example.org"))
    assert old in data
    return data.replace(old, new, 1)


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        (b"signed_at 1767225600", b"signed_at 01767225600", "signed_at"),
        (b"signed_at 1767225600", b"signed_at 9223372036854775808", "signed_at"),
        (b"kind individual", b"kind Individual", "kind"),
        (b"country NL", b"country NLD", "country"),
        (b"domain example.org", b"domain example", "domain"),
        (b"domain example.org", b"domain -example.org", "domain"),
        (b"domain example.org", b"domain exa_mple.org", "domain"),
        (b"domain example.org", b"domain example..org", "domain"),
        (b"name Alice Example", b"name ", "name"),
        (b"name Alice Example", "name Alice\u200bExample".encode(), "name"),  # Cf
        (b"name Alice Example", "name Alice\u2028Example".encode(), "name"),  # Zl
        (b"name Alice Example", "name Alice Example\u00a0".encode(), "name"),  # Zs at the end
        (b"log ledger.example.org/test", b"log ledger.example.org/te+st", "log"),
        (b"log ledger.example.org/test", b"log ", "log"),
        (b"endorsement-ledger/v1 register", b"endorsement-ledger/v1  register", "header"),
        (b"endorsement-ledger/v1", b"Endorsement-Ledger/v1", "header"),
    ],
)
def test_invalid_values_are_rejected_naming_the_field(old: bytes, new: bytes, field: str) -> None:
    with pytest.raises(FormatError) as e:
        parse_body(_body_with(old, new))
    assert e.value.field == field


def test_optional_field_absent_is_fine_but_misplaced_is_not() -> None:
    assert parse_body(_body_with(b"country NL\n", b"")) == reg(domain="example.org")
    with pytest.raises(FormatError) as e:
        parse_body(
            _body_with(b"country NL\ndomain example.org\n", b"domain example.org\ncountry NL\n")
        )
    assert e.value.field == "country"


@pytest.mark.parametrize(
    ("limit_field", "limit"),
    [("name", 200), ("title", 200), ("comment", 1000), ("reason", 1000)],
)
def test_text_limits_are_in_utf8_bytes(limit_field: str, limit: int) -> None:
    def body(value: str) -> Body:
        if limit_field == "name":
            return reg(name=value)
        if limit_field == "title":
            return stmt(title=value)
        if limit_field == "comment":
            return Endorsement(ORIGIN, T, A.id, STMT_ID, comment=value)
        return Revocation(ORIGIN, T, A.id, A.pub, reason=value)

    fits = "é" * (limit // 2)  # two bytes each
    assert parse_body(encode_body(body(fits))) == body(fits)
    with pytest.raises(TooLargeError) as e:
        encode_body(body(fits + "x"))
    assert e.value.field == limit_field


def test_text_must_be_nfc() -> None:
    with pytest.raises(FormatError) as e:
        encode_body(reg(name="Cafe\u0301"))
    assert e.value.field == "name"
    assert parse_body(encode_body(reg(name="Caf\u00e9"))).name == "Café"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "text",
    ["", "carriage\r\nreturn", "zero\u200dwidth joiner", "bom\ufeff", "nel\u0085", "ls\u2028"],
)
def test_statement_text_rejections(text: str) -> None:
    with pytest.raises(FormatError) as e:
        encode_body(stmt(text=text))
    assert e.value.field == "text"


def test_statement_text_must_be_nfc_and_utf8() -> None:
    with pytest.raises(FormatError):
        encode_body(stmt(text="Cafe\u0301"))
    good = encode_body(stmt())
    bad_utf8 = good.replace(
        b"text " + b64encode(stmt().text.encode()).encode(), b"text " + b64encode(b"\xff").encode()
    )
    with pytest.raises(FormatError) as e:
        parse_body(bad_utf8)
    assert e.value.field == "text"


def test_statement_text_may_hold_tabs_newlines_and_outer_spaces() -> None:
    body = stmt(text=" leading\n\ttab\n\ntrailing \n")
    assert parse_body(encode_body(body)) == body


def test_authors_one_to_sixteen_distinct() -> None:
    many = tuple(hashlib.sha256(bytes([i])).digest() for i in range(MAX_AUTHORS + 1))
    assert parse_body(encode_body(stmt(authors=many[:MAX_AUTHORS]))) == stmt(
        authors=many[:MAX_AUTHORS]
    )
    for authors in [(), many, (A.id, B.id, A.id)]:
        with pytest.raises(FormatError) as e:
            encode_body(stmt(authors=authors))
        assert e.value.field == "author"


def test_domain_length_limits() -> None:
    label63 = "a" * 63
    assert parse_body(encode_body(reg(domain=f"{label63}.org")))
    with pytest.raises(FormatError):
        encode_body(reg(domain=f"{label63}a.org"))
    name253 = ".".join(["a" * 63] * 3 + ["b" * 61])
    assert len(name253) == 253
    assert parse_body(encode_body(reg(domain=name253)))
    with pytest.raises(FormatError):
        encode_body(reg(domain=name253 + "c"))
    assert parse_body(encode_body(reg(domain="xn--caf-dma.example")))


def test_log_origin_limits() -> None:
    assert parse_body(encode_body(reg(log="a" * 255)))
    for bad in ["a" * 256, "a b", "a+b", "ä", ""]:
        with pytest.raises(FormatError) as e:
            encode_body(reg(log=bad))
        assert e.value.field == "log"


@pytest.mark.parametrize(
    "body",
    [
        reg(signed_at=-1),
        reg(signed_at="1767225600"),
        reg(signed_at=True),
        reg(key=A.pub[:31]),
        reg(key="not bytes"),
        reg(name="two\nlines"),
        reg(kind="ngo"),
        reg(country=""),
        stmt(authors=(A.id[:31],)),
        Endorsement(ORIGIN, T, A.id, STMT_ID, comment=""),
        Withdrawal(ORIGIN, T, A.id, None),  # type: ignore[arg-type]
    ],
)
def test_encode_body_refuses_invalid_values(body: Body) -> None:
    with pytest.raises(FormatError):
        encode_body(body)


def test_keys_unknown_repeated_misordered_missing() -> None:
    cases = {
        b"kind individual\n": (b"kind individual\nextra x\n", "extra"),
        b"name Alice Example\n": (b"name Alice Example\nname Alice Example\n", "name"),
        b"log ledger.example.org/test\nsigned_at 1767225600\n": (
            b"signed_at 1767225600\nlog ledger.example.org/test\n",
            "signed_at",
        ),
        b"signed_at 1767225600\n": (b"", "signed_at"),
    }
    for old, (new, field) in cases.items():
        with pytest.raises(FormatError) as e:
            parse_body(_body_with(old, new))
        assert e.value.field == field, (old, new)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\n",
        b"endorsement-ledger/v1 register",
        b"endorsement-ledger/v1 entry\n",
        b"endorsement-ledger/v1 withdraw\n",
        b"endorsement-ledger/v1 withdraw\nlog\n",
    ],
)
def test_degenerate_bodies(data: bytes) -> None:
    with pytest.raises(FormatError):
        parse_body(data)


# --- records, drafts and signatures ------------------------------------------------------


def test_signed_record_layout() -> None:
    record = signed(Endorsement(ORIGIN, T, A.id, STMT_ID), A)
    sig = record.signatures[0]
    assert record.encode() == record.body_bytes + b"\n" + (
        f"sig {b64encode(A.pub)} {b64encode(sig.signature)}\n".encode()
    )
    verify_signatures(record)


@pytest.mark.parametrize(
    ("body", "signers"),
    [
        (reg(), (A,)),
        (stmt(), (A, B)),
        (Endorsement(ORIGIN, T, A.id, STMT_ID, comment="Yes."), (A,)),
        (Withdrawal(ORIGIN, T, A.id, STMT_ID), (A,)),
        (Rotation(ORIGIN, T, A.id, B.pub), (A, B)),
        (Revocation(ORIGIN, T, A.id, A.pub, reason="Lost."), (A,)),
        (Revocation(ORIGIN, T, A.id, A.pub), (C,)),  # by the successor key
    ],
)
def test_every_type_signs_parses_and_verifies(body: Body, signers: tuple[Signer, ...]) -> None:
    record = signed(body, *signers)
    assert record.required_signatures == len(signers)
    parsed = parse_record(record.encode())
    assert parsed == record
    verify_signatures(parsed)


def test_drafts() -> None:
    body = stmt()
    draft = SignedRecord(body, encode_body(body))
    assert draft.encode() == draft.body_bytes + b"\n"
    assert draft.is_draft
    for n, record in enumerate([draft, sign_record(draft, A.sign, A.pub)]):
        data = record.encode()
        assert parse_record(data, allow_draft=True) == record
        with pytest.raises(FormatError) as e:
            parse_record(data)
        assert e.value.field == "sig" and e.value.found == n
        with pytest.raises(SignatureError):
            verify_signatures(record)
    complete = sign_record(sign_record(draft, A.sign, A.pub), B.sign, B.pub)
    assert not complete.is_draft
    assert parse_record(complete.encode(), allow_draft=True) == complete
    with pytest.raises(FormatError):
        add_signature(complete, C.pub, C.sign(complete.body_bytes))
    too_many = SignedRecord(
        body, complete.body_bytes, (*complete.signatures, RecordSignature(C.pub, bytes(64)))
    )
    for allow in (False, True):
        with pytest.raises(FormatError):
            parse_record(too_many.encode(), allow_draft=allow)


def test_body_alone_is_not_a_record() -> None:
    with pytest.raises(FormatError):
        parse_record(encode_body(reg()))


def test_sign_record_refuses_a_mismatched_key() -> None:
    with pytest.raises(SignatureError):
        sign_record(reg(), A.sign, B.pub)


def test_add_signature_checks_lengths() -> None:
    draft = SignedRecord(reg(), encode_body(reg()))
    with pytest.raises(FormatError):
        add_signature(draft, A.pub[:31], bytes(64))
    with pytest.raises(FormatError):
        add_signature(draft, A.pub, bytes(63))


@pytest.mark.parametrize(
    ("body", "signers", "code"),
    [
        (reg(), (B,), "wrong_signer"),  # registration signed by another key
        (Rotation(ORIGIN, T, A.id, B.pub), (A, C), "wrong_signer"),
        (stmt(), (A, A), None),  # one key twice
    ],
)
def test_structural_signer_rules(body: Body, signers: tuple[Signer, ...], code: str | None) -> None:
    record = SignedRecord(
        body,
        encode_body(body),
        tuple(RecordSignature(s.pub, s.sign(encode_body(body))) for s in signers),
    )
    with pytest.raises(SignatureError) as e:
        verify_signatures(parse_record(record.encode()))
    if code:
        assert e.value.code == code


def test_signature_over_another_body_fails() -> None:
    record = signed(Endorsement(ORIGIN, T, A.id, STMT_ID), A)
    other = Withdrawal(ORIGIN, T, A.id, STMT_ID)
    forged = SignedRecord(other, encode_body(other), record.signatures)
    with pytest.raises(SignatureError):
        verify_signatures(forged)


def test_record_size_limit() -> None:
    record = signed(stmt(text="x"), A, B)
    room = MAX_RECORD_SIZE - len(record.encode())
    # Base64 grows in steps of 4 characters per 3 bytes: fill the room exactly by
    # also padding the title (at most 200 bytes).
    n_text = 1 + (room // 4) * 3
    title_pad = room % 4
    exact = signed(stmt(text="x" * n_text, title="A title" + "!" * title_pad), A, B)
    assert len(exact.encode()) == MAX_RECORD_SIZE
    assert parse_record(exact.encode()) == exact
    big = stmt(text="x" * n_text, title="A title" + "!" * (title_pad + 1))
    with pytest.raises(TooLargeError) as e:
        signed(big, A, B)  # the second signature would push it over
    assert e.value.code == "entry_too_large"
    over = SignedRecord(big, encode_body(big), exact.signatures)
    assert len(over.encode()) == MAX_RECORD_SIZE + 1
    with pytest.raises(TooLargeError) as e:
        parse_record(over.encode())
    assert e.value.code == "entry_too_large"
    with pytest.raises(TooLargeError):
        encode_body(stmt(text="x" * MAX_RECORD_SIZE))


def test_bodies_are_frozen_values() -> None:
    body = reg()
    with pytest.raises(AttributeError):
        body.name = "Mallory"  # type: ignore[misc]
    assert replace(body, name="Bob") != body
    assert Statement(ORIGIN, T, "t", [A.id], "x") == Statement(ORIGIN, T, "t", (A.id,), "x")  # type: ignore[arg-type]


def test_doctests() -> None:
    assert doctest.testmod(records, raise_on_error=False).failed == 0
