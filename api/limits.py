"""Request limits: body size and per-client rate, as pure ASGI middleware.

**Body size.** :class:`BodyLimitMiddleware` answers 413 ``body_too_large``
(problem+json) when a request body is larger than its limit. It checks the
``Content-Length`` header before the application runs *and* counts the bytes
actually received, whatever the framing, so a chunked body (no
``Content-Length``) or a body longer than its announced length is cut off at the
limit: the application never holds more than ``limit`` bytes of one request. A
request with both ``Content-Length`` and ``Transfer-Encoding`` is refused (400
``bad_request``) before its body is read: RFC 9112 section 6.3 treats it as a
smuggling attempt. Every refusal closes the connection (``Connection: close``),
since the rest of the body is never read. A body sent with ``Content-Encoding:
gzip`` is decoded here, as it arrives, and the limit applies to the decoded bytes
as well (decoding stops at the limit, so a gzip bomb costs nothing); any other
encoding answers 415, invalid gzip 400. Paths may have their own limit (the
batch endpoint takes more than a single record). The bodies of all requests
together are bounded too (``max_buffered_bytes``, counted as the bytes reach the
application, released when it has answered): a request that would take the total
over it is answered 503 ``overloaded`` with ``Retry-After``, so memory stays
bounded however many clients upload at once.

**Rate.** :class:`RateLimitMiddleware` gives each client a token bucket
(``rate`` requests per second, bursts of ``burst``) and answers 429
``rate_limited`` with ``Retry-After`` (whole seconds) when it is empty. A client
is its peer address, except that ``X-Forwarded-For`` is believed when, and only
when, the peer is one of the configured trusted proxies: then the client is the
rightmost address of that header that is not itself a trusted proxy (addresses
to its left were written by the client and prove nothing). Buckets are kept for
at most ``max_clients`` clients, least recently seen dropped first, so memory
stays bounded whatever the number of addresses. Only paths under the configured
prefixes are limited (the application limits ``/api/``, see ``api.app``).
"""

from __future__ import annotations

import ipaddress
import math
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import PROBLEM_JSON, ProblemError, problem_bytes

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


