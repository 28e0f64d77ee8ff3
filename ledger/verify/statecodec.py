"""The body of the ``--state`` file: a :class:`~ledger.core.state.MemoryState`, in binary.

``ledger.verify.statefile`` (format ``endorsement-ledger/verifier-state/v2``) frames
this body with a JSON header and a SHA-256 trailer; docs/spec.md, "Verification
procedure", step 7, says what it is for: resuming the replay where the last run
stopped. The body is little-endian throughout, columns rather than records (so
that tens of thousands of signatories and statements load with ``map`` and
``zip``, not a Python loop each), in this order:

1. the prelude, ``struct`` ``<BQQQ32sIIIIIIQQ``: whether ``max_age_s`` is set (u8)
   and its value (u64); ``size``, ``last_time_ms`` (u64); ``last_leaf_hash`` (32
   bytes); the counts of signatories *s*, statements *t*, signatory keys *k*,
   statement authors *a*, revoked keys *r* and small ids *i* (u32 each); the
   length of the text in bytes and the number of pairs *p* (u64 each);
2. string lengths, u32 each, in characters (0xFFFFFFFF for an absent country or
   domain): the origin, then name, country and domain of each signatory, then
   each statement's title; then the text, those strings' UTF-8 one after another;
3. the signatories, a column each: ids (32 bytes), kinds (u8, the position in
   ``ledger.core.state.KINDS``: this order is part of the format), active (u8,
   0 or 1), log index (u64), number of keys (u32), current key (32 bytes); then
   all their keys (32 bytes each), signatory by signatory, in the order they
   had them;
4. the statements: ids (32 bytes), log index (u64), number of authors (u32), then
   all authors (32-byte signatory ids); then the tallies, one i64 per kind of
   ``KINDS`` per statement;
5. the revoked keys' hashes (32 bytes each); the ids numbered by the pair table,
   in the order of their numbers (32 bytes each);
6. the pair table (``ledger.core.state.PairTable``): *p* keys (u64, strictly
   increasing, ``statement number << 32 | signatory number``), then *p* values
   (u64, ``last signed_at * 2 + active``), copied straight from and into arrays.

:func:`read_raw` checks that the prelude's counts add up to the body's length
before allocating anything large; :func:`decode_raw` then decodes defensively
(every count, range and uniqueness is checked): FormatError on any damage.
"""

from __future__ import annotations

import array
import hashlib
import io
import itertools
import struct
import sys
from collections import Counter
from collections.abc import Callable
from typing import Protocol, TypeAlias, cast

from ledger.core.errors import FormatError
from ledger.core.state import KINDS, MemoryState, PairTable, SignatoryRecord, StatementRecord

_U32 = "I" if array.array("I").itemsize == 4 else "L"  # an array typecode of 4 bytes
_NONE = 0xFFFFFFFF  # the length of an absent string (country, domain)
_PRELUDE = struct.Struct("<BQQQ32sIIIIIIQQ")
RawBody: TypeAlias = "tuple[bytes, array.array[int], array.array[int]]"


def _little(column: bytes | array.array[int]) -> bytes | array.array[int]:
    """A column as little-endian bytes-like (a byteswapped copy on big-endian hosts)."""
    if isinstance(column, bytes) or sys.byteorder == "little":
        return column
    copy = array.array(column.typecode, column)  # pragma: no cover
    copy.byteswap()  # pragma: no cover
    return copy  # pragma: no cover


def _little_view(arr: array.array[int]) -> memoryview:
    return memoryview(_little(arr)).cast("B")


class Reader(Protocol):
    """A binary file open for reading (``open(path, "rb")``, ``io.BytesIO``)."""

    def read(self, n: int = -1, /) -> bytes: ...

    def readinto(self, buffer: memoryview, /) -> int: ...


