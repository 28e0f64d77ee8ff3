"""Query parameters: no control characters (422 ``invalid_request``).

A control character (Unicode category Cc: U+0000 to U+001F, U+007F to U+009F) has
no place in any parameter of this API, and some do harm further down: SQLite's
``LIKE`` stops at a NUL, so ``/api/v1/signatories?q=%00`` matched every signatory.
:class:`QueryTextMiddleware` decodes the query string as the application will
(``application/x-www-form-urlencoded``, UTF-8, as Starlette's ``QueryParams``) and
answers 422 ``invalid_request`` (problem+json, with ``errors`` as for any invalid
parameter, see ``api.problems``) when a parameter's name or value holds one, before
any route sees it.
"""

from __future__ import annotations

import unicodedata
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from api.limits import send_problem
from api.problems import ProblemError

#: The JSON Schema (ECMA-262) pattern of a query parameter's text, as the OpenAPI
#: document states it for every string parameter (``api.app.document_problems``).
NO_CONTROL_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*$"


def _has_control(text: str) -> bool:
    return any(unicodedata.category(c) == "Cc" for c in text)


def control_errors(query_string: bytes) -> list[dict[str, Any]]:
    """The parameters of ``query_string`` that hold a control character, as errors."""
    if not query_string:
        return []
    errors = []
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if _has_control(name) or _has_control(value):
            errors.append(
                {
                    "loc": ["query", name.encode("unicode_escape").decode("ascii")[:100]],
                    "msg": "must not contain control characters",
                    "type": "control_character",
                }
            )
    return errors


class QueryTextMiddleware:
    """422 for a request whose query has a control character in any parameter."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            errors = control_errors(scope.get("query_string", b""))
            if errors:
                where = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors[:5])
                await send_problem(
                    send,
                    ProblemError(
                        "invalid_request",
                        f"The request is not valid: {where}.",
                        status=422,
                        errors=errors,
                    ),
                )
                return
        await self.app(scope, receive, send)


__all__ = ["NO_CONTROL_PATTERN", "QueryTextMiddleware", "control_errors"]
