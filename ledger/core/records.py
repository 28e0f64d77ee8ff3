"""Signed records: what signatories submit to the log (docs/spec.md, "Records").

A record is UTF-8 text made of lines ending in ``\\n``: a *body*, one empty line,
then one ``sig <public key> <signature>`` line per signature. The body starts with
the header ``endorsement-ledger/v1 <type>`` and goes on with ``key value`` lines in
a fixed order per type. The withdrawal of the spec's example log:

>>> body = Withdrawal(
...     log="ledger.example.org/paris-call",
...     signed_at=1767240000,
...     signatory=bytes.fromhex("1b4262fa20c384c9882264c6d19c93a7ae054f058035fb2e0ee47882e35d2586"),
...     statement=bytes.fromhex("250955a4fe095a3f874b14596c4b86b5824a486e71a6e8a0d6ca2176fdd18b3d"),
... )
>>> print(encode_body(body).decode(), end="")
endorsement-ledger/v1 withdraw
log ledger.example.org/paris-call
signed_at 1767240000
signatory 1b4262fa20c384c9882264c6d19c93a7ae054f058035fb2e0ee47882e35d2586
statement 250955a4fe095a3f874b14596c4b86b5824a486e71a6e8a0d6ca2176fdd18b3d
>>> record_id(encode_body(body)).hex()
'392bc937642fa90359a978b04ba212fa579dca9054a9d7ba478447ca6d74d2c6'
>>> parse_body(encode_body(body)) == body
True

Every signature signs the body bytes exactly, header through the last ``\\n``. The
*record id* is SHA-256 of the body, so resubmitting one signed body always has one
id, whatever the signature bytes.

Parsing is strict and round-trips: every value has one spelling, keys come in the
spec's order, and the parsed record re-encodes to the input bytes or the input is
rejected with a :class:`~ledger.core.errors.FormatError` naming the ``field``.
:func:`verify_signatures` checks the signatures and the key requirements that need
no log state; the rules that need the log's state live in :mod:`ledger.core.rules`.
"""

from __future__ import annotations

import binascii
import dataclasses
import enum
import hashlib
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeAlias

from ledger.core import ed25519
from ledger.core.encoding import MAX_UINT63, b64decode_strict, b64encode, parse_hex32, parse_uint
from ledger.core.errors import FormatError, SignatureError, TooLargeError
from ledger.core.unicode import (
    LINE_FORBIDDEN,
    LONG_FORBIDDEN,
    SPACE,
    UNICODE_VERSION,
    category_class,
)

#: The format version every record header (and entry header) starts with.
VERSION = "endorsement-ledger/v1"

#: Largest log entry: entry bundles prefix each entry with a uint16 length (tlog-tiles).
MAX_ENTRY_SIZE = 65535
#: Largest entry header: ``index`` and ``time`` of 19 digits each (up to 2**63 - 1).
MAX_ENTRY_HEADER_SIZE = len(
    f"{VERSION} entry\nindex {2**63 - 1}\nprev {'0' * 64}\ntime {2**63 - 1}\n\n"
)
#: Largest record: its entry fits in MAX_ENTRY_SIZE whatever its index and time, so a
#: submission can be judged before it is sequenced.
MAX_RECORD_SIZE = MAX_ENTRY_SIZE - MAX_ENTRY_HEADER_SIZE

MAX_AUTHORS = 16
MAX_NAME = 200
MAX_TITLE = 200
MAX_COMMENT = 1000
MAX_REASON = 1000

_LOG = re.compile(r"[\x21-\x2a\x2c-\x7e]{1,255}")  # printable ASCII but space and '+'
_COUNTRY = re.compile(r"[A-Z]{2}")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")
_ASCII_TEXT = re.compile(r"[\t\n\x20-\x7e]*")
_BAD_BYTES = re.compile(rb"[\x00-\x09\x0b-\x1f\x7f]")  # every control byte but \n


class Kind(enum.StrEnum):
    """What kind of signatory a registration declares (counted apart in the tallies)."""

    STATE = "state"
    COMPANY = "company"
    CIVIL_SOCIETY = "civil-society"
    INDIVIDUAL = "individual"
    OTHER = "other"


