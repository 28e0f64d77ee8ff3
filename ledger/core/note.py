"""Signed notes (C2SP signed-note) and Ed25519 witness cosignatures (C2SP tlog-cosignature).

A signed note is UTF-8 text ending in a newline, an empty line, then one or more
signature lines (c2sp.org/signed-note, "Format")::

    This is an example message.

    — example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTg...Yu72IneyaQM=

Each line is U+2014, a space, the key name, a space and the base64 of a 4-byte
key ID followed by the signature of the text (which includes its final newline).
The text is separated from the signatures by the *last* empty line.

What :func:`parse_note` rejects (``FormatError``), so that whatever it accepts
re-encodes to the same bytes:

- more than :data:`MAX_NOTE_SIZE` bytes or :data:`MAX_SIGNATURES` signature lines
  (``TooLargeError``); the spec asks verifiers to accept at least 16;
- invalid UTF-8, or a control character below U+0020 other than newline (the
  spec's definition: DEL and C1 controls are allowed, as in golang.org/x/mod);
- no empty line, an empty signature section, a last line without newline;
- a line that is not ``— <name> <base64>``: a name that is empty or contains a
  Unicode space or ``+``, base64 that is not the canonical padded spelling of
  at least 5 bytes. Malformed lines are errors, never skipped.

Keys (c2sp.org/signed-note, "Signatures"): the key ID of a key of signature type
``alg`` is ``SHA-256(name || 0x0A || alg || public key)[:4]``. Type 0x01 is an
Ed25519 note signature; type 0x04 an Ed25519 cosignature (c2sp.org/tlog-cosignature),
whose signature bytes are a big-endian uint64 timestamp and an Ed25519
signature of ``cosignature/v1\\ntime <timestamp>\\n`` followed by the note text.
A verifier key (vkey) is ``<name>+<8 lowercase hex key ID>+<base64(alg || key)>``.

:func:`open_note` applies the spec's rules: signatures whose (name, key ID) match
no verifier are ignored; a matching signature that fails rejects the whole note;
a note with no verified signature is rejected (``UnknownKeyError``). Every Ed25519
check goes through :func:`ledger.core.ed25519.verify`, the acceptance rule.

>>> v = parse_vkey("example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k")
>>> note = open_note(
...     "This is an example message.\\n\\n— example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppz"
...     "i2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\\n".encode(), [v])
>>> note.text
'This is an example message.\\n'
>>> [s.name for s in note.verified]
['example.com/foo']
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.core import ed25519
from ledger.core.encoding import b64decode_strict, b64encode
from ledger.core.errors import FormatError, SignatureError, TooLargeError, UnknownKeyError

__all__ = [
    "ALG_COSIGNATURE_V1",
    "ALG_ED25519",
    "MAX_NOTE_SIZE",
    "MAX_SIGNATURES",
    "CosignatureVerifier",
    "Ed25519NoteSigner",
    "Ed25519Verifier",
    "Note",
    "NoteSignature",
    "NoteSigner",
    "Verifier",
    "check_key_name",
    "cosign",
    "cosignature_message",
    "key_id",
    "make_vkey",
    "open_note",
    "parse_note",
    "parse_vkey",
    "sign_note",
    "split_cosignature",
]

ALG_ED25519 = 0x01
"""Signature type of Ed25519 note signatures (c2sp.org/signed-note)."""
ALG_COSIGNATURE_V1 = 0x04
"""Signature type of timestamped Ed25519 cosignatures (c2sp.org/tlog-cosignature)."""

MAX_NOTE_SIZE = 1 << 20
"""Largest note read, in bytes (1 MiB): room for 100 post-quantum signatures."""
MAX_SIGNATURES = 100
"""Most signature lines read in one note (the spec's floor is 16; golang.org/x/mod uses 100)."""

_DASH = "\u2014 "  # em dash, space: the start of every signature line
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_KEY_ID_HEX = re.compile(r"[0-9a-f]{8}")
_COSIGNATURE_SIZE = 8 + 64
_MAX_TIMESTAMP = 2**63 - 1


def check_key_name(name: str, *, field: str = "name") -> None:
    """A key name is non-empty and has no Unicode space and no ``+`` (signed-note, "Format")."""
    if (
        not name
        or "+" in name
        or any(c.isspace() or "\ud800" <= c <= "\udfff" for c in name)
        or _CONTROL.search(name)
    ):
        raise FormatError(
            "key name must be non-empty UTF-8, without spaces, '+' or control characters",
            field=field,
            found=name[:100],
        )


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise FormatError("note text must end with a newline", field="text")
    if _CONTROL.search(text):
        raise FormatError("note text contains a control character other than newline", field="text")


def key_id(name: str, pub: bytes, alg: int = ALG_ED25519) -> bytes:
    """``SHA-256(name || 0x0A || alg || pub)[:4]`` (signed-note, "Signatures")."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([alg]) + pub).digest()[:4]


def make_vkey(name: str, pub: bytes, alg: int = ALG_ED25519) -> str:
    """The verifier key string ``<name>+<hex key ID>+<base64(alg || pub)>``."""
    check_key_name(name)
    if len(pub) != 32:
        raise FormatError("Ed25519 public key must be 32 bytes", field="vkey", found=len(pub))
    return f"{name}+{key_id(name, pub, alg).hex()}+{b64encode(bytes([alg]) + pub)}"


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: key name, 4-byte key ID, signature bytes (at least 1)."""

    name: str
    key_id: bytes
    signature: bytes

    def __post_init__(self) -> None:
        check_key_name(self.name)
        if len(self.key_id) != 4:
            raise FormatError("key ID must be 4 bytes", field="key_id", found=len(self.key_id))
        if not self.signature:
            raise FormatError("empty signature", field="signature")

    def line(self) -> str:
        """``— <name> <base64(key ID || signature)>`` and a newline."""
        return f"{_DASH}{self.name} {b64encode(self.key_id + self.signature)}\n"


@dataclass(frozen=True)
class Note:
    """A signed note. ``verified`` lists the signatures :func:`open_note` checked."""

    text: str
    signatures: tuple[NoteSignature, ...]
    verified: tuple[NoteSignature, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        _check_text(self.text)
        if not self.signatures:
            raise FormatError("a note needs at least one signature", field="signatures")
        if len(self.signatures) > MAX_SIGNATURES:
            raise TooLargeError(
                f"too many signatures (at most {MAX_SIGNATURES})",
                field="signatures",
                found=len(self.signatures),
            )

    @property
    def message(self) -> bytes:
        """The signed bytes: the text, final newline included."""
        return self.text.encode("utf-8")

    def encode(self) -> bytes:
        return (self.text + "\n" + "".join(s.line() for s in self.signatures)).encode("utf-8")

    def add(self, *signatures: NoteSignature) -> Note:
        """This note with more signature lines after the existing ones (e.g. cosignatures)."""
        return Note(self.text, self.signatures + signatures)


def parse_note(data: bytes) -> Note:
    """Parse a signed note strictly, without checking any signature."""
    if len(data) > MAX_NOTE_SIZE:
        raise TooLargeError(
            f"note larger than {MAX_NOTE_SIZE} bytes", field="note", found=len(data)
        )
    try:
        s = data.decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError("note is not valid UTF-8", field="note") from None
    if _CONTROL.search(s):
        raise FormatError("note contains a control character other than newline", field="note")
    split = s.rfind("\n\n")
    if split < 0:
        raise FormatError("note has no empty line before its signatures", field="note")
    text, block = s[: split + 1], s[split + 2 :]
    if not block:
        raise FormatError("note has no signature lines", field="signatures")
    if not block.endswith("\n"):
        raise FormatError("last signature line does not end with a newline", field="signatures")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise TooLargeError(
            f"too many signature lines (at most {MAX_SIGNATURES})",
            field="signatures",
            found=len(lines),
        )
    signatures = []
    for i, line in enumerate(lines):
        if not line.startswith(_DASH):
            raise FormatError(
                f"signature line {i + 1} does not start with an em dash and a space",
                field="signatures",
                found=line[:100],
            )
        name, sep, b64 = line[len(_DASH) :].partition(" ")
        if not sep:
            raise FormatError(
                f"signature line {i + 1} has no space after the key name",
                field="signatures",
                found=line[:100],
            )
        check_key_name(name, field="signatures")
        raw = b64decode_strict(b64, field="signatures")
        if len(raw) < 5:
            raise FormatError(
                f"signature line {i + 1} holds fewer than 5 bytes",
                field="signatures",
                found=len(raw),
            )
        signatures.append(NoteSignature(name, raw[:4], raw[4:]))
    return Note(text, tuple(signatures))


class Verifier(Protocol):
    """A trusted key: its name, key ID and a check that raises SignatureError."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> bytes: ...

    def verify(self, message: bytes, signature: bytes) -> int | None:
        """Raise SignatureError unless ``signature`` of ``message`` is valid.

        Returns the cosignature timestamp for cosignatures, else None.
        """
        ...


class NoteSigner(Protocol):
    """What :func:`sign_note` signs with: a name, a 4-byte key ID and a signing function."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> bytes: ...

    def sign(self, message: bytes) -> bytes: ...


@dataclass(frozen=True)
class _NamedKey:
    """A named Ed25519 public key of one signature type (``ALG``), with its key ID."""

    ALG: ClassVar[int]
    name: str
    public_key: bytes
    key_id: bytes = field(init=False)

    def __post_init__(self) -> None:
        check_key_name(self.name)
        _check_vkey_key(self.public_key)
        object.__setattr__(self, "key_id", key_id(self.name, self.public_key, self.ALG))

    @property
    def vkey(self) -> str:
        return make_vkey(self.name, self.public_key, self.ALG)


@dataclass(frozen=True)
class Ed25519Verifier(_NamedKey):
    """An Ed25519 note key (signature type 0x01)."""

    ALG: ClassVar[int] = ALG_ED25519

    def verify(self, message: bytes, signature: bytes) -> None:
        ed25519.verify(self.public_key, signature, message)


def cosignature_message(text: str, timestamp: int) -> bytes:
    """``cosignature/v1\\ntime <timestamp>\\n`` and the checkpoint text (tlog-cosignature)."""
    if not 0 <= timestamp <= _MAX_TIMESTAMP:
        raise FormatError("cosignature timestamp out of range", field="timestamp", found=timestamp)
    return f"cosignature/v1\ntime {timestamp}\n{text}".encode()


def split_cosignature(signature: bytes) -> tuple[int, bytes]:
    """Split a type 0x04 signature into its timestamp and its 64-byte Ed25519 signature."""
    if len(signature) != _COSIGNATURE_SIZE:
        raise FormatError(
            "cosignature must be 72 bytes (timestamp and Ed25519 signature)",
            field="signature",
            expected=_COSIGNATURE_SIZE,
            found=len(signature),
        )
    timestamp = int.from_bytes(signature[:8], "big")
    if timestamp > _MAX_TIMESTAMP:
        raise FormatError("cosignature timestamp exceeds 2^63 - 1", field="signature")
    return timestamp, signature[8:]


@dataclass(frozen=True)
class CosignatureVerifier(_NamedKey):
    """An Ed25519 cosigner key (signature type 0x04); ``verify`` returns the timestamp."""

    ALG: ClassVar[int] = ALG_COSIGNATURE_V1

    def verify(self, message: bytes, signature: bytes) -> int:
        try:
            timestamp, sig = split_cosignature(signature)
            text = message.decode("utf-8")
        except (FormatError, UnicodeDecodeError) as e:
            raise SignatureError(f"malformed cosignature: {e}", field="signature") from None
        ed25519.verify(self.public_key, sig, cosignature_message(text, timestamp))
        return timestamp


def _check_vkey_key(pub: bytes) -> None:
    try:
        ed25519.check_public_key(pub)
    except SignatureError as e:
        raise FormatError(f"unacceptable Ed25519 key: {e.message}", field="vkey") from None


def parse_vkey(vkey: str) -> Ed25519Verifier | CosignatureVerifier:
    """Parse ``<name>+<8 lowercase hex key ID>+<base64(alg || key)>`` for alg 0x01 or 0x04.

    The key ID must be the one computed from the name and key, and the key must pass
    the Ed25519 acceptance rule.
    """
    name, _, rest = vkey.partition("+")
    hex_id, _, b64 = rest.partition("+")
    check_key_name(name, field="vkey")
    if _KEY_ID_HEX.fullmatch(hex_id) is None:
        raise FormatError("vkey key ID must be 8 lowercase hex digits", field="vkey", found=vkey)
    raw = b64decode_strict(b64, field="vkey")
    if len(raw) != 33 or raw[0] not in (ALG_ED25519, ALG_COSIGNATURE_V1):
        raise FormatError(
            "vkey must hold signature type 0x01 or 0x04 and a 32-byte Ed25519 key",
            field="vkey",
            found=vkey,
        )
    alg, pub = raw[0], raw[1:]
    verifier: Ed25519Verifier | CosignatureVerifier = (
        Ed25519Verifier(name, pub) if alg == ALG_ED25519 else CosignatureVerifier(name, pub)
    )
    if verifier.key_id.hex() != hex_id:
        raise FormatError(
            "vkey key ID does not match its name and key",
            field="vkey",
            expected=verifier.key_id.hex(),
            found=hex_id,
        )
    return verifier


@dataclass(frozen=True)
class Ed25519NoteSigner:
    """Signs notes with an Ed25519 private key (signature type 0x01)."""

    name: str
    private_key: Ed25519PrivateKey = field(repr=False)
    key_id: bytes = field(init=False)

    def __post_init__(self) -> None:
        check_key_name(self.name)
        object.__setattr__(self, "key_id", key_id(self.name, self.public_key, ALG_ED25519))

    @property
    def public_key(self) -> bytes:
        return self.private_key.public_key().public_bytes_raw()

    @property
    def vkey(self) -> str:
        return make_vkey(self.name, self.public_key, ALG_ED25519)

    def sign(self, message: bytes) -> bytes:
        return self.private_key.sign(message)


def sign_note(text: str, signers: Sequence[NoteSigner]) -> bytes:
    """Sign ``text`` (which must end with a newline) with each signer, in order."""
    _check_text(text)
    message = text.encode("utf-8")
    sigs = tuple(NoteSignature(s.name, s.key_id, s.sign(message)) for s in signers)
    return Note(text, sigs).encode()


def cosign(
    checkpoint_text: str, name: str, private_key: Ed25519PrivateKey, timestamp: int
) -> NoteSignature:
    """A tlog-cosignature/v1 Ed25519 cosignature of a checkpoint text, as a note signature."""
    _check_text(checkpoint_text)
    pub = private_key.public_key().public_bytes_raw()
    sig = private_key.sign(cosignature_message(checkpoint_text, timestamp))
    return NoteSignature(
        name, key_id(name, pub, ALG_COSIGNATURE_V1), timestamp.to_bytes(8, "big") + sig
    )


def open_note(data: bytes, verifiers: Sequence[Verifier]) -> Note:
    """Parse ``data`` and check it against the trusted ``verifiers`` (signed-note, "Signatures").

    Signatures of unknown keys (name and key ID not both matching a verifier) are
    ignored; an invalid signature by a known key rejects the note (SignatureError);
    so does a note without any valid signature by a known key (UnknownKeyError).
    The returned note's ``verified`` lists the signatures that were checked.
    """
    note = parse_note(data)
    known: dict[tuple[str, bytes], list[Verifier]] = {}
    for v in verifiers:
        known.setdefault((v.name, v.key_id), []).append(v)
    message = note.message
    verified = []
    for sig in note.signatures:
        candidates = known.get((sig.name, sig.key_id))
        if candidates is None:
            continue
        if len(candidates) > 1:
            raise SignatureError(
                f"ambiguous verifiers: several keys are named {sig.name!r} "
                f"with key ID {sig.key_id.hex()}",
                field="signatures",
            )
        try:
            candidates[0].verify(message, sig.signature)
        except SignatureError as e:
            raise SignatureError(
                f"invalid signature by known key {sig.name}+{sig.key_id.hex()}: {e.message}",
                field="signatures",
            ) from None
        verified.append(sig)
    if not verified:
        raise UnknownKeyError(
            "note has no valid signature by a known key",
            field="signatures",
            expected=sorted(f"{v.name}+{v.key_id.hex()}" for v in verifiers),
            found=[f"{s.name}+{s.key_id.hex()}" for s in note.signatures],
        )
    return dataclasses.replace(note, verified=tuple(verified))
