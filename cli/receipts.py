"""Receipts: checked against the pinned log key, then saved beside their entry.

A receipt is a C2SP tlog-proof (``.tlog-proof``) of an *entry*, so it is saved with
the entry bytes it proves (docs/spec.md, "Receipts"): ``entry-17.tlog-proof`` and
``entry-17.txt``, which is what ``ledger-verify receipt entry-17.tlog-proof --entry
entry-17.txt --log-key VKEY`` takes.

Before saving, :func:`check_receipt` runs the verifier's own receipt check
(``ledger.verify.receipts.verify_receipt_file``: checkpoint signature by the trusted log key,
origin, inclusion proof of the entry's leaf hash, the entry parsed strictly and its
signatures), and then checks that the entry holds the record that was submitted, at
the index the server announced. Anything else is a :class:`~cli.errors.VerifyError`
(exit 5) and nothing is saved.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cli.errors import InputError, VerifyError
from ledger.core import merkle
from ledger.core.errors import LedgerError
from ledger.core.receipt import parse_receipt
from ledger.core.records import SignedRecord
from ledger.durable import write_atomic
from ledger.verify.receipts import ReceiptResult, verify_receipt_file
from ledger.verify.trust import Trust

RECEIPT_SUFFIX = ".tlog-proof"


@dataclass(frozen=True)
class SavedReceipt:
    """A verified receipt on disk."""

    index: int
    leaf_hash: str
    record_id: str
    record_type: str
    tree_size: int
    receipt_path: Path
    entry_path: Path
    existing: bool = False

    def as_json(self) -> dict[str, object]:
        return {
            "index": self.index,
            "type": self.record_type,
            "record_id": self.record_id,
            "leaf_hash": self.leaf_hash,
            "existing": self.existing,
            "receipt": str(self.receipt_path),
            "entry": str(self.entry_path),
            "tree_size": self.tree_size,
        }


def default_receipt_path(index: int, directory: Path | None = None) -> Path:
    return (directory if directory is not None else Path()) / f"entry-{index}{RECEIPT_SUFFIX}"


def entry_path_for(receipt_path: Path) -> Path:
    """Where the entry of a receipt goes: ``x.tlog-proof`` -> ``x.txt``."""
    name = receipt_path.name
    if name.endswith(RECEIPT_SUFFIX) and len(name) > len(RECEIPT_SUFFIX):
        return receipt_path.with_name(name[: -len(RECEIPT_SUFFIX)] + ".txt")
    return receipt_path.with_name(name + ".entry.txt")


def check_receipt(
    trust: Trust,
    receipt: bytes,
    entry: bytes,
    *,
    index: int | None = None,
    leaf_hash: str | None = None,
    record: SignedRecord | None = None,
) -> ReceiptResult:
    """Verify ``receipt`` for ``entry`` and that the entry is what the caller expects."""
    try:
        result = verify_receipt_file(receipt, trust, entry=entry)
    except LedgerError as e:
        raise VerifyError(
            f"the receipt does not verify against the log key {trust.verifiers[0].name} "
            f"({e} [{e.code}])"
        ) from None
    if index is not None and result.index != index:
        raise VerifyError(
            f"the server announced index {index}, but its receipt is for entry {result.index}"
        )
    if leaf_hash is not None and result.leaf_hash.hex() != leaf_hash:
        raise VerifyError(
            f"the server announced leaf hash {leaf_hash}, but the entry's is "
            f"{result.leaf_hash.hex()}"
        )
    assert result.entry is not None
    if record is not None and result.entry.record.record_id != record.record_id:
        raise VerifyError(
            f"entry {result.index} holds record {result.entry.record.record_id.hex()}, "
            f"not the record submitted ({record.record_id.hex()})"
        )
    return result


def _may_replace(path: Path, index: int) -> bool:
    """A file may be replaced only by a receipt of the same entry (a newer checkpoint)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    try:
        return parse_receipt(data).index == index
    except LedgerError:
        return False


def save_receipt(
    receipt_path: Path,
    receipt: bytes,
    entry: bytes,
    result: ReceiptResult,
    *,
    existing: bool = False,
) -> SavedReceipt:
    """Write a checked receipt and its entry (see the module docstring)."""
    entry_path = entry_path_for(receipt_path)
    if not _may_replace(receipt_path, result.index):
        raise InputError(
            f"{receipt_path} exists and is not a receipt of entry {result.index}; "
            "refusing to overwrite it (choose another --receipt path)"
        )
    if entry_path.exists() and entry_path.read_bytes() != entry:
        raise InputError(
            f"{entry_path} exists and holds something else; refusing to overwrite it "
            "(choose another --receipt path)"
        )
    try:
        receipt_path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(entry_path, entry)
        write_atomic(receipt_path, receipt)
    except OSError as e:
        raise InputError(f"cannot save the receipt in {receipt_path}: {e.strerror or e}") from None
    assert result.entry is not None
    return SavedReceipt(
        index=result.index,
        leaf_hash=result.leaf_hash.hex(),
        record_id=result.entry.record.record_id.hex(),
        record_type=result.entry.record.body.TYPE,
        tree_size=result.checkpoint.size,
        receipt_path=receipt_path,
        entry_path=entry_path,
        existing=existing,
    )


def leaf_hash_hex(entry: bytes) -> str:
    return merkle.leaf_hash(entry).hex()


__all__ = [
    "RECEIPT_SUFFIX",
    "SavedReceipt",
    "check_receipt",
    "default_receipt_path",
    "entry_path_for",
    "leaf_hash_hex",
    "save_receipt",
]
