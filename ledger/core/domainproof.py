"""Domain proofs: a domain names the signatories that speak for it (docs/spec.md, "Domain proofs").

A signatory whose registration names a ``domain`` proves it by publishing its
signatory id under that domain, at ``https://<domain>/.well-known/endorsement-ledger``
or in the DNS TXT record ``_endorsement-ledger.<domain>``. Both carry the same
document::

    endorsement-ledger/v1 domain
    signatory ledger.example.org/paris-call 1b4262fa...e35d2586

(the id in full: 64 hex digits), that is::

    proof          = version-line *line            ; at most MAX_PROOF_SIZE bytes
    version-line   = "endorsement-ledger/v1 domain" LF
    line           = signatory-line / other-line
    signatory-line = "signatory" SP origin SP signatory-id LF
    other-line     = keyword *(SP word) LF        ; kept, ignored by this version

An ``other-line`` lets later versions add lines that v1 verifiers skip; its keyword
is 1 to 32 characters of ``a-z``, ``0-9`` and ``-`` beginning with a letter, and
every word is printable ASCII without space. Anything else is an error: a
:class:`DomainProofFormatError` that names the line (1-based). A TXT record's
character-strings are concatenated with nothing between them to form the
document (:func:`join_txt_strings`), and :func:`txt_strings` splits a document
into strings of at most 255 bytes.

:func:`match_domain_proof` compares a parsed proof with a registration: it returns
a :class:`DomainConfirmation`, or raises :class:`DomainProofMissingError` (the
domain names no signatory of this log, or only other logs for this one) or
:class:`DomainProofMismatchError` (the domain names other signatories for this log
and not this one: the impersonation alert).

This module does no I/O; the fetchers are in :mod:`ledger.verify.domains`.

>>> sid = bytes(range(32))
>>> doc = encode_domain_proof(DomainProof.of([("log.example/a", sid)]))
>>> doc.decode().splitlines()[0]
'endorsement-ledger/v1 domain'
>>> match_domain_proof(parse_domain_proof(doc), "log.example/a", sid, "example.org").domain
'example.org'
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ledger.core.errors import FormatError, TooLargeError, VerificationError
from ledger.core.records import _parse_domain, _parse_log

#: The first line of every domain proof (without its LF).
VERSION_LINE = "endorsement-ledger/v1 domain"
#: The path of the file form, under ``https://<domain>``.
WELL_KNOWN_PATH = "/.well-known/endorsement-ledger"
#: The owner-name prefix of the TXT form: ``_endorsement-ledger.<domain>``.
TXT_LABEL = "_endorsement-ledger"
#: The largest document accepted, in bytes (either form).
MAX_PROOF_SIZE = 16384
#: The largest character-string of a DNS TXT record (RFC 1035, section 3.3).
MAX_TXT_STRING = 255

_HEADER_PREFIX = "endorsement-ledger/"
_KEYWORD = re.compile(r"[a-z][a-z0-9-]{0,31}")
_WORD = re.compile(r"[\x21-\x7e]+")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_LINE_BYTES = re.compile(rb"[\x20-\x7e]*")


class DomainProofFormatError(FormatError):
    """A domain proof does not follow its grammar; ``index`` is None, ``line`` names the line."""

    code = "malformed_domain_proof"

    def __init__(self, message: str, *, line: int, found: object = None, code: str | None = None):
        super().__init__(f"line {line}: {message}", code=code, field="domain_proof", found=found)
        self.line = line


class DomainProofTooLargeError(DomainProofFormatError, TooLargeError):
    code = "domain_proof_too_large"


class DomainProofVersionError(DomainProofFormatError):
    """The document is a domain proof of another version than v1."""

    code = "unsupported_domain_proof_version"


class DomainProofMissingError(VerificationError):
    """The domain does not name this signatory for this log (and names no other for it)."""

    code = "domain_proof_missing"


class DomainProofMismatchError(VerificationError):
    """The domain names other signatories for this log: the registration is not the domain's."""

    code = "domain_proof_mismatch"

    def __init__(self, message: str, *, listed: tuple[bytes, ...], found: object = None):
        super().__init__(message, field="domain", found=found)
        self.listed = listed


@dataclass(frozen=True)
class SignatoryLine:
    """``signatory <origin> <signatory id>``: the domain speaks through this signatory."""

    origin: str
    signatory_id: bytes

    def to_text(self) -> str:
        return f"signatory {self.origin} {self.signatory_id.hex()}"


