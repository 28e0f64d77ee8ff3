"""The log as JSON, its entries, proofs and receipts (``/api/v1/log``, ``entries``, ...).

Everything here is computed from the committed tree through the storage's
``HashReader``; a client that distrusts the service checks the proofs against a
checkpoint it verified itself (the proofs are RFC 9162's, hashes leaf upwards).

- ``GET /api/v1/log``: origin, vkey, size, root and the signed checkpoint.
- ``GET /api/v1/entries/{index}``, ``GET /api/v1/entries/by-leaf/{leaf_hash}``: one
  entry, its bytes (base64) and its parsed fields.
- ``GET /api/v1/proofs/inclusion?index=|leaf_hash=&tree_size=``
- ``GET /api/v1/proofs/consistency?old_size=&new_size=``
- ``GET /api/v1/receipts/{index or leaf hash}``: the C2SP tlog-proof of an entry
  against the current checkpoint, as ``text/plain``.

Sizes beyond the log answer 400 ``invalid_parameter``; an entry or leaf hash the
log does not hold answers 404 ``not_found``.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from api import answers
from api.problems import ProblemError
from api.routes.deps import IMMUTABLE, SHORT, AppContext, ContextDep, hex32_param, uint_param
from api.routes.schemas import (
    EX_LEAF,
    EX_RECEIPT,
    ConsistencyProof,
    EntryInfo,
    InclusionProof,
    LogInfo,
    SignatureInfo,
    problem_responses,
)
from api.storage.base import LogHead
from ledger.core import merkle
from ledger.core.ed25519 import key_hash
from ledger.core.encoding import b64encode
from ledger.core.entry import parse_entry
from ledger.core.records import Body

router = APIRouter(prefix="/api/v1", tags=["log"])

TEXT = "text/plain; charset=utf-8"
_BASE64_FIELDS = frozenset({"key", "new_key"})

# Documented patterns (the routes check the values themselves: 400 invalid_parameter).
INDEX_PATTERN = r"^(0|[1-9][0-9]{0,17})$"
HEX64_PATTERN = r"^[0-9a-f]{64}$"
IndexPath = Annotated[
    str,
    Path(
        description="The entry's index, decimal without leading zeros.",
        json_schema_extra={"pattern": INDEX_PATTERN},
        examples=["4"],
    ),
]
LeafHashPath = Annotated[
    str,
    Path(
        description="RFC 9162 leaf hash, 64 lowercase hex digits.",
        json_schema_extra={"pattern": HEX64_PATTERN},
        examples=[EX_LEAF],
    ),
]
EntryPath = Annotated[
    str,
    Path(
        description="An index (decimal) or a leaf hash (64 lowercase hex digits).",
        json_schema_extra={"pattern": r"^(0|[1-9][0-9]{0,17}|[0-9a-f]{64})$"},
        examples=["4", EX_LEAF],
    ),
]


@router.get(
    "/log",
    summary="The log: origin, verifier key, size and checkpoint",
    response_model=LogInfo,
    responses=problem_responses(503),
)
def get_log(ctx: ContextDep, response: Response) -> LogInfo:
    """What a client needs to start: the vkey must still be checked out of band."""
    head = ctx.storage.head()
    response.headers["Cache-Control"] = SHORT
    return LogInfo(
        origin=ctx.origin,
        vkey=ctx.vkey,
        size=head.size,
        root=head.root.hex(),
        checkpoint=head.checkpoint.decode("utf-8"),
    )


# --- entries --------------------------------------------------------------------------


def _field_value(name: str, value: Any) -> Any:
    if isinstance(value, bytes):
        return b64encode(value) if name in _BASE64_FIELDS else value.hex()
    if isinstance(value, tuple):
        return [_field_value(name, v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    return value


def body_fields(body: Body) -> dict[str, Any]:
    """The body's fields spelled as in the record (ids hex, keys base64, text decoded)."""
    return {
        f.name: _field_value(f.name, getattr(body, f.name))
        for f in dataclasses.fields(body)
        if getattr(body, f.name) is not None
    }


def entry_info(index: int, data: bytes) -> EntryInfo:
    entry = parse_entry(data)
    record = entry.record
    return EntryInfo(
        index=index,
        leaf_hash=merkle.leaf_hash(data).hex(),
        prev=entry.prev.hex(),
        time_ms=entry.time_ms,
        entry=b64encode(data),
        record=record.encode().decode("utf-8"),
        record_id=record.record_id.hex(),
        type=record.body.TYPE,
        fields=body_fields(record.body),
        signatures=[
            SignatureInfo(public_key=b64encode(s.public_key), key_hash=key_hash(s.public_key).hex())
            for s in record.signatures
        ],
    )


def read_entry(ctx: AppContext, index: int) -> bytes:
    entries = ctx.storage.read_entries(index, index + 1)
    if not entries:
        raise ProblemError("not_found", f"The log has no entry {index}.", status=404, index=index)
    return entries[0]


def index_of_leaf(ctx: AppContext, leaf_hash: bytes) -> int:
    index = ctx.storage.index_of_leaf(leaf_hash)
    if index is None:
        raise ProblemError(
            "not_found", f"The log has no entry with leaf hash {leaf_hash.hex()}.", status=404
        )
    return index


_ENTRY_RESPONSES = problem_responses(400, 404, 422)


