"""Check a receipt offline (docs/spec.md, "Checking a receipt", steps 1-4).

A receipt (``ledger.core.receipt``) is a signed checkpoint plus the inclusion proof
of one entry. :func:`verify_receipt_file` checks it against the user's
:class:`~ledger.verify.trust.Trust` (the checkpoint's signature, origin and any
witness quorum, then the proof against its root), given either the entry itself
(then also parsed strictly, its index compared with the receipt's and its
signatures verified) or only its leaf hash.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger.core import merkle
from ledger.core.checkpoint import Checkpoint
from ledger.core.entry import Entry, parse_entry
from ledger.core.errors import LedgerError, VerificationError
from ledger.core.receipt import parse_receipt, verify_receipt
from ledger.core.records import verify_signatures
from ledger.verify.errors import LocatedError
from ledger.verify.trust import Trust


@dataclass(frozen=True, slots=True)
class ReceiptResult:
    """A valid receipt: the entry's index, the checkpoint, and the entry if given."""

    index: int
    leaf_hash: bytes
    checkpoint: Checkpoint
    entry: Entry | None


def verify_receipt_file(
    data: bytes, trust: Trust, *, entry: bytes | None = None, leaf_hash: bytes | None = None
) -> ReceiptResult:
    """docs/spec.md, "Checking a receipt", steps 1-4, given the entry or its leaf hash.

    With the entry, it is also parsed strictly, its index must be the receipt's
    and its signatures must verify (a failure there is a
    :class:`~ledger.verify.errors.LocatedError` at the receipt's index).
    """
    if (entry is None) == (leaf_hash is None):
        raise ValueError("give exactly one of entry and leaf_hash")
    rc = parse_receipt(data)
    leaf = merkle.leaf_hash(entry) if entry is not None else leaf_hash
    assert leaf is not None
    cp = verify_receipt(rc, leaf, trust.verifiers, trust.origin, policy=trust.policy)
    parsed: Entry | None = None
    if entry is not None:
        parsed = parse_entry(entry)
        if parsed.index != rc.index:
            raise VerificationError(
                "the entry's index is not the receipt's",
                code="broken_chain",
                index=rc.index,
                field="index",
                expected=rc.index,
                found=parsed.index,
            )
        try:
            verify_signatures(parsed.record)
        except LedgerError as e:
            raise LocatedError.of(e, index=rc.index) from e
    return ReceiptResult(rc.index, leaf, cp, parsed)


__all__ = ["ReceiptResult", "verify_receipt_file"]
