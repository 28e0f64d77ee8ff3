"""The FastAPI application of the ledger service.

:func:`create_app` is the factory uvicorn calls (``api.app:create_app`` with
``factory=True``, see ``api.server.run``): without arguments it reads the
:class:`~api.settings.Settings` from the ``LEDGER_*`` environment, prepares the
service (``api.server.prepare``: key, database, start-up checks), starts the
sequencer when the application starts and stops it, then closes the database,
when it stops. Tests pass a prepared :class:`~api.server.Service` instead.
:func:`build_app` is the lower level: routes and middleware around a given
storage (and, optionally, sequencer), with no life cycle of its own.

Around the routes, from the outside in:

1. metrics: every answer counted by route template and status (``/metrics``);
2. CORS, for reads only: ``GET``/``HEAD`` answers carry
   ``Access-Control-Allow-Origin: *`` (the log is public); a preflight for any
   other method is refused, so a web page can never make a visitor's browser
   submit records;
3. the per-client rate limit on ``/api/`` (429 ``rate_limited`` with Retry-After).
   The tlog-tiles paths (``/checkpoint``, ``/tile/...``) are not limited: they are
   the log's public static layout, cacheable (tiles and bundles immutably) and meant
   to be mirrored in bulk; put a cache in front of them;
4. the body limit (413 ``body_too_large``), counting the bytes that arrive;
5. query parameters without control characters (422 ``invalid_request``,
   ``api.query``);
6. gzip for reads, when the client accepts it (entry bundles compress well).

Every error is RFC 9457 problem+json (``api.problems``); bad input never gets a 500.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.limits import BodyLimitMiddleware, RateLimitMiddleware, send_problem
from api.metrics import Metrics, MetricsMiddleware
from api.problems import STATUS_BY_CODE, ProblemError, install_handlers
from api.publish import start_publisher
from api.query import NO_CONTROL_PATTERN, QueryTextMiddleware
from api.routes import ROUTERS
from api.routes.deps import AppContext
from api.routes.records import BATCH_PATH
from api.sequencing.queue import Sequencer
from api.server import Service, prepare
from api.settings import Settings
from api.storage.base import ReadStorage
from ledger import __version__

READ_METHODS = frozenset({"GET", "HEAD"})


class ReadOnlyCORSMiddleware:
    """``Access-Control-Allow-Origin: *`` on reads; cross-origin writes refused.

    Browsers send a preflight (``OPTIONS`` with ``Access-Control-Request-Method``)
    before a cross-origin POST of JSON or text: it is answered 403 without CORS
    headers, and a POST answer never carries them, so a page on another origin
    can neither submit records nor read what a submission answered.
    """

    def __init__(self, app: ASGIApp, *, max_age: int = 86400) -> None:
        self.app = app
        self.max_age = max_age

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        if method == "OPTIONS":
            headers = Headers(scope=scope)
            if "origin" in headers and "access-control-request-method" in headers:
                await self._preflight(headers, send)
                return
        if method not in READ_METHODS:
            await self.app(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                h = MutableHeaders(scope=message)
                h["Access-Control-Allow-Origin"] = "*"
                h["Access-Control-Expose-Headers"] = "Retry-After"
            await send(message)

        await self.app(scope, receive, send_with_cors)

    async def _preflight(self, headers: Headers, send: Send) -> None:
        requested = headers["access-control-request-method"].strip().upper()
        if requested not in READ_METHODS:
            await send_problem(
                send,
                ProblemError(
                    "cross_origin_write",
                    "Cross-origin requests may only read (GET); submit records from a "
                    "client, not from another site's page.",
                    status=403,
                ),
            )
            return
        allow = [
            (b"access-control-allow-origin", b"*"),
            (b"access-control-allow-methods", b"GET, HEAD"),
            (b"access-control-max-age", str(self.max_age).encode()),
            (b"content-length", b"0"),
        ]
        wanted = headers.get("access-control-request-headers")
        if wanted:
            allow.append((b"access-control-allow-headers", wanted.encode("latin-1")))
        await send({"type": "http.response.start", "status": 204, "headers": allow})
        await send({"type": "http.response.body", "body": b""})


class ReadGZipMiddleware:
    """gzip for reads (bundles, tiles, JSON pages) when the client accepts it.

    Answers to writes are small JSON documents: compressing them costs more server
    time (a zlib stream per answer) than it saves on the wire.
    """

    def __init__(self, app: ASGIApp, *, minimum_size: int = 512, compresslevel: int = 6) -> None:
        self.app = app
        self.gzip = GZipMiddleware(app, minimum_size=minimum_size, compresslevel=compresslevel)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in READ_METHODS:
            await self.gzip(scope, receive, send)
        else:
            await self.app(scope, receive, send)


_DESCRIPTION = (
    """