# --- bodies -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Registration:
    """``register``: a new signatory, identified from now on by SHA-256 of ``key``."""

    TYPE: ClassVar[str] = "register"
    log: str
    signed_at: int
    key: bytes
    name: str
    kind: Kind
    country: str | None = None
    domain: str | None = None


@dataclass(frozen=True, slots=True)
class Statement:
    """``statement``: a text to endorse, signed by each of its 1 to 16 authors."""

    TYPE: ClassVar[str] = "statement"
    log: str
    signed_at: int
    title: str
    authors: tuple[bytes, ...]
    text: str

    def __post_init__(self) -> None:
        # Accept any sequence of ids but compare (and hash) as a tuple.
        object.__setattr__(self, "authors", tuple(self.authors))


@dataclass(frozen=True, slots=True)
class Endorsement:
    """``endorse``: a signatory endorses a statement already in the log."""

    TYPE: ClassVar[str] = "endorse"
    log: str
    signed_at: int
    signatory: bytes
    statement: bytes
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class Withdrawal:
    """``withdraw``: a signatory withdraws its active endorsement of a statement."""

    TYPE: ClassVar[str] = "withdraw"
    log: str
    signed_at: int
    signatory: bytes
    statement: bytes


@dataclass(frozen=True, slots=True)
class Rotation:
    """``rotate``: a signatory replaces its current key by ``new_key``."""

    TYPE: ClassVar[str] = "rotate"
    log: str
    signed_at: int
    signatory: bytes
    new_key: bytes


@dataclass(frozen=True, slots=True)
class Revocation:
    """``revoke``: ``key`` of a signatory is declared compromised."""

    TYPE: ClassVar[str] = "revoke"
    log: str
    signed_at: int
    signatory: bytes
    key: bytes
    reason: str | None = None


Body: TypeAlias = Registration | Statement | Endorsement | Withdrawal | Rotation | Revocation
BODY_TYPES: tuple[type[Body], ...] = (
    Registration,
    Statement,
    Endorsement,
    Withdrawal,
    Rotation,
    Revocation,
)
_BY_TYPE: dict[str, type[Body]] = {cls.TYPE: cls for cls in BODY_TYPES}


# --- value codecs -------------------------------------------------------------------


def _check_text(s: str, *, field: str, max_bytes: int) -> str:
    """A one-line human text: non-empty NFC, no control characters, no outer spaces."""
    if not s:
        raise FormatError("empty text", field=field)
    size = len(s.encode("utf-8"))
    if size > max_bytes:
        raise TooLargeError(
            f"text longer than {max_bytes} bytes", field=field, expected=max_bytes, found=size
        )
    if not (s.isascii() and _PRINTABLE_ASCII.fullmatch(s)):
        _check_repertoire(s, LINE_FORBIDDEN, field)
        if not unicodedata.is_normalized("NFC", s):
            raise FormatError("text is not in Unicode NFC", field=field)
    if SPACE.match(s[0]) or SPACE.match(s[-1]):
        raise FormatError("text begins or ends with a space", field=field)
    return s


def _check_repertoire(s: str, forbidden: re.Pattern[str], field: str) -> None:
    """No character of ``forbidden`` (ledger.core.unicode: Unicode 14.0.0 classes)."""
    bad = forbidden.search(s)
    if bad is not None:
        ch = bad.group()
        what = (
            f"code point unassigned in Unicode {UNICODE_VERSION}"
            if category_class(ch) == "unassigned"
            else "control or format character"
        )
        raise FormatError(f"{what} in text", field=field, found=f"U+{ord(ch):04X}")


def _check_long_text(s: str, *, field: str) -> str:
    """Statement text: non-empty NFC; its only control characters are \\n and \\t."""
    if not s:
        raise FormatError("empty text", field=field)
    if s.isascii() and _ASCII_TEXT.fullmatch(s):
        return s
    _check_repertoire(s, LONG_FORBIDDEN, field)
    if not unicodedata.is_normalized("NFC", s):
        raise FormatError("text is not in Unicode NFC", field=field)
    return s


def _parse_statement_text(s: str, field: str) -> str:
    raw = b64decode_strict(s, field=field)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError("text is not valid UTF-8", field=field) from None
    return _check_long_text(text, field=field)


