"""The witness protocol, pure: the ``add-checkpoint`` request, its answers and the decision.

C2SP tlog-witness, "add-checkpoint". The request body is, each line ending in U+000A::

    old <size>                      decimal, no leading zeros (``0`` for zero)
    <base64 hash>                   zero to 63 consistency proof lines
    ...
                                    an empty line
    <signed checkpoint>             a C2SP signed note (tlog-checkpoint)

:func:`parse_request` is strict and bounded: at most :data:`MAX_BODY_SIZE` bytes, at
most :data:`MAX_PROOF_LINES` proof lines, each the one canonical padded base64
spelling of 32 bytes; anything else is a ``FormatError``. Whatever it accepts
:meth:`AddCheckpoint.encode` writes back byte for byte.

:func:`decide` is the witness's whole judgement, in the spec's order; it raises the
first error that applies and :func:`status_of` gives the HTTP status the spec asks
for:

1. a body, note or checkpoint text that does not parse: ``FormatError``, 400;
2. an origin the witness does not witness: :class:`UnknownOriginError`, 404;
3. no valid signature by a trusted key of that origin (signatures by unknown keys are
   ignored; a failing one by a known key rejects the note): ``SignatureError``, 403;
4. an old size larger than the checkpoint's: :class:`OldSizeTooLargeError`, 400;
5. an old size other than the size of the latest checkpoint cosigned for the origin
   (0 if none): :class:`SizeMismatchError`, 409, whose body is that size and a newline
   (``Content-Type: text/x.tlog.size``, :func:`encode_size`);
6. the same size as the latest cosigned but another root: :class:`RootConflictError`,
   409 (a fork: both checkpoints are signed by the log);
7. a consistency proof (RFC 6962 section 2.1.2; empty when the old size is 0) that
   does not join the latest cosigned tree to the new one: ``ProofError``, 422.

Otherwise the witness cosigns (:func:`cosign_response`: C2SP tlog-cosignature
cosignature/v1, key ID type 0x04) and answers 200 with the cosignature lines; it must
persist the new (size, root) *before* answering, atomically with the check of step 5
(the spec's rollback race). The tree never cosigned is (0, SHA-256("")): so a size-0
checkpoint with any other root is refused as a conflict (6), not cosigned.

An auditing witness (docs/spec.md, "Witnesses") also refuses a log whose new entries
break a rule: ``RuleError``, 422, naming the entry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.core.checkpoint import Checkpoint, open_checkpoint, parse_checkpoint_text
from ledger.core.encoding import b64decode_strict, b64encode, parse_uint
from ledger.core.errors import (
    ConsistencyError,
    FormatError,
    LedgerError,
    ProofError,
    SignatureError,
    TooLargeError,
    VerificationError,
)
from ledger.core.merkle import EMPTY_ROOT, verify_consistency
from ledger.core.note import Note, NoteSignature, Verifier, cosign, parse_note

__all__ = [
    "EMPTY_TREE",
    "MAX_BODY_SIZE",
    "MAX_PROOF_LINES",
    "SIZE_CONTENT_TYPE",
    "AddCheckpoint",
    "OldSizeTooLargeError",
    "RootConflictError",
    "SizeMismatchError",
    "TreeHead",
    "UnknownOriginError",
    "check_consistent",
    "cosign_response",
    "decide",
    "encode_request",
    "encode_size",
    "open_request",
    "parse_cosignatures",
    "parse_request",
    "parse_size",
    "status_of",
]

MAX_PROOF_LINES = 63
"""Most consistency proof lines (tlog-witness: "MUST NOT send more than 63")."""
MAX_BODY_SIZE = 64 * 1024
"""Largest request body read, in bytes: 63 proof lines take 2.8 KB, the rest is the note."""
SIZE_CONTENT_TYPE = "text/x.tlog.size"
"""Content type of the 409 body that gives the size of the latest cosigned checkpoint."""

_OLD = b"old "


@dataclass(frozen=True)
class TreeHead:
    """What a witness keeps per origin: the size and root of the latest tree it cosigned."""

    size: int
    root: bytes


EMPTY_TREE = TreeHead(0, EMPTY_ROOT)
"""The state of an origin never cosigned."""


class UnknownOriginError(VerificationError):
    """The checkpoint's origin is not a log this witness witnesses (404)."""

    code = "unknown_origin"


class OldSizeTooLargeError(FormatError):
    """The request's old size is larger than its checkpoint's size (400)."""

    code = "old_size_too_large"


