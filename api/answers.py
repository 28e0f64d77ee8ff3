"""The answer to an accepted record (``POST /api/v1/records``), as JSON bytes.

One function renders it, for both places that do: the sequencing child
(``api.appender``) renders the answer of each record its batch appended, so that
the serving process, which runs every request's HTTP on one event loop, sends
those bytes as they are; the route renders the others (an identical resubmission,
or a sequencer without a child). The bytes are those FastAPI's ``JSONResponse``
gives the same document (compact, UTF-8).
"""

from __future__ import annotations

import json
from typing import Any

from ledger.core.encoding import b64encode


def accepted_document(
    *,
    index: int,
    leaf_hash: bytes,
    record_id: bytes,
    existing: bool,
    entry: bytes,
    receipt: bytes,
    checkpoint: bytes,
) -> dict[str, Any]:
    """The answer's document (``api.routes.schemas.RecordAccepted``)."""
    return {
        "index": index,
        "leaf_hash": leaf_hash.hex(),
        "record_id": record_id.hex(),
        "existing": existing,
        "entry": b64encode(entry),
        "receipt": receipt.decode("utf-8"),
        "checkpoint": checkpoint.decode("utf-8"),
    }


def render_json(doc: Any) -> bytes:
    """``doc`` as ``starlette.responses.JSONResponse`` renders it."""
    return json.dumps(
        doc, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode("utf-8")


__all__ = ["accepted_document", "render_json"]
