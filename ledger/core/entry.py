"""Log entries: a record as the log sequenced it (docs/spec.md, "The log entry").

When the log sequences a record it wraps it in an entry, and the entry (not the
record) is the Merkle tree leaf::

    endorsement-ledger/v1 entry
    index <n>
    prev <64 lowercase hex: leaf hash of entry n-1; 64 zeros for n = 0>
    time <integration time, unix milliseconds>

    <record bytes>

``prev`` chains each entry to the one before it, so an entry read on its own
(from a receipt, say) still names its place in the log. An entry is at most
65,535 bytes: entry bundles (C2SP tlog-tiles) prefix each entry with a uint16
length. The parser is strict: the header lines come in this order with canonical
numbers, the record inside must be complete and canonical, and the entry must
re-encode to the input bytes.
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass

from ledger.core.encoding import MAX_UINT63, parse_hex32, parse_uint
from ledger.core.errors import FormatError, TooLargeError
from ledger.core.merkle import leaf_hash
from ledger.core.records import (
    MAX_ENTRY_SIZE,
    MAX_RECORD_SIZE,
    VERSION,
    SignedRecord,
    parse_complete_record_fast,
    parse_record,
)

ENTRY_HEADER = f"{VERSION} entry"
#: The ``prev`` of entry 0.
ZERO_HASH = bytes(32)


@dataclass(frozen=True, slots=True)
class Entry:
    """Entry number ``index``, linked to the leaf hash ``prev`` of the one before it."""

    index: int
    prev: bytes
    time_ms: int
    record: SignedRecord

    @property
    def record_bytes(self) -> bytes:
        """The record exactly as it stands in the entry (records are canonical)."""
        return self.record.encode()

    def header(self) -> bytes:
        return (
            f"{ENTRY_HEADER}\nindex {self.index}\nprev {self.prev.hex()}\ntime {self.time_ms}\n\n"
        ).encode("ascii")

    def encode(self) -> bytes:
        """The entry bytes; raise FormatError if a field is out of range."""
        for name, value in (("index", self.index), ("time", self.time_ms)):
            if (
                isinstance(value, bool)
                or not isinstance(value, int)
                or not (0 <= value <= MAX_UINT63)
            ):
                raise FormatError("must be an integer in 0..2**63-1", field=name, found=value)
        if not isinstance(self.prev, bytes) or len(self.prev) != 32:
            raise FormatError("prev must be a 32-byte hash", field="prev")
        if self.index == 0 and self.prev != ZERO_HASH:
            raise FormatError("entry 0 has no predecessor: prev must be zeros", field="prev")
        if self.record.is_draft:
            raise FormatError("a draft cannot be logged", code="missing_signature", field="sig")
        data = self.header() + self.record.encode()
        _check_size(len(data))
        return data

    def leaf_hash(self) -> bytes:
        """The RFC 9162 leaf hash of this entry: the next entry's ``prev``."""
        return leaf_hash(self.encode())


def _check_size(n: int) -> None:
    if n > MAX_ENTRY_SIZE:
        raise TooLargeError(
            f"entry larger than {MAX_ENTRY_SIZE} bytes",
            code="entry_too_large",
            field="entry",
            expected=MAX_ENTRY_SIZE,
            found=n,
        )


# The fast path (see ledger.core.records): a canonical header; the rest is a record for
# parse_complete_record_fast. Anything it does not take goes to the strict parser.
_HEADER = re.compile(
    re.escape(f"{ENTRY_HEADER}\n".encode())
    + rb"index (0|[1-9][0-9]{0,18})\nprev ([0-9a-f]{64})\ntime (0|[1-9][0-9]{0,18})\n\n"
)


def parse_entry(data: bytes) -> Entry:
    """Parse one entry; the record inside must be complete (not a draft)."""
    if type(data) is bytes and len(data) <= MAX_ENTRY_SIZE:
        m = _HEADER.match(data)
        if m is not None:
            index, prev, time_ms = int(m[1]), binascii.a2b_hex(m[2]), int(m[3])
            if index <= MAX_UINT63 and time_ms <= MAX_UINT63 and (index or prev == ZERO_HASH):
                record = parse_complete_record_fast(data[m.end() :])
                if record is not None:
                    return Entry(index, prev, time_ms, record)
    return parse_entry_strict(data)


def parse_entry_strict(data: bytes) -> Entry:
    """:func:`parse_entry` without its fast path: every entry, every error."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise FormatError("entry must be bytes", field="entry")
    data = bytes(data)
    _check_size(len(data))
    parts = data.split(b"\n", 5)
    if len(parts) < 6:
        raise FormatError("entry header is incomplete", field="entry")
    try:
        lines = [p.decode("ascii") for p in parts[:5]]
    except UnicodeDecodeError:
        raise FormatError("entry header is not ASCII", field="entry") from None
    if lines[0] != ENTRY_HEADER:
        raise FormatError(
            "not an entry of this format version",
            field="header",
            expected=ENTRY_HEADER,
            found=lines[0][:100],
        )
    values: list[str] = []
    for line, key in zip(lines[1:4], ("index", "prev", "time"), strict=True):
        k, sep, v = line.partition(" ")
        if k != key or not sep:
            raise FormatError(f"expected the {key!r} line", field=key, found=line[:100])
        values.append(v)
    index = parse_uint(values[0], field="index")
    prev = parse_hex32(values[1], field="prev")
    time_ms = parse_uint(values[2], field="time")
    if lines[4] != "":
        raise FormatError("no empty line after the entry header", field="entry")
    if index == 0 and prev != ZERO_HASH:
        raise FormatError(
            "entry 0 has no predecessor: prev must be zeros", field="prev", index=index
        )
    try:
        record = parse_record(parts[5])
    except FormatError as e:
        if e.index is not None:
            raise
        # The same error, at this entry (the record parser cannot know its index).
        located = TooLargeError if isinstance(e, TooLargeError) else FormatError
        raise located(
            e.message,
            code=e.code,
            index=index,
            field=e.field,
            expected=e.expected,
            found=e.found,
        ) from e
    entry = Entry(index, prev, time_ms, record)
    if entry.header() + parts[5] != data:  # belt and braces: the header is canonical
        raise FormatError("entry is not in canonical form", field="entry", index=index)
    return entry


def entry_leaf_hash(data: bytes) -> bytes:
    """RFC 9162 section 2.1.1 leaf hash of entry bytes: SHA-256(0x00 || data)."""
    return leaf_hash(data)


__all__ = [
    "ENTRY_HEADER",
    "MAX_ENTRY_SIZE",
    "MAX_RECORD_SIZE",
    "ZERO_HASH",
    "Entry",
    "entry_leaf_hash",
    "parse_entry",
    "parse_entry_strict",
]
