"""ledger.core.entry: the log entry wrapping a record, its strict parser and size limit."""

from __future__ import annotations

import contextlib
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.core.entry import (
    MAX_ENTRY_SIZE,
    MAX_TIME_MS,
    ZERO_HASH,
    Entry,
    entry_leaf_hash,
    parse_entry,
)
from ledger.core.errors import FormatError, TooLargeError
from ledger.core.records import (
    MAX_RECORD_SIZE,
    Endorsement,
    SignedRecord,
    Statement,
    encode_body,
    sign_record,
)

ORIGIN = "ledger.example.org/test"
T = 1767225600
_PRIV = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"entry test key").digest())
PUB = _PRIV.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
SID = hashlib.sha256(PUB).digest()
STMT_ID = hashlib.sha256(b"a statement").digest()


def endorsement(signed_at: int = T) -> SignedRecord:
    return sign_record(Endorsement(ORIGIN, signed_at, SID, STMT_ID), _PRIV.sign, PUB)


def test_entry_layout_and_round_trip() -> None:
    record = endorsement()
    prev = hashlib.sha256(b"previous").digest()
    entry = Entry(7, prev, 1767225600123, record)
    data = entry.encode()
    assert data == (
        b"endorsement-ledger/v1 entry\nindex 7\nprev "
        + prev.hex().encode()
        + b"\ntime 1767225600123\n\n"
        + record.encode()
    )
    parsed = parse_entry(data)
    assert parsed == entry
    assert parsed.record_bytes == record.encode()
    assert parsed.record.record_id == record.record_id


def test_time_is_at_most_2_to_the_53_minus_1() -> None:
    """So that every verifier, doubles included, holds it exactly (docs/spec.md)."""
    record = endorsement()
    top = Entry(7, ZERO_HASH[:31] + b"\x01", MAX_TIME_MS, record).encode()
    assert parse_entry(top).time_ms == 2**53 - 1
    over = top.replace(b"time 9007199254740991", b"time 9007199254740992")
    with pytest.raises(FormatError, match="2\\^53") as e:
        parse_entry(over)
    assert e.value.field == "time"
    with pytest.raises(FormatError):
        Entry(7, ZERO_HASH, MAX_TIME_MS + 1, record).encode()


def test_leaf_hash_is_rfc9162() -> None:
    data = Entry(0, ZERO_HASH, 0, endorsement()).encode()
    expected = hashlib.sha256(b"\x00" + data).digest()
    assert entry_leaf_hash(data) == expected
    assert parse_entry(data).leaf_hash() == expected


def test_entries_chain_by_prev() -> None:
    e0 = Entry(0, ZERO_HASH, 1000, endorsement(T))
    e1 = Entry(1, e0.leaf_hash(), 2000, endorsement(T + 1))
    assert parse_entry(e1.encode()).prev == entry_leaf_hash(e0.encode())


def test_entry_zero_has_zero_prev() -> None:
    with pytest.raises(FormatError) as e:
        Entry(0, b"\x01" * 32, 0, endorsement()).encode()
    assert e.value.field == "prev"
    data = Entry(1, b"\x01" * 32, 0, endorsement()).encode()
    with pytest.raises(FormatError):
        parse_entry(data.replace(b"index 1\n", b"index 0\n"))


def _big_statement_record(size: int) -> SignedRecord:
    """A complete statement record of exactly ``size`` bytes."""
    base = Statement(ORIGIN, T, "t", (SID,), "x")
    small = sign_record(base, _PRIV.sign, PUB)
    room = size - len(small.encode())
    body = Statement(ORIGIN, T, "t" + "!" * (room % 4), (SID,), "x" * (1 + room // 4 * 3))
    record = SignedRecord(body, encode_body(body), small.signatures)
    assert len(record.encode()) == size
    return record


def test_entry_size_limit_is_65535_bytes() -> None:
    # The largest index (19 digits) and time (16 digits: at most 2^53 - 1) leave the
    # largest record room to spare: any record that parses fits in an entry.
    big = 2**63 - 1
    record = _big_statement_record(MAX_RECORD_SIZE)
    entry = Entry(big, b"\x02" * 32, MAX_TIME_MS, record)
    data = entry.encode()
    assert len(data) == MAX_ENTRY_SIZE - 3
    assert parse_entry(data).index == big

    over = data + b"x" * 4  # bytes past the record, past the entry limit
    assert len(over) == 65536
    with pytest.raises(TooLargeError) as e:
        parse_entry(over)
    assert e.value.code == "entry_too_large"
    with pytest.raises(TooLargeError):
        Entry(big, b"\x02" * 32, MAX_TIME_MS, _big_statement_record(MAX_RECORD_SIZE + 1)).encode()


def test_a_draft_is_not_an_entry() -> None:
    draft = SignedRecord(endorsement().body, endorsement().body_bytes)
    with pytest.raises(FormatError):
        Entry(1, b"\x01" * 32, 0, draft).encode()
    data = Entry(1, b"\x01" * 32, 0, endorsement()).encode()
    with pytest.raises(FormatError) as e:
        parse_entry(data[: data.index(b"\n\nsig ") + 2])
    assert e.value.index == 1


GOOD = Entry(5, b"\x03" * 32, 1767225600123, endorsement()).encode()


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        (b"index 5\n", b"index 05\n", "index"),
        (b"index 5\n", b"index +5\n", "index"),
        (b"index 5\n", b"index 9223372036854775808\n", "index"),
        (b"index 5\n", b"", "index"),
        (b"time 1767225600123\n", b"time 1767225600123.0\n", "time"),
        (b"time 1767225600123\n", b"", "time"),
        (b"prev " + (b"03" * 32), b"prev " + (b"03" * 31), "prev"),
        (b"prev " + (b"03" * 32), b"prev " + (b"0" * 63) + b"G", "prev"),
        (b"endorsement-ledger/v1 entry", b"endorsement-ledger/v2 entry", "header"),
        (b"1767225600123\n\n", b"1767225600123\n", None),
        (b"1767225600123\n\n", b"1767225600123\r\n\r\n", None),
        (b"index 5\nprev", b"prev", None),
    ],
)
def test_malformed_entries(old: bytes, new: bytes, field: str | None) -> None:
    assert old in GOOD
    with pytest.raises(FormatError) as e:
        parse_entry(GOOD.replace(old, new, 1))
    if field is not None:
        assert e.value.field == field


@pytest.mark.parametrize("suffix", [b"x", b"\n", b"\nsig x y\n"])
def test_trailing_bytes_are_rejected(suffix: bytes) -> None:
    with pytest.raises(FormatError) as e:
        parse_entry(GOOD + suffix)
    assert e.value.index == 5


@settings(max_examples=300)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_raise_only_format_error(data: bytes) -> None:
    with contextlib.suppress(FormatError):
        parse_entry(data)


@settings(max_examples=300)
@given(st.data())
def test_edited_entries_raise_only_format_error(data: st.DataObject) -> None:
    raw = bytearray(GOOD)
    for _ in range(data.draw(st.integers(1, 3))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.sampled_from(b" \n\r0aA+/=\x00\x80\xff"))
    try:
        parsed = parse_entry(bytes(raw))
    except FormatError:
        return
    assert parsed.encode() == bytes(raw)


@pytest.mark.parametrize("bad", [-1, 2**63, True])
def test_encode_refuses_out_of_range_numbers(bad: int) -> None:
    with pytest.raises(FormatError):
        Entry(bad, b"\x01" * 32, 0, endorsement()).encode()
    with pytest.raises(FormatError):
        Entry(1, b"\x01" * 32, bad, endorsement()).encode()