A public, verifiable log of signed endorsements (docs/spec.md).

**Writing.** `POST /api/v1/records` takes one signed record (`text/plain`) and
answers with its index, leaf hash and a C2SP tlog-proof receipt. Resubmitting an
identical record is safe: 200 with the existing entry.

**Reading.** The log is served as C2SP tlog-tiles at the root (`/checkpoint`,
`/tile/<L>/<N>`, `/tile/entries/<N>`); the JSON API adds entries, proofs, receipts
and the projection (statements, tallies, signatories). Trust nothing you read here
without checking it against a checkpoint verified with the log's vkey, obtained
out of band.

**Errors** are RFC 9457 `application/problem+json` with a stable `code`:
"""
    + ", ".join(f"`{c}` ({s})" for c, s in sorted(STATUS_BY_CODE.items()))
    + "."
)


#: Answers the middleware and the exception handlers may give on any operation, with
#: the codes they carry (see api.limits and api.problems).
_COMMON_PROBLEMS: dict[str, str] = {
    "400": "Malformed request (`bad_request`, `malformed`, `malformed_json`, `invalid_parameter`).",
    "413": "Request body too large (`body_too_large`, `entry_too_large`, `too_many_records`).",
    "422": "Invalid parameters or body (`invalid_request`, with `errors`), or a record that "
    "is refused (`bad_signature`, `wrong_log`, `unknown_signatory`...).",
    "429": "Rate limited (`rate_limited`); retry after the Retry-After seconds.",
    "503": "Overloaded or unavailable (`overloaded`, `unavailable`); retry after Retry-After.",
}
_RETRY_AFTER = {
    "description": "Seconds to wait before retrying.",
    "schema": {"type": "string", "pattern": "^[0-9]+$"},
}
#: OpenAPI links from a submitted record to what can be read about it (stateful tests
#: follow them; so can a client generator).
_RECORD_LINKS = {
    "GetEntry": ("get", "/api/v1/entries/{index}", {"index": "$response.body#/index"}),
    "GetEntryByLeaf": (
        "get",
        "/api/v1/entries/by-leaf/{leaf_hash}",
        {"leaf_hash": "$response.body#/leaf_hash"},
    ),
    "GetReceipt": ("get", "/api/v1/receipts/{entry}", {"entry": "$response.body#/index"}),
    "GetInclusionProof": ("get", "/api/v1/proofs/inclusion", {"index": "$response.body#/index"}),
}


def _forbid_control_characters(schema: dict[str, Any]) -> None:
    """A query parameter's text has no control characters (``api.query``): say so."""
    for alternative in schema.get("anyOf", ()):
        _forbid_control_characters(alternative)
    if schema.get("type") == "string" and "pattern" not in schema and "enum" not in schema:
        schema["pattern"] = NO_CONTROL_PATTERN


def document_problems(doc: dict[str, Any]) -> dict[str, Any]:
    """Make the generated OpenAPI document say what the service really answers.

    FastAPI documents request validation errors as ``application/json``
    ``HTTPValidationError``; this service answers every error as problem+json
    (``api.problems``), including those of its middleware (413 on writes, 429 under
    ``/api/``, 503 when the database fails). Each operation's error answers become
    ``application/problem+json`` with the ``Problem`` schema, the answers the
    middleware may give are added where they apply, string query parameters say that
    they hold no control characters (``api.query``), and the record submission links
    to the entry, receipt and proof it creates.
    """
    problem = {"schema": {"$ref": "#/components/schemas/Problem"}}
    ops: dict[tuple[str, str], dict[str, Any]] = {}
    for path, item in doc.get("paths", {}).items():
        for method, op in item.items():
            ops[(method, path)] = op
            for parameter in op.get("parameters", ()):
                if parameter.get("in") == "query":
                    _forbid_control_characters(parameter.get("schema", {}))
            responses = op.setdefault("responses", {})
            wanted = {"400", "422", "503"}
            if path.startswith("/api/"):
                wanted.add("429")
            if method in ("post", "put", "patch"):
                wanted.add("413")
            for status in wanted:
                responses.setdefault(status, {"description": _COMMON_PROBLEMS[status]})
            for status, response in responses.items():
                if status[0] not in "45":
                    continue
                if response.get("description") == "Validation Error":
                    response["description"] = _COMMON_PROBLEMS["422"]
                response["content"] = {"application/problem+json": dict(problem)}
                if status in ("429", "503"):
                    response["headers"] = {"Retry-After": _RETRY_AFTER}
    schemas = doc.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    submit = ops.get(("post", "/api/v1/records"))
    if submit is not None:
        links = {}
        for name, (method, path, parameters) in _RECORD_LINKS.items():
            target = ops.get((method, path))
            if target is not None and "operationId" in target:
                links[name] = {"operationId": target["operationId"], "parameters": parameters}
        for status in ("200", "201"):
            if status in submit["responses"]:
                submit["responses"][status]["links"] = links
    return doc