def _format_statement_text(v: Any) -> str:
    if not isinstance(v, str):
        raise TypeError("text must be str")
    return b64encode(v.encode("utf-8"))


def _parse_log(s: str, field: str) -> str:
    if _LOG.fullmatch(s) is None:
        raise FormatError(
            "log origin must be 1 to 255 printable ASCII characters, no space or '+'",
            field=field,
            found=s[:300],
        )
    return s


def _parse_key(s: str, field: str) -> bytes:
    return b64decode_strict(s, field=field, length=32)


def _format_key(v: Any) -> str:
    if not isinstance(v, bytes):
        raise TypeError("key must be bytes")
    return b64encode(v)


def _format_hex(v: Any) -> str:
    if not isinstance(v, bytes):
        raise TypeError("id must be bytes")
    return v.hex()


def _parse_kind(s: str, field: str) -> Kind:
    try:
        return Kind(s)
    except ValueError:
        raise FormatError(
            "unknown signatory kind", field=field, expected=[k.value for k in Kind], found=s
        ) from None


def _parse_country(s: str, field: str) -> str:
    if _COUNTRY.fullmatch(s) is None:
        raise FormatError("country must be two uppercase ASCII letters", field=field, found=s)
    return s


def _parse_domain(s: str, field: str) -> str:
    labels = s.split(".")
    if len(s) > 253 or len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels):
        raise FormatError(
            "domain must be a lowercase LDH DNS name of at least two labels, no final dot",
            field=field,
            found=s[:300],
        )
    return s


def _format_str(v: Any) -> str:
    if not isinstance(v, str):
        raise TypeError("value must be str")
    return v


def _format_uint(v: Any) -> str:
    if not isinstance(v, int) or isinstance(v, bool):
        raise TypeError("value must be int")
    return str(v)


def _text(max_bytes: int) -> Callable[[str, str], str]:
    return lambda s, field: _check_text(s, field=field, max_bytes=max_bytes)


# Patterns of the fast path (see "the fast path" below): each matches only
# printable-ASCII spellings that the field's strict parser accepts, or a superset that
# the field's ``fast`` converter then checks with that parser.
_P_UINT = rb"0|[1-9][0-9]{0,18}"  # 19 digits at most; the value is checked against 2**63-1
_P_HEX32 = rb"[0-9a-f]{64}"
# Canonical padded base64 of 32 bytes: the 43rd character carries 4 data bits and two
# zero bits; of 64 bytes: the 86th carries 2 data bits and four zero bits.
_P_KEY = rb"[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]="
_P_SIG = rb"[A-Za-z0-9+/]{85}[AQgw]=="
_P_TEXT = rb"[\x20-\x7e]+"  # then the strict text check (length, outer spaces)


def _fast_uint(v: bytes, f: str) -> int:
    n = int(v)
    if n > MAX_UINT63:
        raise FormatError("number too large", field=f)
    return n


def _fast_ascii(v: bytes, f: str) -> str:
    return v.decode("ascii")


@dataclass(frozen=True, slots=True)
class _Field:
    key: str  # the key as written in the record
    attr: str  # the dataclass attribute
    parse: Callable[[str, str], Any]  # (value, field name) -> value; raises FormatError
    format: Callable[[Any], str]
    optional: bool = False
    repeated: bool = False  # 1..MAX_AUTHORS distinct lines (only ``author``)
    pattern: bytes = _P_TEXT  # fast path: what a value may look like (printable ASCII)
    fast: Callable[[bytes, str], Any] | None = None  # fast path: a matched value's parse


def _f(key: str, parse: Callable[[str, str], Any], fmt: Callable[[Any], str], **kw: Any) -> _Field:
    return _Field(key, kw.pop("attr", key), parse, fmt, **kw)


def _hex32_field(key: str, **kw: Any) -> _Field:
    return _f(
        key,
        lambda s, f: parse_hex32(s, field=f),
        _format_hex,
        pattern=_P_HEX32,
        fast=lambda v, f: binascii.a2b_hex(v),
        **kw,
    )


def _key_field(key: str) -> _Field:
    return _f(
        key, _parse_key, _format_key, pattern=_P_KEY, fast=lambda v, f: binascii.a2b_base64(v)
    )


