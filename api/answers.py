"""The one place where an accepted record's answer and a receipt are built.

A receipt is a C2SP tlog-proof (``ledger.core.receipt``): the entry's index, its
inclusion proof and the signed checkpoint it is proved against. The answer to an
accepted record (``POST /api/v1/records``, ``api.routes.schemas.RecordAccepted``)
carries the entry bytes and a receipt against the checkpoint published after its
batch (:class:`api.storage.base.Appended`); ``GET /api/v1/receipts/...`` and the
batch route's ``?receipts=true`` build theirs here too.

A new entry's result holds its bytes and its proof (:func:`held`): its answer needs
no read, and the route builds it on the event loop. Any other (an identical
resubmission, a newer checkpoint published by another process) reads the entry and
the hashes of its proof (:func:`accepted_document` with a reader), in the thread pool.
The JSON bytes are those FastAPI's ``JSONResponse`` gives the same document.
"""

from __future__ import annotations

import json
from typing import Any

from api.storage.base import Appended, LogHead, LogReader
from ledger.core import merkle
from ledger.core.encoding import b64encode
from ledger.core.receipt import Receipt


def receipt(log: LogReader, index: int, head: LogHead) -> bytes:
    """The tlog-proof of entry ``index`` against the published checkpoint ``head``."""
    proof = merkle.inclusion_proof(index, head.size, log)
    return Receipt(index, tuple(proof), head.checkpoint).encode()


def held(a: Appended) -> bool:
    """True when the result holds all its answer needs (no read)."""
    return a.entry is not None and a.proof is not None


def appended_receipt(log: LogReader | None, a: Appended) -> bytes:
    """The receipt of a sequenced record, from what it holds or (``log``) read."""
    if a.proof is not None:
        return Receipt(a.index, a.proof, a.published.checkpoint).encode()
    if log is None:
        raise ValueError("the result holds no proof: a reader is needed")
    return receipt(log, a.index, a.published)


def accepted_document(log: LogReader | None, record_id: bytes, a: Appended) -> dict[str, Any]:
    """The answer's document; ``log`` is read for what the result does not hold
    (None: it must hold all, :func:`held`)."""
    entry = a.entry
    if entry is None:
        if log is None:
            raise ValueError("the result holds no entry: a reader is needed")
        (entry,) = log.read_entries(a.index, a.index + 1)
    return {
        "index": a.index,
        "leaf_hash": a.leaf_hash.hex(),
        "record_id": record_id.hex(),
        "existing": a.existing,
        "entry": b64encode(entry),
        "receipt": appended_receipt(log, a).decode("utf-8"),
        "checkpoint": a.published.checkpoint.decode("utf-8"),
    }


def render_json(doc: Any) -> bytes:
    """``doc`` as ``starlette.responses.JSONResponse`` renders it."""
    return json.dumps(
        doc, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode("utf-8")


__all__ = ["accepted_document", "appended_receipt", "held", "receipt", "render_json"]