def build_app(
    storage: ReadStorage,
    settings: Settings,
    vkey: str,
    *,
    sequencer: Sequencer | None = None,
    metrics: Metrics | None = None,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
) -> FastAPI:
    """The application over ``storage``; ``lifespan`` may set ``app.state.ledger.sequencer``."""
    ctx = AppContext(
        storage=storage,
        settings=settings,
        vkey=vkey,
        metrics=metrics or Metrics(),
        sequencer=sequencer,
    )
    app = FastAPI(
        title="Endorsement Ledger",
        version=__version__,
        description=_DESCRIPTION,
        lifespan=lifespan,
        telemetry=None
        if settings.opentelemetry
        else {"tracing": False, "metrics": False, "logs": False},
    )
    app.state.ledger = ctx
    install_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    generate_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_problems(generate_openapi())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    # add_middleware puts each new layer outside the previous ones: innermost first.
    app.add_middleware(ReadGZipMiddleware)
    app.add_middleware(QueryTextMiddleware)
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        path_limits={BATCH_PATH: settings.max_batch_body_bytes},
        max_buffered_bytes=settings.max_buffered_body_bytes,
    )
    if settings.rate_limit_rps > 0:
        app.add_middleware(
            RateLimitMiddleware,
            rate=settings.rate_limit_rps,
            burst=settings.rate_limit_burst,
            trusted_proxies=settings.trusted_proxies,
            prefixes=("/api/",),
        )
    app.add_middleware(ReadOnlyCORSMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=ctx.metrics)
    return app


def freeze_startup_heap() -> None:
    """Keep what start-up built (modules, routes, models, the storage) out of every
    later garbage collection.

    Answering a record holds its objects until the batch commits, so they outlive
    the young generations and trigger full collections; each of those walked the
    whole start-up heap (130,000 objects: ~100 ms, about 100 us per record under
    load). Frozen, those objects are never collected (they live as long as the
    process anyway) and a full collection walks only what requests left behind.
    """
    gc.collect()
    gc.freeze()


def create_app(
    service: Service | None = None,
    *,
    settings: Settings | None = None,
    metrics: Metrics | None = None,
) -> FastAPI:
    """The application of ``service`` (default: prepared from ``settings`` or the environment).

    The sequencer starts with the application and stops with it. A service passed in
    stays open when the application stops (its owner closes it); one prepared here is
    closed.
    """
    owned = service is None
    svc = prepare(settings or Settings()) if service is None else service
    metrics = metrics or Metrics.for_server(svc.settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx: AppContext = app.state.ledger
        ctx.sequencer = svc.start_sequencer(on_batch=metrics.on_batch)
        metrics.queue_source = lambda: ctx.sequencer.queued if ctx.sequencer else None
        metrics.start()  # several workers: their counts shared (api.metrics)
        # --publish-dir: the static tlog-tiles layout, following the head (api.publish).
        publisher = start_publisher(svc.storage, svc.settings.publish_dir)
        if owned:  # a serving process (uvicorn's factory), not a test's
            freeze_startup_heap()
        try:
            yield
        finally:
            await run_in_threadpool(metrics.stop)
            if publisher is not None:
                await run_in_threadpool(publisher.stop)
            ctx.sequencer = None
            if owned:
                await run_in_threadpool(svc.close)
            elif svc.sequencer is not None:
                running, svc.sequencer = svc.sequencer, None
                await run_in_threadpool(running.stop)

    return build_app(svc.storage, svc.settings, svc.vkey, metrics=metrics, lifespan=lifespan)


__all__ = [
    "ReadGZipMiddleware",
    "ReadOnlyCORSMiddleware",
    "build_app",
    "create_app",
    "document_problems",
    "freeze_startup_heap",
]