_COMMON = (
    _f("log", _parse_log, _format_str, pattern=_LOG.pattern.encode(), fast=_fast_ascii),
    _f(
        "signed_at",
        lambda s, f: parse_uint(s, field=f),
        _format_uint,
        pattern=_P_UINT,
        fast=_fast_uint,
    ),
)
_SIGNATORY = _hex32_field("signatory")
_STATEMENT_ID = _hex32_field("statement")
_KINDS = {k.value: k for k in Kind}

_FIELDS: dict[str, tuple[_Field, ...]] = {
    "register": (
        *_COMMON,
        _key_field("key"),
        _f("name", _text(MAX_NAME), _format_str),
        _f(
            "kind",
            _parse_kind,
            _format_str,
            pattern=b"|".join(k.encode() for k in _KINDS),
            fast=lambda v, f: _KINDS[v.decode("ascii")],
        ),
        _f("country", _parse_country, _format_str, optional=True, pattern=rb"[A-Z]{2}"),
        _f("domain", _parse_domain, _format_str, optional=True),
    ),
    "statement": (
        *_COMMON,
        _f("title", _text(MAX_TITLE), _format_str),
        _hex32_field("author", attr="authors", repeated=True),
        _f("text", _parse_statement_text, _format_statement_text, pattern=rb"[A-Za-z0-9+/=]+"),
    ),
    "endorse": (
        *_COMMON,
        _SIGNATORY,
        _STATEMENT_ID,
        _f("comment", _text(MAX_COMMENT), _format_str, optional=True),
    ),
    "withdraw": (*_COMMON, _SIGNATORY, _STATEMENT_ID),
    "rotate": (*_COMMON, _SIGNATORY, _key_field("new_key")),
    "revoke": (
        *_COMMON,
        _SIGNATORY,
        _key_field("key"),
        _f("reason", _text(MAX_REASON), _format_str, optional=True),
    ),
}


# --- body encoding and parsing --------------------------------------------------------


def _format_body(body: Body) -> bytes:
    """Write the body's lines without validating them (see encode_body)."""
    lines = [f"{VERSION} {body.TYPE}"]
    for spec in _FIELDS[body.TYPE]:
        value = getattr(body, spec.attr)
        if spec.repeated:
            lines.extend(f"{spec.key} {spec.format(v)}" for v in value)
        elif value is not None or not spec.optional:
            lines.append(f"{spec.key} {spec.format(value)}")
    return ("\n".join(lines) + "\n").encode("utf-8")


def encode_body(body: Body) -> bytes:
    """The canonical bytes of ``body``; raise FormatError if any field is invalid."""
    if not isinstance(body, BODY_TYPES):
        raise FormatError("not a record body", field="header", found=type(body).__name__)
    try:
        data = _format_body(body)
    except (TypeError, ValueError, AttributeError, UnicodeError) as e:
        raise FormatError(f"field has the wrong type: {e}", field="body") from None
    parsed = parse_body(data)  # validates every value and the size
    if parsed != body:
        for f in dataclasses.fields(body):
            if getattr(parsed, f.name) != getattr(body, f.name):
                raise FormatError(
                    "value does not survive encoding (wrong type or non-canonical)",
                    field=f.name,
                    expected=getattr(parsed, f.name),
                    found=getattr(body, f.name),
                )
    return data


