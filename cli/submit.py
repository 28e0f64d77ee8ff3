"""Signing, ordering and submitting records; reporting what the log answered.

Signatures can be collected one at a time and in any order (``ledger sign``), since
each one signs the same body bytes (docs/spec.md, "Signatures"). The spec fixes
their order in a complete record, though: a statement's follow its authors, a
rotation's is the old key then ``new_key``. :func:`order_signatures` puts them in
that order before submission, matching keys to authors by key hash, and, for a key
whose hash is not an author id (an author that rotated its key), by asking the
server which signatory holds it.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from cli.client import LedgerClient
from cli.errors import InputError, RefusedError, UnreachableError, VerifyError
from cli.output import emit_json, note, progress
from cli.receipts import SavedReceipt, check_receipt, default_receipt_path, save_receipt
from cli.session import Session
from keys.signer import Signer
from ledger.core import ed25519
from ledger.core.ed25519 import key_hash
from ledger.core.errors import LedgerError
from ledger.core.records import (
    Body,
    Registration,
    Revocation,
    Rotation,
    SignedRecord,
    Statement,
    encode_body,
    sign_record,
)

#: Records per batch request in bulk operations (the server takes up to 1000 by default).
BATCH_SIZE = 200
#: Problem codes of a batch too large for the server: retried in smaller batches.
SHRINK_CODES = frozenset({"too_many_records", "body_too_large"})

Lookup = Callable[[bytes], bytes | None]


def now() -> int:
    return int(time.time())


def draft_of(body: Body) -> SignedRecord:
    """An unsigned record of ``body`` (FormatError for an invalid field)."""
    return SignedRecord(body, encode_body(body))


def sign(record: Body | SignedRecord, signer: Signer) -> SignedRecord:
    """Add ``signer``'s signature (checked at once against its public key)."""
    return sign_record(record, signer.sign, signer.public_key)


def signatory_of(client: LedgerClient | None, public_key: bytes) -> bytes:
    """The signatory id of a key: its own hash, unless the server knows it under another
    signatory (a key that a rotation introduced)."""
    own = key_hash(public_key)
    if client is None:
        return own
    found = server_lookup(client)(own)
    return own if found is None else found


def server_lookup(client: LedgerClient) -> Lookup:
    """Key hash -> id of the signatory that has (or had) that key, asking the server."""

    def lookup(khash: bytes) -> bytes | None:
        doc = client.signatory(khash.hex())
        if doc is None:
            return None
        sid = doc.get("signatory")
        if not isinstance(sid, str) or len(sid) != 64:
            raise UnreachableError("the server answered a malformed signatory id")
        try:
            return bytes.fromhex(sid)
        except ValueError:
            raise UnreachableError("the server answered a malformed signatory id") from None

    return lookup


def author_slots(record: SignedRecord, lookup: Lookup | None) -> list[int | None]:
    """For each signature of a statement, the index of the author it signs for (or None)."""
    body = record.body
    assert isinstance(body, Statement)
    slots: list[int | None] = []
    for sig in record.signatures:
        khash = key_hash(sig.public_key)
        sid: bytes | None = khash
        if khash not in body.authors and lookup is not None:
            sid = lookup(khash)
        slots.append(body.authors.index(sid) if sid in body.authors else None)
    return slots


def order_signatures(record: SignedRecord, lookup: Lookup | None) -> SignedRecord:
    """``record`` with its signatures in the spec's order, as far as can be told.

    With ``lookup`` (online), every statement signature must belong to an author;
    without it, signatures whose author is unknown keep their place at the end.
    """
    body = record.body
    sigs = list(record.signatures)
    if isinstance(body, Statement):
        slots = author_slots(record, lookup)
        if lookup is not None:
            for sig, slot in zip(sigs, slots, strict=True):
                if slot is None:
                    raise InputError(
                        f"the draft is signed by key {key_hash(sig.public_key).hex()}, "
                        "which belongs to none of the statement's authors"
                    )
        if len({s for s in slots if s is not None}) != len([s for s in slots if s is not None]):
            raise InputError("two signatures of the draft are for the same author")
        order = sorted(range(len(sigs)), key=lambda i: (slots[i] is None, slots[i] or 0, i))
        sigs = [sigs[i] for i in order]
    elif isinstance(body, Rotation):
        sigs.sort(key=lambda s: s.public_key == body.new_key)
    return SignedRecord(record.body, record.body_bytes, tuple(sigs))


def missing_signers(record: SignedRecord) -> list[str]:
    """Who still has to sign a draft, in words."""
    body = record.body
    signed = {s.public_key for s in record.signatures}
    if isinstance(body, Statement):
        hashes = {key_hash(k) for k in signed}
        todo = [f"author {a.hex()}" for a in body.authors if a not in hashes]
        # An author that rotated its key signs with a key whose hash is not its id, so
        # the authors not matched may be more than the signatures missing.
        need = len(body.authors) - len(record.signatures)
        return todo if len(todo) == need else [f"{need} of the authors " + ", ".join(todo)]
    if isinstance(body, Rotation):
        todo = [] if body.new_key in signed else ["the new key"]
        if not signed - {body.new_key}:
            todo.insert(0, f"the current key of signatory {body.signatory.hex()}")
        return todo
    if isinstance(body, Registration):
        return ["the key it registers"]
    if isinstance(body, Revocation):
        return ["the revoked key, or the signatory's current key"]
    return ["the signatory's current key"]


def verify_existing_signatures(record: SignedRecord) -> None:
    """Check every signature a draft carries (a draft may have travelled)."""
    for sig in record.signatures:
        try:
            ed25519.verify(sig.public_key, sig.signature, record.body_bytes)
        except LedgerError:
            raise VerifyError(
                f"the signature by key {key_hash(sig.public_key).hex()} does not verify: "
                "the draft was changed after it was signed"
            ) from None


