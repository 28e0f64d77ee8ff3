"""Receipts: offline proofs that an entry is in the log (C2SP tlog-proof).

A receipt (``.tlog-proof`` file, c2sp.org/tlog-proof, "Format") is::

    c2sp.org/tlog-proof@v1
    [extra <base64 of opaque bytes>]
    index <leaf index, decimal>
    <inclusion proof hash, base64>       (zero or more, leaf's sibling first)
    <empty line>
    <the signed checkpoint, verbatim, cosignatures included>

:func:`parse_receipt` is strict: the exact header, a canonical decimal index,
canonical base64 for ``extra`` and for each 32-byte hash, at most
:data:`MAX_PROOF_HASHES` hashes (a tree of 2^63 - 1 leaves needs 63), and a
checkpoint that parses as a signed note with checkpoint text. What it accepts,
:meth:`Receipt.encode` writes back byte for byte. The ``extra`` data is not
authenticated: nothing here trusts it.

:func:`verify_receipt` follows docs/spec.md, "Checking a receipt", steps 2-3:
verify the checkpoint with the trusted log key(s) and origin
(:func:`ledger.core.checkpoint.open_checkpoint`), check the index is below its size,
then verify the RFC 9162 inclusion proof of the leaf hash against its root.
Cosignatures in the checkpoint are ignored unless a policy asks for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ledger.core.checkpoint import Checkpoint, open_checkpoint, parse_checkpoint_text
from ledger.core.encoding import MAX_UINT63, b64decode_strict, b64encode, parse_uint
from ledger.core.errors import FormatError, ProofError, TooLargeError
from ledger.core.merkle import verify_inclusion
from ledger.core.note import MAX_NOTE_SIZE, Verifier, parse_note

if TYPE_CHECKING:
    from ledger.core.policy import Policy

__all__ = [
    "HEADER",
    "MAX_PROOF_HASHES",
    "MAX_RECEIPT_SIZE",
    "Receipt",
    "parse_receipt",
    "verify_receipt",
]

HEADER = "c2sp.org/tlog-proof@v1"
MAX_PROOF_HASHES = 63
"""An inclusion proof in a tree of at most 2^63 - 1 leaves has at most 63 hashes."""
MAX_RECEIPT_SIZE = MAX_NOTE_SIZE + 64 * 1024
"""The largest receipt read: a maximal checkpoint note, the proof and room for ``extra``."""


@dataclass(frozen=True)
class Receipt:
    """A tlog-proof: leaf index, inclusion proof, signed checkpoint and optional extra data."""

    index: int
    proof: tuple[bytes, ...]
    checkpoint: bytes
    extra: bytes | None = None

    def __post_init__(self) -> None:
        # Accept any sequence of hashes, keep a tuple: receipts compare equal by value.
        object.__setattr__(self, "proof", tuple(self.proof))
        if not 0 <= self.index <= MAX_UINT63:
            raise FormatError("leaf index out of range", field="index", found=self.index)
        if len(self.proof) > MAX_PROOF_HASHES:
            raise FormatError(
                f"inclusion proof longer than {MAX_PROOF_HASHES} hashes",
                field="proof",
                found=len(self.proof),
            )
        for h in self.proof:
            if len(h) != 32:
                raise FormatError("proof hash must be 32 bytes", field="proof", found=len(h))

    def encode(self) -> bytes:
        lines = [HEADER]
        if self.extra is not None:
            lines.append(f"extra {b64encode(self.extra)}")
        lines.append(f"index {self.index}")
        lines.extend(b64encode(h) for h in self.proof)
        return ("\n".join(lines) + "\n\n").encode("ascii") + self.checkpoint


def parse_receipt(data: bytes) -> Receipt:
    """Parse a tlog-proof strictly; the checkpoint must parse, but is not verified here."""
    if len(data) > MAX_RECEIPT_SIZE:
        raise TooLargeError(
            f"receipt larger than {MAX_RECEIPT_SIZE} bytes", field="receipt", found=len(data)
        )
    split = data.find(b"\n\n")
    if split < 0:
        raise FormatError("receipt has no empty line before the checkpoint", field="receipt")
    try:
        head = data[:split].decode("ascii")
    except UnicodeDecodeError:
        raise FormatError("receipt header lines are not ASCII", field="receipt") from None
    checkpoint = data[split + 2 :]
    lines = head.split("\n")
    if lines[0] != HEADER:
        raise FormatError(
            "not a tlog-proof receipt", field="header", expected=HEADER, found=lines[0][:100]
        )
    pos = 1
    extra = None
    if pos < len(lines) and lines[pos].startswith("extra "):
        extra = b64decode_strict(lines[pos][len("extra ") :], field="extra")
        pos += 1
    if pos >= len(lines) or not lines[pos].startswith("index "):
        raise FormatError("receipt has no index line", field="index")
    index = parse_uint(lines[pos][len("index ") :], field="index")
    hashes = lines[pos + 1 :]
    if len(hashes) > MAX_PROOF_HASHES:
        raise FormatError(
            f"inclusion proof longer than {MAX_PROOF_HASHES} hashes",
            field="proof",
            found=len(hashes),
        )
    proof = tuple(b64decode_strict(h, field="proof", length=32) for h in hashes)
    # The checkpoint is kept verbatim, but it must be a checkpoint.
    parse_checkpoint_text(parse_note(checkpoint).text)
    return Receipt(index, proof, checkpoint, extra)


def verify_receipt(
    receipt: Receipt,
    leaf_hash: bytes,
    verifiers: Sequence[Verifier],
    origin: str | None,
    *,
    policy: Policy | None = None,
) -> Checkpoint:
    """Check that ``leaf_hash`` is leaf ``receipt.index`` of a checkpoint signed by a trusted log.

    1. Verify the checkpoint with ``verifiers`` and ``origin`` (signature by a log key
       named after the origin; see :func:`ledger.core.checkpoint.open_checkpoint`); with a
       ``policy``, its witness quorum must be met too.
    2. The index must be below the checkpoint's tree size (ProofError).
    3. The RFC 9162 inclusion proof must lead from ``leaf_hash`` to the checkpoint's
       root (ProofError, RootMismatchError).

    Returns the verified checkpoint.
    """
    cp, note = open_checkpoint(receipt.checkpoint, verifiers, origin)
    if policy is not None:
        policy.check_quorum(note)
    if receipt.index >= cp.size:
        raise ProofError(
            "receipt index is not below the checkpoint's tree size",
            field="index",
            expected=f"< {cp.size}",
            found=receipt.index,
        )
    verify_inclusion(leaf_hash, receipt.index, cp.size, receipt.proof, cp.root)
    return cp