def _check_bytes(data: bytes, what: str) -> str:
    """Common checks of a record or body: size, UTF-8, control bytes, final newline."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise FormatError(f"{what} must be bytes", field=what)
    if len(data) > MAX_RECORD_SIZE:
        raise TooLargeError(
            f"{what} larger than {MAX_RECORD_SIZE} bytes: its entry would not fit",
            code="entry_too_large",
            field=what,
            expected=MAX_RECORD_SIZE,
            found=len(data),
        )
    data = bytes(data)
    bad = _BAD_BYTES.search(data)
    if bad is not None:
        what_char = "CR character" if bad.group() == b"\r" else "control character"
        raise FormatError(f"{what_char} at byte {bad.start()}", field=what, found=bad.group())
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FormatError(f"not valid UTF-8 at byte {e.start}", field=what) from None
    if not text.endswith("\n"):
        raise FormatError("missing final newline", field=what)
    return text


def _diagnose(
    key: str, type_: str, seen: set[str], expected: str | None, later: list[str]
) -> FormatError:
    """Name what is wrong with a line whose key is not the one expected there."""
    known = {spec.key for spec in _FIELDS[type_]}
    if key not in known:
        return FormatError(f"unknown key in a {type_!r} record", field=key, expected=expected)
    if key in seen:
        return FormatError("repeated key", field=key)
    if expected is not None and expected not in later:
        return FormatError(f"missing key {expected!r}", field=expected, found=key)
    return FormatError("key out of order", field=key, expected=expected, found=key)


def parse_body(data: bytes) -> Body:
    """Parse the canonical bytes of a record body (header through last newline)."""
    return _parse_body(_check_bytes(data, "body"))


def _parse_body(text: str) -> Body:
    """Parse a body's text, already checked by ``_check_bytes``."""
    lines = text[:-1].split("\n")
    header = lines[0]
    version, _, type_ = header.partition(" ")
    if version != VERSION:
        raise FormatError(
            "unknown format or version", field="header", expected=VERSION, found=header[:100]
        )
    if type_ not in _FIELDS:
        raise FormatError(
            "unknown record type", field="header", expected=sorted(_FIELDS), found=type_[:100]
        )
    values: dict[str, Any] = {}
    seen: set[str] = set()
    pos = 1

    def key_at(i: int) -> tuple[str, str]:
        line = lines[i]
        key, sep, value = line.partition(" ")
        if not sep:
            raise FormatError("line is not 'key value'", field=key[:50] or "body", found=line[:100])
        return key, value

    for spec in _FIELDS[type_]:
        if spec.repeated:
            items: list[Any] = []
            while pos < len(lines):
                key, value = key_at(pos)
                if key != spec.key:
                    break
                item = spec.parse(value, spec.key)
                if item in items:
                    raise FormatError(f"duplicated {spec.key}", field=spec.key, found=value)
                items.append(item)
                pos += 1
            if not items:
                raise FormatError(f"at least one {spec.key} is required", field=spec.key)
            if len(items) > MAX_AUTHORS:
                raise FormatError(
                    f"more than {MAX_AUTHORS} {spec.key} lines",
                    field=spec.key,
                    expected=MAX_AUTHORS,
                    found=len(items),
                )
            values[spec.attr] = tuple(items)
        else:
            key, value = key_at(pos) if pos < len(lines) else ("", "")
            if key == spec.key:
                values[spec.attr] = spec.parse(value, spec.key)
                pos += 1
            elif spec.optional:
                values[spec.attr] = None
                continue
            elif pos >= len(lines):
                raise FormatError(f"missing key {spec.key!r}", field=spec.key)
            else:
                later = [line.partition(" ")[0] for line in lines[pos + 1 :]]
                raise _diagnose(key, type_, seen, spec.key, later)
        seen.add(spec.key)
    if pos < len(lines):
        key, _ = key_at(pos)
        if not key:
            raise FormatError("empty line in body", field="body")
        raise _diagnose(key, type_, seen, None, [])
    # Canonical by construction: each value's parser accepts only its canonical text,
    # the keys come in their one order, and nothing else is allowed, so the body
    # re-encodes to exactly ``text`` (tests/test_records.py and test_fuzz_parsers.py
    # check that round trip; re-encoding here cost the verifier 7% of its time).
    return _BY_TYPE[type_](**values)


# --- signed records -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordSignature:
    """One ``sig`` line: a raw Ed25519 public key and a signature over the body."""

    public_key: bytes
    signature: bytes

    def encode(self) -> bytes:
        return f"sig {b64encode(self.public_key)} {b64encode(self.signature)}\n".encode("ascii")


def required_signatures(body: Body) -> int:
    """How many signatures a complete record of ``body`` carries (docs/spec.md)."""
    if isinstance(body, Statement):
        return len(body.authors)
    if isinstance(body, Rotation):
        return 2
    return 1