@router.get(
    "/entries/{index}",
    summary="An entry by index",
    response_model=EntryInfo,
    responses=_ENTRY_RESPONSES,
)
def get_entry(index: IndexPath, ctx: ContextDep, response: Response) -> EntryInfo:
    """The entry at `index`: its bytes (base64) and what they say. Entries never change."""
    i = uint_param(index, "index")
    info = entry_info(i, read_entry(ctx, i))
    response.headers["Cache-Control"] = IMMUTABLE
    return info


@router.get(
    "/entries/by-leaf/{leaf_hash}",
    summary="An entry by leaf hash",
    response_model=EntryInfo,
    responses=_ENTRY_RESPONSES,
)
def get_entry_by_leaf(leaf_hash: LeafHashPath, ctx: ContextDep, response: Response) -> EntryInfo:
    """The entry whose RFC 9162 leaf hash (hex) is `leaf_hash`."""
    i = index_of_leaf(ctx, hex32_param(leaf_hash, "leaf_hash"))
    info = entry_info(i, read_entry(ctx, i))
    response.headers["Cache-Control"] = IMMUTABLE
    return info


# --- proofs ---------------------------------------------------------------------------


def _size_param(value: int | None, name: str, head: LogHead, *, minimum: int) -> int:
    if value is None:
        return head.size
    if not minimum <= value <= head.size:
        raise ProblemError(
            "invalid_parameter",
            f"{name} must be between {minimum} and the log's size, {head.size}.",
            status=400,
            field=name,
            found=value,
        )
    return value


@router.get(
    "/proofs/inclusion",
    summary="An inclusion proof",
    response_model=InclusionProof,
    responses=problem_responses(400, 404, 422),
)
def get_inclusion_proof(
    ctx: ContextDep,
    index: Annotated[int | None, Query(ge=0, description="The entry's index.")] = None,
    leaf_hash: Annotated[
        str | None, Query(description="The entry's leaf hash, hex (instead of index).")
    ] = None,
    tree_size: Annotated[
        int | None, Query(ge=1, description="Size of the tree to prove against; default: now.")
    ] = None,
) -> InclusionProof:
    """RFC 9162 inclusion proof of one entry in the tree of `tree_size` entries."""
    if (index is None) == (leaf_hash is None):
        raise ProblemError(
            "invalid_parameter", "Give exactly one of index and leaf_hash.", status=400
        )
    head = ctx.storage.head()
    size = _size_param(tree_size, "tree_size", head, minimum=1)
    if leaf_hash is not None:
        leaf = hex32_param(leaf_hash, "leaf_hash")
        i = index_of_leaf(ctx, leaf)
    else:
        assert index is not None
        i = index
        leaf = b""
    if i >= size:
        raise ProblemError(
            "invalid_parameter",
            f"Entry {i} is not in the tree of size {size}.",
            status=400,
            field="index",
            found=i,
        )
    if not leaf:
        leaf = ctx.storage.read_hashes([merkle.stored_hash_index(0, i)])[0]
    proof = merkle.inclusion_proof(i, size, ctx.storage)
    return InclusionProof(
        index=i,
        tree_size=size,
        leaf_hash=leaf.hex(),
        root=merkle.tree_hash(size, ctx.storage).hex(),
        proof=[b64encode(h) for h in proof],
    )


@router.get(
    "/proofs/consistency",
    summary="A consistency proof",
    response_model=ConsistencyProof,
    responses=problem_responses(400, 422),
)
def get_consistency_proof(
    ctx: ContextDep,
    old_size: Annotated[int, Query(ge=0, description="The smaller tree size.")],
    new_size: Annotated[
        int | None, Query(ge=0, description="The larger tree size; default: now.")
    ] = None,
) -> ConsistencyProof:
    """RFC 9162 consistency proof that the tree of `old_size` is a prefix of `new_size`'s."""
    head = ctx.storage.head()
    new = _size_param(new_size, "new_size", head, minimum=0)
    old = _size_param(old_size, "old_size", head, minimum=0)
    if old > new:
        raise ProblemError(
            "invalid_parameter",
            f"old_size ({old}) must not exceed new_size ({new}).",
            status=400,
            field="old_size",
            found=old,
        )
    proof = merkle.consistency_proof(old, new, ctx.storage)
    return ConsistencyProof(
        old_size=old,
        new_size=new,
        old_root=merkle.tree_hash(old, ctx.storage).hex(),
        new_root=merkle.tree_hash(new, ctx.storage).hex(),
        proof=[b64encode(h) for h in proof],
    )


# --- receipts -------------------------------------------------------------------------


@router.get(
    "/receipts/{entry}",
    summary="The receipt of an entry (C2SP tlog-proof)",
    response_class=Response,
    responses={
        200: {
            "content": {"text/plain": {"example": EX_RECEIPT}},
            "description": "A c2sp.org/tlog-proof@v1 receipt against the current checkpoint.",
        },
        **problem_responses(400, 404),
    },
)
def get_receipt(entry: EntryPath, ctx: ContextDep) -> Response:
    """`entry` is an index (decimal) or a leaf hash (64 hex digits).

    The receipt proves the entry against the log's current checkpoint; verify it
    with the entry's bytes (GET /api/v1/entries/{index}) and the log's vkey.
    """
    if len(entry) == 64:
        i = index_of_leaf(ctx, hex32_param(entry, "entry"))
    else:
        i = uint_param(entry, "entry")
    head = ctx.storage.head()
    if i >= head.size:
        raise ProblemError("not_found", f"The log has no entry {i}.", status=404, index=i)
    receipt = answers.receipt(ctx.storage, i, head)
    return Response(receipt, media_type=TEXT, headers={"Cache-Control": SHORT})


__all__ = ["body_fields", "entry_info", "router"]
