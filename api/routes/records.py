"""Submitting records: ``POST /api/v1/records`` and ``POST /api/v1/records/batch``.

A record is the canonical text of docs/spec.md ("Records"), posted as
``text/plain; charset=utf-8`` (or ``application/json`` as ``{"record": "<text>"}``).
The service, in order:

1. reads the body (at most ``max_body_bytes``; a record longer than 65,385 bytes
   answers 413 ``entry_too_large``);
2. parses it strictly (``ledger.core.records.parse_record``: 400 ``malformed``, or 422
   ``missing_signature``...), checks its ``log`` is this log (422 ``wrong_log``) and
   its signers (``ledger.core.records.check_signers``: 422 ``wrong_signer``...);
3. hands it to the sequencer (``api.sequencing``), whose appender verifies its
   signatures under the Ed25519 acceptance rule (422 ``bad_signature``), applies the
   semantic rules against the log in the batch's transaction and answers after the
   commit and the checkpoint's publication: 409 for a record that
   conflicts with the log's state (``already_endorsed``, ``already_registered``,
   ``not_endorsed``, ``replay``, ``key_reused``, ``already_revoked``), 422 for one
   that can never be sequenced as it is (``clock_skew``, ``too_old``,
   ``unknown_signatory``, ``unknown_statement``, ``key_revoked``, ``key_rotated``,
   ``wrong_key``, ``unknown_key``); 503 ``overloaded`` with Retry-After when the
   queue is full.

``unknown_statement`` is 422, not 404: the resource addressed, ``/api/v1/records``,
exists; what is unknown is a statement the body refers to.

A sequenced record answers **201** with its index, leaf hash, record id, the entry
bytes and a C2SP tlog-proof receipt against the checkpoint committed with it. An
identical resubmission (same record id: the body's SHA-256) answers **200** with
the existing entry and a receipt against the current checkpoint; nothing is
appended twice.

The batch form takes a JSON list of record texts (or ``{"records": [...]}``), at most
``max_batch_records``, and answers 200 with one result per record in order; a
record's failure does not stop the others. Receipts are left out unless asked for
(``?receipts=true``): a bulk import fetches them later if it needs them.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from api import answers
from api.problems import ProblemError, from_ledger_error, sentence, status_for
from api.routes.deps import AppContext, get_context
from api.routes.schemas import (
    EX_ENDORSEMENT,
    BatchItem,
    BatchResult,
    BatchSubmission,
    RecordAccepted,
    RecordSubmission,
    problem_responses,
)
from api.sequencing.queue import Sequencer, SequencerStoppedError
from api.storage.base import Appended, Rejected
from ledger.core.errors import LedgerError
from ledger.core.records import (
    MAX_RECORD_SIZE,
    SignedRecord,
    check_signers,
    parse_record,
)

router = APIRouter(prefix="/api/v1", tags=["records"])

BATCH_PATH = "/api/v1/records/batch"
JSON = "application/json"
_TEXT_CHARSETS = (None, "utf-8", "utf8", "us-ascii")


def _media_type(request: Request) -> tuple[str, str | None]:
    header = request.headers.get("content-type")
    if header is None:
        return "text/plain", None
    media, *params = (p.strip() for p in header.split(";"))
    charset = None
    for p in params:
        key, _, value = p.partition("=")
        if key.strip().lower() == "charset":
            charset = value.strip().strip('"').lower()
    return media.lower(), charset


def _unsupported(found: str, allowed: str) -> ProblemError:
    return ProblemError(
        "unsupported_media_type",
        f"Send the record as {allowed}.",
        status=415,
        found=found[:100],
    )


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # JSONDecodeError, bad UTF-8, absurd nesting
        raise ProblemError(
            "malformed_json", "The request body is not valid JSON.", status=400
        ) from None


def _utf8(text: str, where: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a JSON \\ud800 escape
        raise ProblemError("malformed", f"{where} is not valid Unicode text.", status=400) from None


def record_bytes(media: str, charset: str | None, raw: bytes) -> bytes:
    """The record's bytes from a request body of type ``media``."""
    if media == "text/plain":
        if charset not in _TEXT_CHARSETS:
            raise _unsupported(f"charset={charset}", "UTF-8 text (text/plain; charset=utf-8)")
        return raw
    if media == "application/json":
        doc = _json(raw)
        if (
            not isinstance(doc, dict)
            or set(doc) != {"record"}
            or not isinstance(doc["record"], str)
        ):
            raise ProblemError(
                "invalid_request",
                'The JSON body must be an object {"record": "<the record text>"}.',
                status=422,
            )
        return _utf8(doc["record"], "The record")
    raise _unsupported(media, "text/plain; charset=utf-8, or application/json")