@dataclass(frozen=True, slots=True)
class SignedRecord:
    """A body with its exact bytes and its signatures (complete or, as a draft, not).

    Make one with :func:`parse_record`, :func:`sign_record` or :func:`add_signature`
    (or from ``encode_body(body)``), so that ``body_bytes`` is the canonical body.
    """

    body: Body
    body_bytes: bytes
    signatures: tuple[RecordSignature, ...] = ()
    record_id: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "signatures", tuple(self.signatures))
        object.__setattr__(self, "record_id", hashlib.sha256(self.body_bytes).digest())

    @property
    def required_signatures(self) -> int:
        return required_signatures(self.body)

    @property
    def is_draft(self) -> bool:
        return len(self.signatures) < self.required_signatures

    def encode(self) -> bytes:
        """Body, empty line, signature lines (a draft without signatures ends at the empty line)."""
        return b"".join([self.body_bytes, b"\n", *(s.encode() for s in self.signatures)])


def record_id(body_bytes: bytes) -> bytes:
    """SHA-256 of the body bytes: the record's id (a statement's id is its record id)."""
    return hashlib.sha256(body_bytes).digest()


def signatory_id(public_key: bytes) -> bytes:
    """A signatory's id: SHA-256 of the raw key it registered with (kept across rotations)."""
    if len(public_key) != 32:
        raise FormatError(
            "Ed25519 public key must be 32 bytes", field="key", expected=32, found=len(public_key)
        )
    return ed25519.key_hash(public_key)


def _parse_sig_line(line: str) -> RecordSignature:
    parts = line.split(" ")
    if len(parts) != 3 or parts[0] != "sig":
        raise FormatError(
            "signature line must be 'sig <base64 key> <base64 signature>'",
            field="sig",
            found=line[:200],
        )
    return RecordSignature(
        b64decode_strict(parts[1], field="sig", length=32),
        b64decode_strict(parts[2], field="sig", length=64),
    )


def parse_record(data: bytes, *, allow_draft: bool = False) -> SignedRecord:
    """Parse a record: body, empty line, signature lines.

    By default the record must carry exactly the required number of signatures;
    with ``allow_draft`` it may carry fewer (0 included). More is always an error.
    Signatures are parsed, not verified: see :func:`verify_signatures`.
    """
    if type(data) is bytes:
        record = parse_complete_record_fast(data)
        if record is not None:
            return record
    return parse_record_strict(data, allow_draft=allow_draft)


def parse_record_strict(data: bytes, *, allow_draft: bool = False) -> SignedRecord:
    """:func:`parse_record` without its fast path: every record, every error."""
    _check_bytes(data, "record")
    data = bytes(data)
    split = data.find(b"\n\n")
    if split < 0:
        raise FormatError("no empty line between body and signatures", field="record")
    body_bytes = data[: split + 1]
    # The record's checks cover its body (a prefix ending at a newline): only decode it.
    body = _parse_body(body_bytes.decode("utf-8"))
    sig_text = data[split + 2 :].decode("utf-8")
    sig_lines = sig_text[:-1].split("\n") if sig_text else []
    signatures = tuple(_parse_sig_line(line) for line in sig_lines)
    record = SignedRecord(body, body_bytes, signatures)
    _check_count(record, allow_draft=allow_draft)
    # Canonical by construction: the body is (see the end of _parse_body: it accepts
    # only canonical text, without re-encoding it), each sig line's base64 is canonical
    # (b64decode_strict) and the lines are split exactly, so record.encode() == data;
    # tests/test_fuzz_parsers.py checks that round trip (re-encoding here cost 7% of
    # the verifier's main process).
    return record


# --- the fast path --------------------------------------------------------------------
#
# The verifier parses every entry of a log, so the common case gets a parser of its
# own: one regular expression per record type, built from ``_FIELDS``, matches a
# whole complete record written in printable ASCII, and each value is then converted
# (by a converter its pattern makes safe, or by the field's strict parser). It
# accepts nothing the strict parser rejects and returns the same record
# (tests/test_parse_fast.py and tests/test_fuzz_parsers.py compare both);
# for anything else, and for every error, it answers None and the strict parser
# decides, so that errors always come from one place, with its precise messages.