@dataclass(frozen=True)
class OtherLine:
    """A well-formed line of a keyword this version does not know: kept, ignored."""

    keyword: str
    text: str  # the whole line, without LF

    def to_text(self) -> str:
        return self.text


ProofLine = SignatoryLine | OtherLine


@dataclass(frozen=True)
class DomainProof:
    """A parsed domain proof: its lines after the version line, in order."""

    lines: tuple[ProofLine, ...]

    @classmethod
    def of(cls, signatories: Iterable[tuple[str, bytes]]) -> DomainProof:
        """A proof of ``(origin, signatory id)`` pairs (checked by :func:`encode_domain_proof`)."""
        return cls(tuple(SignatoryLine(o, s) for o, s in signatories))

    @property
    def signatories(self) -> tuple[SignatoryLine, ...]:
        return tuple(line for line in self.lines if isinstance(line, SignatoryLine))

    def signatories_for(self, origin: str) -> tuple[bytes, ...]:
        """The signatory ids this proof names for the log ``origin``, in order."""
        return tuple(s.signatory_id for s in self.signatories if s.origin == origin)


@dataclass(frozen=True)
class DomainConfirmation:
    """The domain names the signatory for the log: the registration's domain is confirmed."""

    domain: str
    origin: str
    signatory_id: bytes


def _parse_line(text: str, number: int) -> ProofLine:
    keyword, sep, rest = text.partition(" ")
    if keyword == "signatory":
        parts = rest.split(" ")
        if not sep or len(parts) != 2:
            raise DomainProofFormatError(
                "a signatory line is 'signatory', SP, the log origin, SP, the signatory id",
                line=number,
                found=text[:300],
            )
        origin, sid = parts
        try:
            _parse_log(origin, "origin")
        except FormatError as e:
            raise DomainProofFormatError(e.message, line=number, found=origin[:300]) from None
        if _HEX64.fullmatch(sid) is None:
            raise DomainProofFormatError(
                "the signatory id must be 64 lowercase hex digits", line=number, found=sid[:300]
            )
        return SignatoryLine(origin, bytes.fromhex(sid))
    if _KEYWORD.fullmatch(keyword) is None:
        raise DomainProofFormatError(
            "a line begins with a keyword of a-z, 0-9 and '-' (1 to 32, a letter first)",
            line=number,
            found=text[:300],
        )
    if sep and not all(_WORD.fullmatch(w) for w in rest.split(" ")):
        raise DomainProofFormatError(
            "words are separated by exactly one space, with none at the end",
            line=number,
            found=text[:300],
        )
    return OtherLine(keyword, text)


def parse_domain_proof(data: bytes) -> DomainProof:
    """Parse a domain proof strictly (either form, after joining the TXT strings).

    Raises :class:`DomainProofFormatError` (a subclass of FormatError) naming the
    first bad line; :class:`DomainProofVersionError` for another version;
    :class:`DomainProofTooLargeError` over :data:`MAX_PROOF_SIZE` bytes.
    """
    if len(data) > MAX_PROOF_SIZE:
        raise DomainProofTooLargeError(
            f"a domain proof is at most {MAX_PROOF_SIZE} bytes", line=1, found=len(data)
        )
    if not data:
        raise DomainProofFormatError("empty document", line=1)
    if not data.endswith(b"\n"):
        raise DomainProofFormatError(
            "the last line does not end with LF", line=data.count(b"\n") + 1
        )
    raw_lines = data[:-1].split(b"\n")
    for number, raw in enumerate(raw_lines, start=1):
        if _LINE_BYTES.fullmatch(raw) is None:
            bad = next(b for b in raw if not 0x20 <= b <= 0x7E)
            raise DomainProofFormatError(
                "only printable ASCII and LF are allowed (no CR, TAB, byte-order mark or UTF-8)",
                line=number,
                found=f"0x{bad:02x}",
            )
    lines = [raw.decode("ascii") for raw in raw_lines]
    head = lines[0]
    if head != VERSION_LINE:
        if head.startswith(_HEADER_PREFIX) and head.endswith(" domain"):
            raise DomainProofVersionError(
                "unsupported domain proof version", line=1, found=head[:300]
            )
        raise DomainProofFormatError(
            f"the first line must be {VERSION_LINE!r}", line=1, found=head[:300]
        )
    parsed: list[ProofLine] = []
    seen: set[tuple[str, bytes]] = set()
    for number, text in enumerate(lines[1:], start=2):
        if not text:
            raise DomainProofFormatError("empty line", line=number)
        line = _parse_line(text, number)
        if isinstance(line, SignatoryLine):
            pair = (line.origin, line.signatory_id)
            if pair in seen:
                raise DomainProofFormatError(
                    "the same signatory line appears twice", line=number, found=text
                )
            seen.add(pair)
        parsed.append(line)
    return DomainProof(tuple(parsed))


