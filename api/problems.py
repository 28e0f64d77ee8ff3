"""Errors as RFC 9457 problem details (``application/problem+json``).

Every error the service answers is one JSON object::

    {"type": "urn:endorsement-ledger:problem:already_endorsed",
     "title": "Already endorsed",
     "status": 409,
     "detail": "entry 12: field 'statement': signatory already endorses this statement",
     "code": "already_endorsed"}

``code`` is the stable, machine-readable name of the problem (the error codes of
docs/spec.md for records that break a rule, and the codes listed in
:data:`STATUS_BY_CODE` for the rest); ``type`` is the same code as a URN, as RFC 9457
section 3.1.1 wants a URI; ``detail`` is a sentence a person understands. Problems
about a record may add ``field``, ``expected`` and ``found``; request validation
problems add ``errors`` (where and what). Clients SHOULD branch on ``code`` only.

The handlers installed by :func:`install_handlers` make sure that no bad input ever
gets a 500: FastAPI's validation errors, malformed JSON, unknown routes and methods,
unsupported media types and every ``ledger`` error (FormatError, SignatureError,
RuleError, ProofError...) become a 4xx problem. A database that fails
(``StorageError``), a full sequencing queue (``OverloadedError``) and a stopped sequencer
answer 503 with ``Retry-After``. Only a bug in the service answers 500
``internal_error``, without details (they go to the log).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from api.sequencing.queue import OverloadedError, SequencerStoppedError
from api.storage.base import StorageError
from ledger.core.errors import LedgerError, TooLargeError, VerificationError

PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "urn:endorsement-ledger:problem:"

logger = logging.getLogger("api.problems")

#: HTTP status of each problem code the service answers. The rule codes come from
#: docs/spec.md ("Semantic rules"): 409 when the record conflicts with the current
#: state of the log (it would be fine in another state: already endorsed, key
#: already used...), 422 when the record can never be sequenced as it stands
#: (wrong log, clock skew, unknown signatory or statement, wrong key).
#: ``unknown_statement`` is 422, not 404: the resource addressed (``/api/v1/records``)
#: exists; what is missing is something the body refers to.
STATUS_BY_CODE: dict[str, int] = {
    # Requests
    "bad_request": 400,
    "malformed": 400,
    "malformed_json": 400,
    "invalid_request": 422,
    "invalid_parameter": 400,
    "not_found": 404,
    "method_not_allowed": 405,
    "not_acceptable": 406,
    "request_timeout": 408,
    "unsupported_media_type": 415,
    "body_too_large": 413,
    "entry_too_large": 413,
    "too_large": 413,
    "too_many_records": 413,
    "rate_limited": 429,
    "overloaded": 503,
    "unavailable": 503,
    "internal_error": 500,
    # Records: format and signatures (ledger.core.records)
    "missing_signature": 422,
    "extra_signature": 422,
    "bad_signature": 422,
    "wrong_signer": 422,
    "unknown_key": 422,
    "verification_failed": 422,
    "bad_proof": 422,
    "root_mismatch": 422,
    # Records: semantic rules (ledger.core.rules, docs/spec.md)
    "wrong_log": 422,
    "clock_skew": 422,
    "too_old": 422,
    "unknown_signatory": 422,
    "key_revoked": 422,
    "key_rotated": 422,
    "wrong_key": 422,
    "unknown_statement": 422,
    "already_registered": 409,
    "duplicate": 409,
    "already_endorsed": 409,
    "not_endorsed": 409,
    "replay": 409,
    "key_reused": 409,
    "already_revoked": 409,
    "rule_violation": 422,
}

_TITLES: dict[str, str] = {
    "malformed": "Malformed record",
    "malformed_json": "Malformed JSON",
    "invalid_request": "Invalid request",
    "invalid_parameter": "Invalid parameter",
    "entry_too_large": "Record too large",
    "body_too_large": "Request body too large",
    "too_many_records": "Too many records in one batch",
    "rate_limited": "Too many requests",
    "overloaded": "Service overloaded",
    "internal_error": "Internal error",
}


def status_for(code: str, default: int = 422) -> int:
    """The HTTP status of a problem code (``default`` for codes not listed)."""
    return STATUS_BY_CODE.get(code, default)


def title_for(code: str, status: int) -> str:
    """A short, fixed summary of the problem type (RFC 9457 section 3.1.3)."""
    if code in _TITLES:
        return _TITLES[code]
    if code in STATUS_BY_CODE and code not in ("not_found", "method_not_allowed"):
        return code.replace("_", " ").capitalize()
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class ProblemError(Exception):
    """An error the service answers on purpose, as a problem document."""

    def __init__(
        self,
        code: str,
        detail: str,
        *,
        status: int | None = None,
        title: str | None = None,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.status = status if status is not None else status_for(code, 400)
        self.title = title or title_for(code, self.status)
        # An error describes a moment (an entry not there yet, a full queue): no cache
        # may keep it, and RFC 9111 lets caches keep a 404 heuristically otherwise.
        self.headers = {"Cache-Control": "no-store", **(headers or {})}
        self.extra = extra

    def body(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "type": TYPE_PREFIX + self.code,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        }
        for key, value in self.extra.items():
            if value is not None and key not in doc:
                doc[key] = value
        return doc

    def response(self) -> Response:
        return problem_response(self)


def problem_response(problem: ProblemError) -> Response:
    return Response(
        content=json.dumps(problem.body(), ensure_ascii=False, separators=(",", ":")),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=problem.headers,
    )


def problem_bytes(problem: ProblemError) -> bytes:
    """The encoded body, for pure ASGI middleware that answers without FastAPI."""
    return json.dumps(problem.body(), ensure_ascii=False, separators=(",", ":")).encode()


def _jsonable(value: object) -> object:
    """Expected/found values of core errors as JSON: bytes as hex, the rest as text."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes):
        return value.hex() if len(value) <= 64 else f"{value[:32].hex()}... ({len(value)} bytes)"
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    return str(value)