async def send_problem(send: Send, problem: ProblemError, *, close: bool = False) -> None:
    """Answer a problem from middleware, outside FastAPI's exception handling.

    ``close`` adds ``Connection: close``: the request's body was not read to its end,
    so the connection cannot carry another request.
    """
    body = problem_bytes(problem)
    headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    if close or problem.status == 413:
        headers.append((b"connection", b"close"))
    headers.extend(
        (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in problem.headers.items()
    )
    await send({"type": "http.response.start", "status": problem.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value)
    return None


class _BodyRefusedError(Exception):
    """Raised from ``receive`` once the body is refused (too large, or bad gzip)."""


#: Request encodings the service decodes (RFC 9110 section 8.4): gzip only.
_GZIP = frozenset({b"gzip", b"x-gzip"})


class BodyLimitMiddleware:
    """413 for request bodies over the limit, counting the bytes that actually arrive."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        path_limits: Mapping[str, int] | None = None,
        max_buffered_bytes: int | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.path_limits = dict(path_limits or {})
        self.max_buffered_bytes = max_buffered_bytes
        #: Bytes of request bodies the application holds now, all requests together
        #: (only the event loop's thread changes it: no lock).
        self.buffered = 0

    def limit_for(self, path: str) -> int:
        return self.path_limits.get(path, self.max_bytes)

    def _overloaded(self) -> ProblemError:
        return ProblemError(
            "overloaded",
            "The server holds as many request bodies as it allows right now; retry shortly.",
            status=503,
            headers={"Retry-After": "1"},
        )

    def _problem(self, limit: int) -> ProblemError:
        return ProblemError(
            "body_too_large",
            f"The request body is larger than {limit} bytes, the limit of this endpoint.",
            status=413,
            limit=limit,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("path", ""))
        declared = _header(scope, b"content-length")
        if declared is not None and _header(scope, b"transfer-encoding") is not None:
            # RFC 9112 section 6.3: a request with both is suspect (the HTTP parser
            # frames it by Transfer-Encoding, a proxy in front may have framed it by
            # Content-Length: request smuggling). Refused before a byte of body is read.
            await send_problem(
                send,
                ProblemError(
                    "bad_request",
                    "The request has both Content-Length and Transfer-Encoding; send one.",
                    status=400,
                ),
                close=True,
            )
            return
        if declared is not None:
            if not declared.isdigit():
                await send_problem(
                    send,
                    ProblemError(
                        "bad_request", "The Content-Length header is not a number.", status=400
                    ),
                    close=True,
                )
                return
            if int(declared) > limit:
                await send_problem(send, self._problem(limit))
                return
        encoding = (_header(scope, b"content-encoding") or b"identity").strip().lower()
        # Every body is counted below as it arrives, whatever its framing: the limit
        # never depends on the HTTP parser delivering only what a header announced.
        decoder = None
        if encoding in _GZIP:
            # The limit counts decoded bytes too, and decoding stops at the limit: a small
            # gzip bomb costs the server at most ``limit`` bytes, never its full size.
            decoder = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            headers = [
                (k, v)
                for k, v in scope.get("headers", ())
                if k not in (b"content-encoding", b"content-length")
            ]
            scope = {**scope, "headers": headers}
        elif encoding not in (b"identity", b""):
            await send_problem(
                send,
                ProblemError(
                    "unsupported_media_type",
                    "The request body's Content-Encoding must be gzip or identity.",
                    status=415,
                    found=encoding.decode("latin-1")[:100],
                ),
                close=True,
            )
            return

        received = 0  # bytes on the wire
        decoded = 0  # bytes after gzip decoding
        refusal: ProblemError | None = None
        started = False

        def refuse(problem: ProblemError) -> _BodyRefusedError:
            nonlocal refusal
            refusal = problem
            return _BodyRefusedError()

        def decode(chunk: bytes, more: bool) -> bytes:
            nonlocal decoded
            assert decoder is not None
            try:
                out = decoder.decompress(chunk, limit + 1 - decoded)
            except zlib.error:
                raise refuse(_bad_gzip()) from None
            decoded += len(out)
            if decoded > limit:
                raise refuse(self._problem(limit))
            if decoder.unused_data or (not more and not decoder.eof):
                raise refuse(_bad_gzip())
            return out

        held = 0  # bytes handed to the application, counted in the process's budget

        async def limited_receive() -> Message:
            nonlocal received, held
            if refusal is not None:
                raise _BodyRefusedError
            message = await receive()
            if message["type"] == "http.request":
                body = message.get("body", b"")
                received += len(body)
                if received > limit:
                    raise refuse(self._problem(limit))
                if decoder is not None:
                    message = {**message, "body": decode(body, message.get("more_body", False))}
                size = len(message.get("body", b""))
                held += size
                self.buffered += size
                if self.max_buffered_bytes is not None and self.buffered > self.max_buffered_bytes:
                    raise refuse(self._overloaded())
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refusal is not None and not started:
                # The application turned the interrupted read into some other answer
                # (FastAPI says 400 when a body cannot be read): ours is the 413.
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _BodyRefusedError:
            if started:  # pragma: no cover - a streaming app answered before reading
                raise
        except Exception:
            if refusal is None or started:
                raise
        finally:
            self.buffered -= held  # the application is done with the body
        if refusal is not None and not started:
            await send_problem(send, refusal, close=True)


def _bad_gzip() -> ProblemError:
    return ProblemError(
        "bad_request", "The request body is not valid gzip (Content-Encoding: gzip).", status=400
    )


@dataclass
class _Bucket:
    tokens: float
    stamp: float


def parse_networks(specs: Iterable[str | IPNetwork]) -> list[IPNetwork]:
    """Trusted proxies as networks, from networks or text (``10.0.0.0/8``, ``::1``)."""
    out: list[IPNetwork] = []
    for spec in specs:
        if isinstance(spec, str):
            if spec.strip():
                out.append(ipaddress.ip_network(spec.strip(), strict=False))
        else:
            out.append(spec)
    return out


def _parse_ip(text: str) -> IPAddress | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[::1]:1234"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "1.2.3.4:1234"
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def client_address(scope: Scope, trusted: Iterable[IPNetwork]) -> str:
    """The client of a request: its peer, or what trusted proxies say in X-Forwarded-For."""
    trusted = list(trusted)
    client = scope.get("client")
    peer = client[0] if client else "unknown"
    if not trusted:
        return peer

    def is_trusted(addr: IPAddress | None) -> bool:
        return addr is not None and any(addr in net for net in trusted)

    if not is_trusted(_parse_ip(peer)):
        return peer
    forwarded: list[str] = []
    for key, value in scope.get("headers", ()):
        if key == b"x-forwarded-for":
            forwarded.extend(p.strip() for p in value.decode("latin-1").split(","))
    # Walk from the right: each hop appended the address it saw.
    for hop in reversed([p for p in forwarded if p]):
        addr = _parse_ip(hop)
        if addr is None:
            return hop[:64]  # garbage written by a client: a bucket of its own
        if not is_trusted(addr):
            return str(addr)
    return peer


class RateLimitMiddleware:
    """A token bucket per client; 429 ``rate_limited`` with Retry-After when it runs dry."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        rate: float,
        burst: int,
        trusted_proxies: Iterable[str | IPNetwork] = (),
        prefixes: Iterable[str] = ("/",),
        exempt_paths: Iterable[str] = ("/livez", "/readyz", "/healthz", "/metrics"),
        max_clients: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.app = app
        self.rate = rate
        self.burst = burst
        self.trusted = parse_networks(trusted_proxies)
        self.prefixes = tuple(prefixes)
        self.exempt = frozenset(exempt_paths)
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def take(self, client: str) -> float:
        """Take one token for ``client``; 0 if it may go on, else seconds to wait."""
        now = self.clock()
        bucket = self._buckets.get(client)
        if bucket is None:
            bucket = _Bucket(float(self.burst), now)
            self._buckets[client] = bucket
            if len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(client)
            bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.stamp) * self.rate)
            bucket.stamp = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in self.exempt or not path.startswith(self.prefixes):
            await self.app(scope, receive, send)
            return
        wait = self.take(client_address(scope, self.trusted))
        if wait > 0:
            retry = max(1, math.ceil(wait))
            await send_problem(
                send,
                ProblemError(
                    "rate_limited",
                    f"Too many requests from this client; retry in {retry} s.",
                    status=429,
                    headers={"Retry-After": str(retry)},
                ),
            )
            return
        await self.app(scope, receive, send)


__all__ = [
    "BodyLimitMiddleware",
    "RateLimitMiddleware",
    "client_address",
    "parse_networks",
    "send_problem",
]