def encode_domain_proof(proof: DomainProof) -> bytes:
    """The document bytes of ``proof``; what :func:`parse_domain_proof` parses back to it."""
    texts = [VERSION_LINE, *(line.to_text() for line in proof.lines)]
    try:
        data = "".join(f"{text}\n" for text in texts).encode("ascii")
    except UnicodeEncodeError:
        raise FormatError("a domain proof is printable ASCII", field="domain_proof") from None
    if parse_domain_proof(data) != proof:
        raise FormatError("proof does not encode to a valid document of itself")
    return data


def check_domain_name(domain: str) -> str:
    """``domain`` if it is a valid registration domain (docs/spec.md, "Field values").

    Raises FormatError otherwise.
    """
    return _parse_domain(domain, "domain")


def txt_name(domain: str) -> str:
    """The owner name of the TXT form: ``_endorsement-ledger.<domain>``."""
    return f"{TXT_LABEL}.{check_domain_name(domain)}"


def well_known_url(domain: str) -> str:
    """The URL of the file form: ``https://<domain>/.well-known/endorsement-ledger``."""
    return f"https://{check_domain_name(domain)}{WELL_KNOWN_PATH}"


def txt_strings(document: bytes) -> list[bytes]:
    """``document`` split into TXT character-strings of at most 255 bytes, in order."""
    return [document[i : i + MAX_TXT_STRING] for i in range(0, len(document), MAX_TXT_STRING)]


def join_txt_strings(strings: Sequence[bytes]) -> bytes:
    """The document of one TXT record: its character-strings concatenated, nothing between."""
    return b"".join(strings)


def zone_file_strings(document: bytes) -> str:
    """The TXT form as RFC 1035 master-file text: quoted strings, LF written ``\\010``."""
    out = []
    for chunk in txt_strings(document):
        text = "".join(
            "\\010" if b == 0x0A else ("\\" + chr(b) if b in b'"\\' else chr(b)) for b in chunk
        )
        out.append(f'"{text}"')
    return " ".join(out)


def match_domain_proof(
    proof: DomainProof, origin: str, signatory_id: bytes, domain: str
) -> DomainConfirmation:
    """Check that the proof published by ``domain`` names ``signatory_id`` for ``origin``.

    Returns the confirmation; raises :class:`DomainProofMismatchError` when the proof
    names other signatories for this log and not this one (someone else registered
    with the domain's name: the impersonation alert), :class:`DomainProofMissingError`
    when it names none for this log.
    """
    check_domain_name(domain)
    _parse_log(origin, "origin")
    listed = proof.signatories_for(origin)
    if signatory_id in listed:
        return DomainConfirmation(domain, origin, signatory_id)
    if listed:
        raise DomainProofMismatchError(
            f"{domain} names {len(listed)} other signator{'y' if len(listed) == 1 else 'ies'} "
            f"for {origin} and not this one",
            listed=listed,
            found=signatory_id.hex(),
        )
    elsewhere = sorted({s.origin for s in proof.signatories if s.signatory_id == signatory_id})
    detail = f" (it names it for {', '.join(elsewhere)} only)" if elsewhere else ""
    raise DomainProofMissingError(
        f"{domain} names no signatory for {origin}{detail}", field="domain", found=domain
    )


__all__ = [
    "MAX_PROOF_SIZE",
    "MAX_TXT_STRING",
    "TXT_LABEL",
    "VERSION_LINE",
    "WELL_KNOWN_PATH",
    "DomainConfirmation",
    "DomainProof",
    "DomainProofFormatError",
    "DomainProofMismatchError",
    "DomainProofMissingError",
    "DomainProofTooLargeError",
    "DomainProofVersionError",
    "OtherLine",
    "ProofLine",
    "SignatoryLine",
    "check_domain_name",
    "encode_domain_proof",
    "join_txt_strings",
    "match_domain_proof",
    "parse_domain_proof",
    "txt_name",
    "txt_strings",
    "well_known_url",
    "zone_file_strings",
]