def _fast_regex(type_: str, specs: tuple[_Field, ...]) -> re.Pattern[bytes]:
    parts = [re.escape(f"{VERSION} {type_}\n".encode())]
    for spec in specs:
        key = re.escape(spec.key.encode())
        if spec.repeated:
            parts.append(b"((?:" + key + b" (?:" + spec.pattern + b")\n){1,%d})" % MAX_AUTHORS)
        else:
            line = key + b" (" + spec.pattern + b")\n"
            parts.append(b"(?:" + line + b")?" if spec.optional else line)
    sig = b"sig " + _P_KEY + b" " + _P_SIG + b"\n"
    count = {"statement": b"{1,%d}" % MAX_AUTHORS, "rotate": b"{2}"}.get(type_, b"{1}")
    parts.append(b"\n((?:" + sig + b")" + count + b")")
    return re.compile(b"".join(parts))


def _fast_converter(spec: _Field) -> Callable[[bytes, str], Any]:
    """The fast path's parse of a matched value of ``spec`` (raises FormatError)."""
    if spec.fast is not None:
        one = spec.fast
    else:
        parse = spec.parse

        def one(value: bytes, field: str) -> Any:
            return parse(value.decode("ascii"), field)

    if not spec.repeated:
        return one
    skip = len(spec.key) + 1  # a block of "key value" lines (authors): distinct values

    def items(block: bytes, field: str) -> tuple[Any, ...]:
        values = tuple(one(line[skip:], field) for line in block[:-1].split(b"\n"))
        if len(set(values)) != len(values):
            raise FormatError(f"duplicated {field}", field=field)
        return values

    return items


_Converters: TypeAlias = tuple[tuple[Callable[[bytes, str], Any], str], ...]
_FAST: dict[bytes, tuple[re.Pattern[bytes], _Converters, type[Body]]] = {}
for _type, _specs in _FIELDS.items():
    # Bodies are built positionally: their attributes come in the order of the lines.
    assert [s.attr for s in _specs] == [f.name for f in dataclasses.fields(_BY_TYPE[_type])]
    _converters = tuple((_fast_converter(spec), spec.key) for spec in _specs)
    _FAST[_type.encode()] = (_fast_regex(_type, _specs), _converters, _BY_TYPE[_type])
_FAST_PREFIX = f"{VERSION} ".encode()
_SIG_LINE = len(b"sig ") + 44 + 1 + 88 + 1


def parse_complete_record_fast(data: bytes) -> SignedRecord | None:
    """The record ``data`` if it is a complete, valid record in printable ASCII, else None.

    Whatever this returns, :func:`parse_record` would return too; None says nothing
    (``parse_record`` then finds the record valid, a draft, or names what is wrong).
    """
    if not data.startswith(_FAST_PREFIX) or len(data) > MAX_RECORD_SIZE:
        return None
    fast = _FAST.get(data[len(_FAST_PREFIX) : data.find(b"\n")])
    if fast is None:
        return None
    regex, converters, cls = fast
    m = regex.fullmatch(data)
    if m is None:
        return None
    groups = m.groups()
    try:
        values: list[Any] = [
            None if value is None else convert(value, key)  # None: an absent optional line
            for (convert, key), value in zip(converters, groups, strict=False)
        ]
    except FormatError:
        return None
    body = cls(*values)
    sig_block = groups[-1]
    signatures = tuple(
        RecordSignature(
            binascii.a2b_base64(sig_block[i + 4 : i + 48]),
            binascii.a2b_base64(sig_block[i + 49 : i + 137]),
        )
        for i in range(0, len(sig_block), _SIG_LINE)
    )
    if len(signatures) != required_signatures(body):
        return None
    return SignedRecord(body, data[: m.start(len(groups)) - 1], signatures)


def _check_count(record: SignedRecord, *, allow_draft: bool) -> None:
    n, required = len(record.signatures), record.required_signatures
    if n > required:
        raise FormatError(
            f"too many signatures for a record of type {record.body.TYPE!r}",
            field="sig",
            expected=required,
            found=n,
        )
    if n < required and not allow_draft:
        raise FormatError(
            f"missing signature: a record of type {record.body.TYPE!r} needs {required}",
            code="missing_signature",
            field="sig",
            expected=required,
            found=n,
        )