def check_record(ctx: AppContext, data: bytes) -> SignedRecord:
    """Parse strictly and check the log and the signers; raise ProblemError (counted in
    the metrics). The Ed25519 signatures are verified by the sequencer's appender (in
    its own process, off this one's GIL: ``api.sequencing.child``), which answers a
    bad one with the same code and status."""
    try:
        if len(data) > MAX_RECORD_SIZE:
            raise ProblemError(
                "entry_too_large",
                f"The record is {len(data)} bytes; at most {MAX_RECORD_SIZE} fit in a log entry.",
                status=413,
                expected=MAX_RECORD_SIZE,
                found=len(data),
            )
        try:
            record = parse_record(data)
            if record.body.log != ctx.origin:
                raise ProblemError(
                    "wrong_log",
                    f"The record is for the log {record.body.log!r}; this log is {ctx.origin!r}.",
                    status=422,
                    field="log",
                    expected=ctx.origin,
                    found=record.body.log,
                )
            check_signers(record)
        except LedgerError as e:
            raise from_ledger_error(e) from None
        except ValueError as e:  # a parser bug must still not answer 500
            raise ProblemError("malformed", f"The record is malformed: {e}.", status=400) from None
    except ProblemError as p:
        ctx.metrics.observe_rejected(p.code)
        raise
    return record


def _sequencer(ctx: AppContext) -> Sequencer:
    if ctx.sequencer is None:
        raise SequencerStoppedError("the sequencer is not running")
    return ctx.sequencer


def _rejected(r: Rejected) -> ProblemError:
    return ProblemError(
        r.code,
        sentence(r.message),
        status=status_for(r.code, 422),
        field=r.field,
        expected=r.expected,
        found=r.found,
    )


_RECORD_BODY = {
    "requestBody": {
        "required": True,
        "description": "One signed record (docs/spec.md, Records).",
        "content": {
            "text/plain": {"schema": {"type": "string"}, "example": EX_ENDORSEMENT},
            "application/json": {
                "schema": RecordSubmission.model_json_schema(),
                "example": {"record": EX_ENDORSEMENT},
            },
        },
    }
}

_BATCH_BODY = {
    "requestBody": {
        "required": True,
        "description": 'A JSON list of record texts, or {"records": [...]}.',
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {"type": "array", "items": {"type": "string"}},
                        BatchSubmission.model_json_schema(),
                    ]
                },
                "example": [EX_ENDORSEMENT],
            }
        },
    }
}


@router.post(
    "/records",
    summary="Submit a signed record",
    status_code=201,
    response_model=None,
    openapi_extra=_RECORD_BODY,
    responses={
        201: {"model": RecordAccepted, "description": "Sequenced: in the log, with a receipt."},
        200: {
            "model": RecordAccepted,
            "description": "Already in the log (identical record): the existing entry.",
        },
        **problem_responses(400, 409, 413, 415, 422, 429, 503),
    },
)
async def submit_record(request: Request) -> Response:
    """Sequence one record and answer with its index and a receipt (see the module text)."""
    # Not a ContextDep: FastAPI runs a sync dependency in the thread pool, a round trip
    # that costs more than all the rest of the request's checks.
    ctx = get_context(request)
    media, charset = _media_type(request)
    if media not in ("text/plain", "application/json"):  # before reading the body
        raise _unsupported(media, "text/plain; charset=utf-8, or application/json")
    data = record_bytes(media, charset, await request.body())
    record = check_record(ctx, data)
    result = (await _sequencer(ctx).submit_on_loop(record))[0]
    if isinstance(result, Rejected):
        raise _rejected(result)
    location = {"Location": f"/api/v1/entries/{result.index}"}
    if answers.held(result):  # no I/O: stay on the event loop
        accepted = answers.accepted_document(None, record.record_id, result)
    else:
        accepted = await run_in_threadpool(
            answers.accepted_document, ctx.storage, record.record_id, result
        )
    return Response(
        answers.render_json(accepted),
        status_code=200 if result.existing else 201,
        headers=location,
        media_type=JSON,
    )