def _read_exactly(f: Reader, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise FormatError("saved state is truncated", field="state", expected=n, found=len(data))
    return data


def _read_array(
    f: Reader, n: int, update: Callable[[memoryview], object] | None
) -> array.array[int]:
    """``n`` uint64 read from ``f`` straight into an array (no intermediate bytes)."""
    arr = array.array("Q", [0]) * n
    view = memoryview(arr).cast("B")
    done = 0
    while done < len(view):
        got = f.readinto(view[done:])
        if not got:
            raise FormatError("saved state is truncated", field="state", found=done)
        done += got
    if update is not None:
        update(view)
    return arr


def chunks(st: MemoryState) -> list[memoryview]:
    """The body of ``st`` (:func:`encode`) as pieces to write in order.

    The pair arrays are not copied (on little-endian hosts): they are the last two
    pieces, views of the table's own arrays. ``sum(c.nbytes ...)`` is the length.
    """
    sigs = list(st.signatories.values())
    stmts = list(st.statements.values())
    strings: list[str | None] = [st.origin]
    for s in sigs:
        strings += (s.name, s.country, s.domain)
    strings += [stmt.title for stmt in stmts]
    lengths = array.array(_U32, [_NONE if x is None else len(x) for x in strings])
    text = "".join([x for x in strings if x is not None]).encode("utf-8")
    kind_no = {k: i for i, k in enumerate(KINDS)}
    try:
        sig_kinds = bytes([kind_no[s.kind] for s in sigs])
    except KeyError as e:
        raise ValueError(f"not a signatory kind: {e}") from None
    if not set().union(*(stmt.tallies for stmt in stmts)) <= kind_no.keys():
        raise ValueError("a tally is not of a signatory kind")
    keys = [k for s in sigs for k in s.keys]
    authors = [a for stmt in stmts for a in stmt.authors]
    revoked = [kh for kh, k in st._keys.items() if k[2]]
    pair_keys, pair_values = st._pairs.arrays()
    prelude = _PRELUDE.pack(
        int(st.max_age_s is not None),
        st.max_age_s or 0,
        st.size,
        st.last_time_ms,
        st.last_leaf_hash,
        len(sigs),
        len(stmts),
        len(keys),
        len(authors),
        len(revoked),
        len(st._ids),
        len(text),
        len(pair_keys),
    )
    columns: list[bytes | array.array[int]] = [
        prelude,
        lengths,
        text,
        b"".join([s.signatory for s in sigs]),
        sig_kinds,
        bytes([s.active for s in sigs]),
        array.array("Q", [s.index for s in sigs]),
        array.array(_U32, [len(s.keys) for s in sigs]),
        b"".join([s.current_key for s in sigs]),
        b"".join(keys),
        b"".join([stmt.statement for stmt in stmts]),
        array.array("Q", [stmt.index for stmt in stmts]),
        array.array(_U32, [len(stmt.authors) for stmt in stmts]),
        b"".join(authors),
        array.array("q", [stmt.tallies.get(k, 0) for stmt in stmts for k in KINDS]),
        b"".join(revoked),
        b"".join(st._ids),
    ]
    head = b"".join(_little(c) for c in columns)
    return [memoryview(head), _little_view(pair_keys), _little_view(pair_values)]


def encode(st: MemoryState) -> bytes:
    """The body of ``st`` as bytes; :func:`decode` restores it."""
    return b"".join(chunks(st))


def decode(data: bytes | bytearray | memoryview) -> MemoryState:
    """Restore what :func:`encode` saved; raise FormatError if it is not one."""
    view = memoryview(data).cast("B")
    return decode_raw(read_raw(io.BytesIO(view), view.nbytes))


def read_raw(
    f: Reader, length: int, update: Callable[[memoryview], object] | None = None
) -> RawBody:
    """Read the ``length`` bytes of a saved state from ``f`` without decoding them.

    Only the prelude is looked at: its counts must add up to exactly ``length``
    (FormatError otherwise, before anything large is allocated). The pair arrays
    are read straight into arrays. ``update`` sees every byte read (a hash's
    ``update``): check it before :func:`decode_raw` decodes the rest.
    """
    if length < _PRELUDE.size:
        raise FormatError("saved state is truncated", field="state", found=length)
    prelude = _read_exactly(f, _PRELUDE.size)
    counts = _PRELUDE.unpack(prelude)
    s, t, k, a, r, i, text, p = counts[5:]
    records = (
        _PRELUDE.size
        + 4 * (1 + 3 * s + t)
        + text
        + s * (32 + 1 + 1 + 8 + 4 + 32)
        + 32 * k
        + t * (32 + 8 + 4 + 8 * len(KINDS))
        + 32 * a
        + 32 * r
        + 32 * i
    )
    if records + 16 * p != length:
        raise FormatError(
            "saved state's counts do not add up to its length",
            field="state",
            expected=length,
            found=records + 16 * p,
        )
    if update is not None:
        update(memoryview(prelude))
    rest = _read_exactly(f, records - _PRELUDE.size)
    if update is not None:
        update(memoryview(rest))
    pair_keys, pair_values = _read_array(f, p, update), _read_array(f, p, update)
    return prelude + rest, pair_keys, pair_values


def decode_raw(raw: RawBody) -> MemoryState:
    """Decode what :func:`read_raw` read; raise FormatError if it does not fit."""
    records, pair_keys, pair_values = raw
    try:
        return _decode(records, pair_keys, pair_values)
    except FormatError:
        raise
    except (IndexError, KeyError, TypeError, ValueError, OverflowError) as e:
        raise FormatError(f"not a saved replay state: {e!r}", field="state") from None


def _decode(
    records: bytes, pair_keys: array.array[int], pair_values: array.array[int]
) -> MemoryState:
    has_age, age, size, last_time_ms, last_leaf_hash, *counts = _PRELUDE.unpack_from(records)
    s, t, k, a, r, i, text_len, _ = counts
    pos = _PRELUDE.size

    def take(n: int) -> bytes:
        nonlocal pos
        pos += n
        return records[pos - n : pos]

    def ints(code: str, n: int) -> array.array[int]:
        out = array.array(code)
        out.frombytes(take(n * out.itemsize))
        if sys.byteorder != "little":  # pragma: no cover - the file is little-endian
            out.byteswap()
        return out

    def ids(n: int) -> list[bytes]:
        raw = take(32 * n)
        return [raw[j : j + 32] for j in range(0, len(raw), 32)]

    def flags(n: int, field: str, limit: int) -> bytes:
        raw = take(n)
        if raw and max(raw) >= limit:
            raise FormatError("value out of range", field=field, found=max(raw))
        return raw

    if has_age not in (0, 1):
        raise FormatError("bad max_age_s flag", field="max_age_s", found=has_age)
    lengths = ints(_U32, 1 + 3 * s + t)
    try:
        text = take(text_len).decode("utf-8")
    except UnicodeDecodeError as e:
        raise FormatError(f"text is not UTF-8: {e}", field="strings") from None
    strings: list[str | None] = []
    at = 0
    for n in lengths:
        if n == _NONE:
            strings.append(None)
        else:
            strings.append(text[at : at + n])
            at += n
    if at != len(text):
        raise FormatError(
            "string lengths do not add up", field="strings", expected=len(text), found=at
        )
    origin, names, countries, domains = strings[0], strings[1::3], strings[2::3], strings[3::3]
    titles = strings[1 + 3 * s :]
    names, countries, domains = names[:s], countries[:s], domains[:s]
    if origin is None or None in names or None in titles:
        raise FormatError("a required string is missing", field="strings")
    names_, titles_ = cast("list[str]", names), cast("list[str]", titles)
    st = MemoryState(origin, max_age_s=age if has_age else None)
    st.size, st.last_time_ms, st.last_leaf_hash = size, last_time_ms, last_leaf_hash

    sig_ids = ids(s)
    sig_kinds = flags(s, "signatories", len(KINDS))
    sig_active = flags(s, "signatories", 2)
    sig_index = ints("Q", s)
    key_counts = ints(_U32, s)
    current = ids(s)
    all_keys = ids(k)
    if sum(key_counts) != k:
        raise FormatError("key counts do not add up", field="signatories")
    # Column by column, with map() and zip() rather than a loop: tens of
    # thousands of records, a microsecond each.
    bounds = list(itertools.accumulate(key_counts, initial=0))
    own_keys = list(map(all_keys.__getitem__, map(slice, bounds, bounds[1:])))
    sig_records = map(
        SignatoryRecord,
        sig_ids,
        names_,
        map(KINDS.__getitem__, sig_kinds),
        countries,
        domains,
        sig_index,
        current,
        map(bool, sig_active),
        own_keys,
    )
    signatories = st.signatories
    signatories.update(zip(sig_ids, sig_records, strict=True))
    owners = itertools.chain.from_iterable(map(itertools.repeat, sig_ids, key_counts))
    # key_hash() without its length check: these keys are 32 bytes
    hashes = [hashlib.sha256(key).digest() for key in all_keys]
    keys_map = st._keys
    keys_map.update(zip(hashes, zip(owners, all_keys, itertools.repeat(False)), strict=True))
    if len(signatories) != s:
        raise FormatError("a signatory is saved twice", field="signatories")

    stmt_ids = ids(t)
    stmt_index = ints("Q", t)
    author_counts = ints(_U32, t)
    all_authors = ids(a)
    values = ints("q", len(KINDS) * t).tolist()
    rows = zip(*[iter(values)] * len(KINDS), strict=True)
    if sum(author_counts) != a:
        raise FormatError("author counts do not add up", field="statements")
    bounds = list(itertools.accumulate(author_counts, initial=0))
    authors = map(tuple, map(all_authors.__getitem__, map(slice, bounds, bounds[1:])))
    # Counter(mapping) runs Python code; a Counter is a dict with methods
    tallies: list[Counter[str]] = list(map(Counter.__new__, itertools.repeat(Counter, t)))
    for counter, row in zip(tallies, rows, strict=True):  # a tally holds no zeros
        dict.update(counter, {kind: v for kind, v in zip(KINDS, row, strict=True) if v})
    stmt_records = map(StatementRecord, stmt_ids, titles_, authors, stmt_index, tallies)
    statements = st.statements
    statements.update(zip(stmt_ids, stmt_records, strict=True))
    if len(statements) != t:
        raise FormatError("a statement is saved twice", field="statements")

    for h in ids(r):
        revoked = keys_map.get(h)
        if revoked is None:
            raise FormatError("a revoked key is not a signatory's", field="revoked_keys")
        keys_map[h] = (revoked[0], revoked[1], True)
    small = ids(i)
    st._ids = dict(zip(small, range(i), strict=True))
    if len(st._ids) != i:
        raise FormatError("an id is saved twice", field="ids")
    if pos != len(records):  # pragma: no cover - read_raw checked the counts
        raise FormatError("saved state has extra bytes", field="state")
    st._pairs = PairTable.from_saved(pair_keys, pair_values)
    if len(st._pairs) and pair_keys[-1] >> 32 >= i:
        raise FormatError("a pair names an unknown statement", field="pair_keys")
    return st


__all__ = ["RawBody", "Reader", "chunks", "decode", "decode_raw", "encode", "read_raw"]
