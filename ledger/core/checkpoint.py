"""Checkpoints: a log's signed tree head (C2SP tlog-checkpoint).

A checkpoint is a signed note (:mod:`ledger.core.note`) whose text is at least three
non-empty lines (c2sp.org/tlog-checkpoint, "Note text")::

    <origin>
    <tree size, decimal without leading zeros>
    <root hash, base64 of 32 bytes>
    [<extension line>...]

:func:`parse_checkpoint_text` accepts exactly that: a non-empty origin, a
canonical decimal size (at most 2^63 - 1), the one canonical base64 spelling of a
32-byte hash, then optional non-empty extension lines, no empty line anywhere and
a final newline. Whatever it accepts, :meth:`Checkpoint.to_text` writes back
byte for byte.

A log signs its checkpoints with a key named after its origin (docs/spec.md,
"Checkpoints"); :func:`open_checkpoint` requires that: a valid signature by a
trusted key whose name *is* the checkpoint's origin. So a verifier that trusts
several logs cannot be shown one log's checkpoint under another log's origin.

>>> cp = parse_checkpoint_text(
...     "example.com/behind-the-sofa\\n20852163\\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\\n")
>>> cp.origin, cp.size, cp.root.hex()[:16]
('example.com/behind-the-sofa', 20852163, '0ac5186a91863e8e')
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ledger.core.encoding import MAX_UINT63, b64decode_strict, b64encode, parse_uint
from ledger.core.errors import FormatError, UnknownKeyError, VerificationError
from ledger.core.note import Note, NoteSigner, Verifier, open_note, sign_note

__all__ = [
    "Checkpoint",
    "WrongOriginError",
    "open_checkpoint",
    "parse_checkpoint_text",
    "sign_checkpoint",
]


class WrongOriginError(VerificationError):
    """A checkpoint names another log than the one expected."""

    code = "wrong_origin"


_CONTROL = re.compile(r"[\x00-\x1f]")


def _check_line(line: str, what: str) -> None:
    if not line or _CONTROL.search(line):
        raise FormatError(
            f"checkpoint {what} must be one non-empty line without control characters",
            field=what,
            found=line[:100],
        )


@dataclass(frozen=True)
class Checkpoint:
    """A tree head: origin, tree size, root hash and optional extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_line(self.origin, "origin")
        if not 0 <= self.size <= MAX_UINT63:
            raise FormatError("tree size out of range", field="size", found=self.size)
        if len(self.root) != 32:
            raise FormatError("root hash must be 32 bytes", field="root", found=len(self.root))
        for ext in self.extensions:
            _check_line(ext, "extension")

    def to_text(self) -> str:
        lines = [self.origin, str(self.size), b64encode(self.root), *self.extensions]
        return "".join(line + "\n" for line in lines)


def parse_checkpoint_text(text: str) -> Checkpoint:
    """Parse a checkpoint's note text strictly (tlog-checkpoint, "Note text")."""
    if not text.endswith("\n"):
        raise FormatError("checkpoint text must end with a newline", field="checkpoint")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise FormatError(
            "checkpoint text needs an origin, a size and a root hash",
            field="checkpoint",
            found=len(lines),
        )
    if any(not line for line in lines):
        raise FormatError("checkpoint text contains an empty line", field="checkpoint")
    origin, size, root, *extensions = lines
    return Checkpoint(
        origin,
        parse_uint(size, field="size"),
        b64decode_strict(root, field="root", length=32),
        tuple(extensions),
    )


def sign_checkpoint(cp: Checkpoint, signer: NoteSigner) -> bytes:
    """The signed note of ``cp`` by the log key, which must be named after the origin."""
    if signer.name != cp.origin:
        raise FormatError(
            "the log key's name must be the checkpoint origin",
            field="origin",
            expected=cp.origin,
            found=signer.name,
        )
    return sign_note(cp.to_text(), [signer])


def open_checkpoint(
    data: bytes, verifiers: Sequence[Verifier], origin: str | None = None
) -> tuple[Checkpoint, Note]:
    """Verify a signed checkpoint against the trusted log key(s); return it and its note.

    1. Open the note with ``verifiers`` (:func:`ledger.core.note.open_note`): signatures
       by unknown keys are ignored, an invalid one by a known key rejects it.
    2. Parse its text as a checkpoint.
    3. If ``origin`` is given, the checkpoint's origin must equal it (WrongOriginError).
    4. One of the valid signatures must be by a key named after the origin
       (UnknownKeyError otherwise).
    """
    note = open_note(data, verifiers)
    cp = parse_checkpoint_text(note.text)
    if origin is not None and cp.origin != origin:
        raise WrongOriginError(
            "checkpoint is for another log", field="origin", expected=origin, found=cp.origin
        )
    if not any(sig.name == cp.origin for sig in note.verified):
        raise UnknownKeyError(
            "no valid signature by a log key named after the checkpoint origin",
            field="origin",
            expected=cp.origin,
            found=sorted({sig.name for sig in note.verified}),
        )
    return cp, note