def _batch_texts(ctx: AppContext, raw: bytes) -> list[Any]:
    doc = _json(raw)
    if isinstance(doc, dict) and set(doc) == {"records"}:
        doc = doc["records"]
    if not isinstance(doc, list):
        raise ProblemError(
            "invalid_request",
            'The JSON body must be a list of record texts, or {"records": [...]}.',
            status=422,
        )
    limit = ctx.settings.max_batch_records
    if not doc:
        raise ProblemError("invalid_request", "The batch holds no record.", status=422)
    if len(doc) > limit:
        raise ProblemError(
            "too_many_records",
            f"The batch holds {len(doc)} records; at most {limit} are taken at once.",
            status=413,
            expected=limit,
            found=len(doc),
        )
    return doc


def _check_batch(
    ctx: AppContext, raw: bytes
) -> tuple[list[BatchItem | None], list[tuple[int, SignedRecord]]]:
    texts = _batch_texts(ctx, raw)
    items: list[BatchItem | None] = [None] * len(texts)
    valid: list[tuple[int, SignedRecord]] = []
    for i, text in enumerate(texts):
        try:
            if not isinstance(text, str):
                raise ProblemError(
                    "invalid_request", "Each record must be a JSON string.", status=422
                )
            valid.append((i, check_record(ctx, _utf8(text, "The record"))))
        except ProblemError as p:
            items[i] = BatchItem(status=p.status, code=p.code, detail=p.detail)
    return items, valid


@router.post(
    "/records/batch",
    summary="Submit many records (bulk import)",
    response_model=BatchResult,
    openapi_extra=_BATCH_BODY,
    responses=problem_responses(400, 413, 415, 422, 429, 503),
)
async def submit_batch(
    request: Request,
    receipts: Annotated[
        bool, Query(description="Include each sequenced record's receipt.")
    ] = False,
) -> BatchResult:
    """Sequence up to `max_batch_records` records, in order; one result per record.

    Results: `status` 201 (appended), 200 (already in the log) or the problem's status
    with its `code` and `detail`. Resubmitting a whole batch is always safe.
    """
    ctx = get_context(request)
    media, _ = _media_type(request)
    if media != "application/json":
        raise _unsupported(media, "application/json: a list of record texts")
    raw = await request.body()
    items, valid = await run_in_threadpool(_check_batch, ctx, raw)
    checkpoint = b""
    tree_size = -1
    if valid:
        results = await asyncio.wrap_future(
            _sequencer(ctx).submit_many_async([r for _, r in valid])
        )
        appended: list[tuple[int, Appended]] = []
        for (i, record), result in zip(valid, results, strict=True):
            if isinstance(result, Rejected):
                p = _rejected(result)
                items[i] = BatchItem(status=p.status, code=p.code, detail=p.detail)
                continue
            items[i] = BatchItem(
                status=200 if result.existing else 201,
                index=result.index,
                leaf_hash=result.leaf_hash.hex(),
                record_id=record.record_id.hex(),
            )
            appended.append((i, result))
            if result.published.size > tree_size:
                tree_size, checkpoint = result.published.size, result.published.checkpoint
        if receipts and appended:

            def add_receipts() -> None:
                for i, a in appended:
                    item = items[i]
                    assert item is not None
                    item.receipt = answers.appended_receipt(ctx.storage, a).decode()

            await run_in_threadpool(add_receipts)
    if not checkpoint:
        checkpoint = (await run_in_threadpool(ctx.storage.head)).checkpoint
    return BatchResult(
        results=[item for item in items if item is not None],
        checkpoint=checkpoint.decode("utf-8"),
    )


__all__ = ["BATCH_PATH", "check_record", "record_bytes", "router"]