def sentence(message: str) -> str:
    """A core error message as a sentence: capital first letter, final period."""
    if not message:
        return message
    message = message[0].upper() + message[1:]
    return message if message.endswith((".", "!", "?")) else message + "."


def from_ledger_error(err: LedgerError) -> ProblemError:
    """The problem for an error of the core (a record that fails to parse, verify or fit)."""
    code = err.code
    if isinstance(err, TooLargeError):
        status = 413
        if code == "too_large":
            code = "entry_too_large" if err.field in ("record", "entry") else "too_large"
    elif isinstance(err, VerificationError):
        # Well-formed but refused: bad signature, broken rule (409 for conflicts).
        status = status_for(code, 422)
    else:
        status = status_for(code, 400)
    return ProblemError(
        code,
        sentence(str(err)),
        status=status,
        field=err.field,
        index=err.index,
        expected=_jsonable(err.expected),
        found=_jsonable(err.found),
    )


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Only location, message and type: pydantic's ``ctx`` and ``input`` may hold
    # objects that are not JSON (or echo a large body back).
    out = []
    for e in exc.errors():
        loc = [str(p) for p in e.get("loc", ())]
        out.append({"loc": loc, "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))})
    return out


async def _on_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProblemError)
    return exc.response()


async def _on_ledger_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LedgerError)
    return from_ledger_error(exc).response()


async def _on_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = _validation_errors(exc)
    if any(e["type"] == "json_invalid" for e in errors):
        return ProblemError(
            "malformed_json", "The request body is not valid JSON.", status=400, errors=errors
        ).response()
    where = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors[:5])
    return ProblemError(
        "invalid_request", f"The request is not valid: {where}.", status=422, errors=errors
    ).response()


_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "body_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    503: "unavailable",
}


async def _on_http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    code = _HTTP_CODES.get(status, "bad_request" if status < 500 else "internal_error")
    if status == 404 and exc.detail in (None, "", "Not Found"):
        detail = f"There is no resource at {request.url.path}."
    elif status == 405:
        detail = f"{request.method} is not allowed on {request.url.path}."
    else:
        detail = str(exc.detail) if exc.detail else HTTPStatus(status).phrase
    return ProblemError(code, detail, status=status, headers=exc.headers).response()


async def _on_storage(request: Request, exc: Exception) -> Response:
    # The database failed (unreachable, lock timeout): the client may retry.
    logger.warning("storage error on %s %s: %s", request.method, request.url.path, exc)
    return ProblemError(
        "unavailable",
        "The log's database is not available right now; try again shortly.",
        status=503,
        headers={"Retry-After": "5"},
    ).response()


async def _on_overloaded(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OverloadedError)
    return ProblemError(
        "overloaded",
        f"The log is busy ({exc}); try again in {exc.retry_after_s} s.",
        status=503,
        headers={"Retry-After": str(exc.retry_after_s)},
    ).response()


async def _on_stopped(request: Request, exc: Exception) -> Response:
    return ProblemError(
        "unavailable",
        "The log is not accepting records right now (starting or shutting down).",
        status=503,
        headers={"Retry-After": "5"},
    ).response()


async def _on_disconnect(request: Request, exc: Exception) -> Response:
    # The client left while sending its body: nobody reads this answer, nothing to log.
    return ProblemError(
        "bad_request", "The client disconnected before sending the whole body.", status=400
    ).response()


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    # A bug, not bad input: log it with the traceback, tell the client nothing more.
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return ProblemError(
        "internal_error", "The service failed to answer this request.", status=500
    ).response()


def install_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` as problem+json (see the module docstring)."""
    app.add_exception_handler(ProblemError, _on_problem)
    app.add_exception_handler(LedgerError, _on_ledger_error)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(StorageError, _on_storage)
    app.add_exception_handler(OverloadedError, _on_overloaded)
    app.add_exception_handler(SequencerStoppedError, _on_stopped)
    app.add_exception_handler(ClientDisconnect, _on_disconnect)
    app.add_exception_handler(Exception, _on_unexpected)


__all__ = [
    "PROBLEM_JSON",
    "STATUS_BY_CODE",
    "TYPE_PREFIX",
    "ProblemError",
    "from_ledger_error",
    "install_handlers",
    "problem_bytes",
    "problem_response",
    "sentence",
    "status_for",
]