def add_signature(record: SignedRecord, public_key: bytes, signature: bytes) -> SignedRecord:
    """Append one signature line to a draft (structure only; nothing is verified)."""
    sig = RecordSignature(bytes(public_key), bytes(signature))
    if len(sig.public_key) != 32 or len(sig.signature) != 64:
        raise FormatError(
            "Ed25519 keys are 32 bytes and signatures 64",
            field="sig",
            expected=(32, 64),
            found=(len(sig.public_key), len(sig.signature)),
        )
    if not record.is_draft:
        raise FormatError(
            f"record already has its {record.required_signatures} signature(s)", field="sig"
        )
    new = SignedRecord(record.body, record.body_bytes, (*record.signatures, sig))
    if len(new.encode()) > MAX_RECORD_SIZE:
        raise TooLargeError(
            f"record larger than {MAX_RECORD_SIZE} bytes: its entry would not fit",
            code="entry_too_large",
            field="record",
            expected=MAX_RECORD_SIZE,
            found=len(new.encode()),
        )
    return new


def sign_record(
    body_or_record: Body | SignedRecord,
    sign: Callable[[bytes], bytes],
    public_key: bytes,
) -> SignedRecord:
    """Sign the body with ``sign`` (a private key's sign method) and append the signature.

    The new signature is verified at once, so a ``sign``/``public_key`` mismatch
    raises SignatureError here rather than at submission.
    """
    if isinstance(body_or_record, SignedRecord):
        record = body_or_record
    else:
        record = SignedRecord(body_or_record, encode_body(body_or_record))
    signature = sign(record.body_bytes)
    ed25519.verify(public_key, signature, record.body_bytes)
    return add_signature(record, public_key, signature)


def verify_signatures(record: SignedRecord) -> None:
    """Check a complete record's signatures and the key rules that need no log state.

    Raises SignatureError unless the signers are right (:func:`check_signers`) and
    every signature is valid under the Ed25519 acceptance rule
    (``ledger.core.ed25519.verify``) over the body. Who may sign (current keys, authors)
    is checked by ``ledger.core.rules``.
    """
    check_signers(record)
    for sig in record.signatures:
        ed25519.verify(sig.public_key, sig.signature, record.body_bytes)


def check_signers(record: SignedRecord) -> None:
    """The checks of :func:`verify_signatures` but for the Ed25519 ones (docs/spec.md,
    "Signatures", steps 1 to 4): the record has exactly its required signatures; the
    signing keys are distinct; a registration is signed by its ``key``; the second
    signature of a rotation is by ``new_key``. The verifier runs these in order and
    the Ed25519 checks in worker processes.
    """
    sigs, required = record.signatures, record.required_signatures
    if len(sigs) != required:
        raise SignatureError(
            f"a record of type {record.body.TYPE!r} needs {required} signature(s)"
            + (" (this is a draft)" if len(sigs) < required else ""),
            code="missing_signature" if len(sigs) < required else "extra_signature",
            field="sig",
            expected=required,
            found=len(sigs),
        )
    keys = [s.public_key for s in sigs]
    if len(set(keys)) != len(keys):
        raise SignatureError("one key signs the record twice", field="sig")
    body = record.body
    if isinstance(body, Registration) and keys[0] != body.key:
        raise SignatureError(
            "a registration must be signed by the key it registers",
            code="wrong_signer",
            field="sig",
            expected=body.key,
            found=keys[0],
        )
    if isinstance(body, Rotation) and keys[1] != body.new_key:
        raise SignatureError(
            "the second signature of a rotation must be by the new key",
            code="wrong_signer",
            field="sig",
            expected=body.new_key,
            found=keys[1],
        )


__all__ = [
    "BODY_TYPES",
    "MAX_AUTHORS",
    "MAX_COMMENT",
    "MAX_ENTRY_HEADER_SIZE",
    "MAX_ENTRY_SIZE",
    "MAX_NAME",
    "MAX_REASON",
    "MAX_RECORD_SIZE",
    "MAX_TITLE",
    "VERSION",
    "Body",
    "Endorsement",
    "Kind",
    "RecordSignature",
    "Registration",
    "Revocation",
    "Rotation",
    "SignedRecord",
    "Statement",
    "Withdrawal",
    "add_signature",
    "check_signers",
    "encode_body",
    "parse_body",
    "parse_record",
    "record_id",
    "required_signatures",
    "sign_record",
    "signatory_id",
    "verify_signatures",
]
