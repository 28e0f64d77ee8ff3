"""The fast paths of parse_record and parse_entry agree with the strict parsers.

``ledger.core.records.parse_complete_record_fast`` (and the header fast path of
``ledger.core.entry.parse_entry``) must accept nothing that the strict parsers reject,
and must return exactly what they return. These tests check that on every record
type of a generated log, on the spec's vectors, and on Hypothesis' records built
from near-valid values (numbers around 2**63, non-canonical base64 and hex, texts
with outer spaces, too long or not ASCII, missing, repeated or extra lines, wrong
signature counts). Mutations of valid examples are compared in
tests/test_fuzz_parsers.py.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from logfactory import LogFactory

from ledger.core.entry import parse_entry, parse_entry_strict
from ledger.core.errors import LedgerError
from ledger.core.records import (
    MAX_COMMENT,
    MAX_NAME,
    SignedRecord,
    parse_complete_record_fast,
    parse_record,
    parse_record_strict,
)

VECTORS = Path(__file__).parent / "vectors" / "records"


def _same(a: SignedRecord, b: SignedRecord) -> None:
    assert a == b
    assert type(a.body) is type(b.body)
    assert a.body_bytes == b.body_bytes
    assert a.record_id == b.record_id
    assert a.signatures == b.signatures


def _agree(data: bytes) -> bool:
    """Compare the fast path with the strict parser on ``data``; True if it took it."""
    fast = parse_complete_record_fast(data)
    if fast is None:
        return False
    _same(fast, parse_record_strict(data))  # must not raise: the fast path accepted it
    assert fast.encode() == data
    return True


def test_every_record_type_of_a_log_takes_the_fast_path() -> None:
    f = LogFactory(seed="fast path")
    f.grow(600)
    taken: Counter[str] = Counter()
    for data in f.entries:
        entry, strict = parse_entry(data), parse_entry_strict(data)
        assert (entry.index, entry.prev, entry.time_ms) == (
            strict.index,
            strict.prev,
            strict.time_ms,
        )
        _same(entry.record, strict.record)
        record = data[data.index(b"\n\n") + 2 :]
        assert _agree(record), record
        taken[entry.record.body.TYPE] += 1
    assert set(taken) == {"register", "statement", "endorse", "withdraw", "rotate", "revoke"}


def test_spec_vectors_agree() -> None:
    for path in sorted(VECTORS.glob("*.txt")):
        data = path.read_bytes()
        if b"\n\nsig " in data:
            _agree(data)
    examples = json.loads((VECTORS / "examples.json").read_text())
    for e in examples["log"]:
        data = base64.b64decode(e["entry_b64"])
        assert parse_entry(data) == parse_entry_strict(data)


def test_drafts_and_non_ascii_go_to_the_strict_parser() -> None:
    f = LogFactory(seed="fast path drafts")
    f.register(name="Élysée")  # non-ASCII name: the strict parser's case
    data = f.entries[-1]
    record = data[data.index(b"\n\n") + 2 :]
    assert parse_complete_record_fast(record) is None
    assert parse_record(record).body == parse_record_strict(record).body
    draft = record[: record.index(b"\n\n") + 2]  # no signature line: a draft
    assert parse_complete_record_fast(draft) is None
    assert parse_record(draft, allow_draft=True).signatures == ()
    with pytest.raises(LedgerError):
        parse_record(draft)


# --- generated records -----------------------------------------------------------------

_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _mostly(valid: st.SearchStrategy[str], *edges: str) -> st.SearchStrategy[str]:
    """``valid`` about four times in five, else one of the ``edges``."""
    return st.integers(0, 4).flatmap(lambda n: st.sampled_from(edges) if n == 0 else valid)


@st.composite
def _b64(draw: st.DrawFn, size: int) -> str:
    s = base64.b64encode(draw(st.binary(min_size=size, max_size=size))).decode()
    edit = draw(st.integers(0, 15))
    if edit == 1:  # a non-canonical last character (non-zero padding bits), or a valid one
        i = len(s.rstrip("=")) - 1
        s = s[:i] + draw(st.sampled_from(_B64)) + s[i + 1 :]
    elif edit == 2:  # wrong padding or length
        s = draw(st.sampled_from([s.rstrip("="), s + "=", s[1:], "A" + s]))
    return s


_UINT = _mostly(
    st.integers(0, 2**63 - 1).map(str),
    *["0", "00", "01", "-1", "+1", "1_0", str(2**63 - 1), str(2**63), "9" * 19, "1" * 20],
)
_HEX = _mostly(
    st.binary(min_size=32, max_size=32).map(bytes.hex),
    "A" * 64,
    "a" * 63,
    "a" * 65,
    "g" * 64,
)
_PRINTABLE = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
_TEXT = _mostly(
    st.text(_PRINTABLE, min_size=1, max_size=40).filter(lambda s: s.strip(" ") == s),
    *[" lead", "trail ", "", "x" * MAX_NAME, "x" * (MAX_NAME + 1)],
    *["y" * MAX_COMMENT, "y" * (MAX_COMMENT + 1), "tab\there", "é"],
)
_LOG = "ledger.example.org/test"
_TYPES = {
    "register": [
        ("log", _mostly(st.just(_LOG), "a+b", "x" * 256, "a b")),
        ("signed_at", _UINT),
        ("key", _b64(32)),
        ("name", _TEXT),
        ("kind", _mostly(st.sampled_from(["state", "company", "other"]), "State", "x")),
        ("country", _mostly(st.just("FR"), "fr", "F", "FRA", "")),
        ("domain", _mostly(st.just("example.org"), "a.b", "Example.org", "org", "-a.org")),
    ],
    "statement": [
        ("log", st.just(_LOG)),
        ("signed_at", _UINT),
        ("title", _TEXT),
        ("author", _HEX),
        ("text", _mostly(_b64(12), "", "AAAA", "////", "wA==", "4pyTAA==")),
    ],
    "endorse": [
        ("log", st.just(_LOG)),
        ("signed_at", _UINT),
        ("signatory", _HEX),
        ("statement", _HEX),
        ("comment", _TEXT),
    ],
    "withdraw": [("log", st.just(_LOG)), ("signed_at", _UINT), ("signatory", _HEX)],
    "rotate": [("log", st.just(_LOG)), ("signed_at", _UINT), ("new_key", _b64(32))],
    "revoke": [("log", st.just(_LOG)), ("signed_at", _UINT), ("key", _b64(32)), ("reason", _TEXT)],
}
_TYPES["withdraw"].append(("statement", _HEX))
_TYPES["rotate"].insert(2, ("signatory", _HEX))
_TYPES["revoke"].insert(2, ("signatory", _HEX))
_OPTIONAL = {"country", "domain", "comment", "reason"}


@st.composite
def records(draw: st.DrawFn) -> bytes:
    """A record of every type from near-valid values; lines sometimes left out or doubled."""
    type_ = draw(st.sampled_from(sorted(_TYPES)))
    lines = [f"endorsement-ledger/v1 {type_}"]
    authors = 0
    for key, values in _TYPES[type_]:
        counts = [1] * 8 + [2, 0 if key in _OPTIONAL else 1, 0]
        repeat = draw(st.sampled_from(counts + ([3, 16, 17] if key == "author" else [])))
        if key == "author":
            authors = repeat
            if repeat == 3 and draw(st.booleans()):
                author = draw(values)
                lines += [f"author {author}"] * 2
                continue
        lines += [f"{key} {draw(values)}" for _ in range(repeat)]
    required = {"statement": authors, "rotate": 2}.get(type_, 1)
    sigs = draw(st.sampled_from([required] * 6 + [0, required + 1, max(required - 1, 0)]))
    body = "\n".join(lines) + "\n\n"
    body += "".join(f"sig {draw(_b64(32))} {draw(_b64(64))}\n" for _ in range(sigs))
    return body.encode("utf-8")


@settings(
    max_examples=1500, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow],
)  # fmt: skip
@given(data=records())
def test_generated_records_agree(data: bytes) -> None:
    _agree(data)
    try:
        strict: SignedRecord | None = parse_record_strict(data)
    except LedgerError:
        strict = None
    # Every complete ASCII record the strict parser takes, the fast path takes too (or
    # it would not run where it matters).
    if strict is not None and strict.encode().isascii() and not strict.is_draft:
        assert parse_complete_record_fast(data) is not None