# --- submitting ------------------------------------------------------------------------


def _b64(doc: dict[str, Any], name: str) -> bytes:
    value = doc.get(name)
    if not isinstance(value, str):
        raise UnreachableError(f"the server's answer has no {name!r}")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        raise UnreachableError(f"the server's {name!r} is not base64") from None


def submit_record(
    session: Session,
    record: SignedRecord,
    *,
    receipt_path: Path | None = None,
    receipts_dir: Path | None = None,
) -> SavedReceipt:
    """Submit one complete record; verify and save its receipt; return where."""
    answer = session.client.submit(record.encode())
    try:
        index = int(answer["index"])
        leaf = str(answer["leaf_hash"])
        receipt = str(answer["receipt"]).encode("utf-8")
    except (KeyError, TypeError, ValueError):
        raise UnreachableError(
            "the server's answer to a submission lacks index or receipt"
        ) from None
    entry = _b64(answer, "entry")
    result = check_receipt(
        session.trust, receipt, entry, index=index, leaf_hash=leaf, record=record
    )
    path = receipt_path or default_receipt_path(index, receipts_dir)
    return save_receipt(path, receipt, entry, result, existing=bool(answer.get("existing")))


def report(
    saved: SavedReceipt,
    *,
    as_json: bool,
    origin: str,
    extra: dict[str, Any] | None = None,
    headline: str | None = None,
) -> None:
    """What every write prints: the index first, then where the receipt is."""
    if as_json:
        emit_json({**saved.as_json(), "log": origin, **(extra or {})})
        return
    if headline is not None:
        click.echo(headline)
    elif saved.existing:
        click.echo(
            f"already in the log: {saved.record_type} record at index {saved.index} "
            "(nothing was appended)"
        )
    else:
        click.echo(f"logged: {saved.record_type} record at index {saved.index} in {origin}")
    for key, value in (extra or {}).items():
        click.echo(f"  {key.replace('_', ' ')}: {value}")
    click.echo(f"  record id: {saved.record_id}")
    click.echo(f"  leaf hash: {saved.leaf_hash}")
    click.echo(
        f"  receipt:   {saved.receipt_path} (verified against the pinned log key, "
        f"tree size {saved.tree_size})"
    )
    click.echo(f"  entry:     {saved.entry_path}")


@dataclass
class BatchOutcome:
    """One record of a batch: its receipt if logged, else the problem."""

    label: str
    record: SignedRecord
    saved: SavedReceipt | None = None
    status: int = 0
    code: str | None = None
    detail: str | None = None

    @property
    def ok(self) -> bool:
        return self.saved is not None


def submit_batches(
    session: Session,
    items: Sequence[tuple[str, SignedRecord]],
    *,
    receipts_dir: Path,
    description: str,
    batch_size: int = BATCH_SIZE,
    show_progress: bool = True,
) -> list[BatchOutcome]:
    """Submit many records through the batch endpoint, with a progress bar.

    Each logged record's receipt is verified with the entry bytes read from the
    log's entry bundles and saved in ``receipts_dir``; refused records carry the
    server's code and sentence.
    """
    outcomes: list[BatchOutcome] = []
    with progress() as bar:
        task = bar.add_task(description, total=len(items), visible=show_progress)
        start = 0
        while start < len(items):
            chunk = items[start : start + batch_size]
            try:
                answer = session.client.submit_batch([r.encode() for _, r in chunk], receipts=True)
            except RefusedError as e:
                # A server configured for smaller batches: halve them and go on.
                if e.code in SHRINK_CODES and batch_size > 1:
                    batch_size = max(1, batch_size // 2)
                    continue
                raise
            outcomes.extend(_settle(session, chunk, answer["results"], receipts_dir))
            start += len(chunk)
            bar.advance(task, len(chunk))
    return outcomes


def _settle(
    session: Session,
    chunk: Sequence[tuple[str, SignedRecord]],
    results: list[dict[str, Any]],
    receipts_dir: Path,
) -> list[BatchOutcome]:
    """The outcome of each record of one batch answer, receipts checked and saved."""
    indexes = [int(res["index"]) for res in results if res.get("index") is not None]
    entries = session.client.entries_at(indexes)
    outcomes = []
    for (label, record), res in zip(chunk, results, strict=True):
        outcome = BatchOutcome(label, record, status=int(res.get("status", 0)))
        if res.get("index") is None:
            outcome.code = str(res.get("code") or "unknown")
            outcome.detail = str(res.get("detail") or "")
        else:
            index = int(res["index"])
            receipt = str(res.get("receipt") or "").encode("utf-8")
            result = check_receipt(
                session.trust,
                receipt,
                entries[index],
                index=index,
                leaf_hash=str(res.get("leaf_hash")),
                record=record,
            )
            outcome.saved = save_receipt(
                default_receipt_path(index, receipts_dir),
                receipt,
                entries[index],
                result,
                existing=outcome.status == 200,
            )
        outcomes.append(outcome)
    return outcomes


def summarize_refusals(outcomes: Sequence[BatchOutcome], *, limit: int = 10) -> None:
    refused = [o for o in outcomes if not o.ok]
    for o in refused[:limit]:
        note(f"  refused: {o.label}: {o.detail} (code {o.code}, HTTP {o.status})")
    if len(refused) > limit:
        note(f"  ... and {len(refused) - limit} more")


__all__ = [
    "BATCH_SIZE",
    "BatchOutcome",
    "author_slots",
    "draft_of",
    "missing_signers",
    "now",
    "order_signatures",
    "report",
    "server_lookup",
    "sign",
    "signatory_of",
    "submit_batches",
    "submit_record",
    "summarize_refusals",
    "verify_existing_signatures",
]