class SizeMismatchError(VerificationError):
    """The old size is not the size of the latest cosigned checkpoint (409).

    ``latest`` is that size: the 409 body.
    """

    code = "old_size_mismatch"

    def __init__(self, message: str, latest: int, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.latest = latest


class RootConflictError(ConsistencyError):
    """A checkpoint of the latest cosigned size with another root: a fork (409)."""

    code = "fork"


@dataclass(frozen=True)
class AddCheckpoint:
    """An add-checkpoint request: old size, consistency proof, signed checkpoint bytes."""

    old_size: int
    proof: tuple[bytes, ...]
    checkpoint: bytes

    def encode(self) -> bytes:
        return encode_request(self.old_size, self.proof, self.checkpoint)


def encode_request(old_size: int, proof: Sequence[bytes], checkpoint: bytes) -> bytes:
    """The add-checkpoint body for ``old_size``, ``proof`` and a signed checkpoint note."""
    if old_size < 0:
        raise FormatError("negative old size", field="old", found=old_size)
    if len(proof) > MAX_PROOF_LINES:
        raise TooLargeError(
            f"more than {MAX_PROOF_LINES} proof lines", field="proof", found=len(proof)
        )
    lines = [f"old {old_size}\n", *(b64encode(h) + "\n" for h in proof), "\n"]
    return "".join(lines).encode("ascii") + checkpoint


def parse_request(body: bytes) -> AddCheckpoint:
    """Parse an add-checkpoint body strictly (the checkpoint note is parsed by :func:`decide`)."""
    if len(body) > MAX_BODY_SIZE:
        raise TooLargeError(
            f"request body larger than {MAX_BODY_SIZE} bytes", field="body", found=len(body)
        )
    end = body.find(b"\n")
    if end < 0 or not body.startswith(_OLD):
        raise FormatError("the body must start with an 'old <size>' line", field="old")
    old_size = parse_uint(_ascii(body[len(_OLD) : end], "old"), field="old")
    proof: list[bytes] = []
    pos = end + 1
    while True:
        end = body.find(b"\n", pos)
        if end < 0:
            raise FormatError("no empty line before the checkpoint", field="proof")
        if end == pos:
            break
        if len(proof) == MAX_PROOF_LINES:
            raise TooLargeError(
                f"more than {MAX_PROOF_LINES} consistency proof lines", field="proof"
            )
        proof.append(b64decode_strict(_ascii(body[pos:end], "proof"), field="proof", length=32))
        pos = end + 1
    checkpoint = body[end + 1 :]
    if not checkpoint:
        raise FormatError("no checkpoint after the empty line", field="checkpoint")
    return AddCheckpoint(old_size, tuple(proof), checkpoint)


def _ascii(raw: bytes, field: str) -> str:
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        raise FormatError("not ASCII", field=field, found=raw[:100]) from None


def open_request(
    request: AddCheckpoint, logs: Mapping[str, Sequence[Verifier]]
) -> tuple[Checkpoint, Note]:
    """Steps 1-4 of :func:`decide`: the checks that need no stored state.

    ``logs`` maps each witnessed origin to its trusted keys (each named after it).
    """
    note = parse_note(request.checkpoint)
    origin = parse_checkpoint_text(note.text).origin
    verifiers = logs.get(origin)
    if not verifiers:
        raise UnknownOriginError(
            "this witness does not witness that log", field="origin", found=origin
        )
    cp, note = open_checkpoint(request.checkpoint, verifiers, origin)
    if request.old_size > cp.size:
        raise OldSizeTooLargeError(
            "old size is larger than the checkpoint's size",
            field="old",
            expected=f"at most {cp.size}",
            found=request.old_size,
        )
    return cp, note


def check_consistent(request: AddCheckpoint, cp: Checkpoint, latest: TreeHead) -> None:
    """Steps 5-7 of :func:`decide`: is ``cp`` an extension of the latest cosigned tree?"""
    if request.old_size != latest.size:
        raise SizeMismatchError(
            "old size is not the size of the latest checkpoint cosigned for this log",
            latest.size,
            field="old",
            expected=latest.size,
            found=request.old_size,
        )
    if cp.size == latest.size:
        if cp.root != latest.root:
            raise RootConflictError(
                f"a checkpoint of size {cp.size} with another root than the one cosigned",
                field="root",
                expected=latest.root,
                found=cp.root,
            )
        if request.proof:
            raise ProofError("the proof between equal sizes must be empty", field="proof")
        return
    verify_consistency(latest.size, cp.size, latest.root, cp.root, request.proof)


def decide(
    request: AddCheckpoint, logs: Mapping[str, Sequence[Verifier]], latest: TreeHead | None
) -> tuple[Checkpoint, Note]:
    """Cosign or refuse: return the checkpoint (and its verified note), or raise.

    ``latest`` is the stored state of the checkpoint's origin (None: never cosigned).
    """
    cp, note = open_request(request, logs)
    check_consistent(request, cp, latest or EMPTY_TREE)
    return cp, note


def cosign_response(
    note: Note, name: str, private_key: Ed25519PrivateKey, timestamp: int
) -> tuple[bytes, bytes]:
    """Cosign a verified checkpoint note at ``timestamp`` (POSIX seconds).

    Returns the 200 body (the cosignature line) and the note to serve as the latest
    cosigned checkpoint: the log signatures that verified, then the cosignature.
    """
    signature = cosign(note.text, name, private_key, timestamp)
    served = Note(note.text, (*note.verified, signature)).encode()
    return signature.line().encode("utf-8"), served


def parse_cosignatures(body: bytes) -> tuple[NoteSignature, ...]:
    """The signature lines of a 200 answer (not verified: append them to the note and open it)."""
    if not body:
        raise FormatError("no cosignature lines", field="body")
    return parse_note(b"x\n\n" + body).signatures


def encode_size(size: int) -> bytes:
    """The 409 body: the latest cosigned size in decimal and a newline."""
    return f"{size}\n".encode("ascii")


def parse_size(body: bytes) -> int:
    """Parse a 409 ``text/x.tlog.size`` body."""
    if not body.endswith(b"\n"):
        raise FormatError("size body must end with a newline", field="body")
    return parse_uint(_ascii(body[:-1], "body"), field="body")


def status_of(error: LedgerError) -> int:
    """The HTTP status tlog-witness gives each refusal."""
    if isinstance(error, TooLargeError) and error.field == "body":
        return 413
    if isinstance(error, FormatError):
        return 400
    if isinstance(error, UnknownOriginError):
        return 404
    if isinstance(error, SignatureError):
        return 403
    if isinstance(error, SizeMismatchError | ConsistencyError):
        return 409
    return 422  # ProofError, RuleError: the request is well-formed but does not check
