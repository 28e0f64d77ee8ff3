"""The witness's HTTP interface (C2SP tlog-witness), on the standard library only.

Endpoints (the submission and monitoring prefixes are both the root)::

    POST /add-checkpoint                 tlog-witness add-checkpoint
    GET  /<hex SHA-256 of origin>/checkpoint
                                         the latest checkpoint cosigned for that log:
                                         the log's verified signatures and ours
    GET  /healthz                        ``ok``

tlog-witness leaves the monitoring path open ("TBD Monitor Retrieval Mechanism"), so
the checkpoint path is ours (docs/spec.md, "Witnesses").

HTTP/1.1 with keep-alive. Limits: a body must have a ``Content-Length`` of at most
:data:`ledger.core.witness.MAX_BODY_SIZE` (413 before reading otherwise; chunked
bodies get 411); a connection idle or slow for :data:`TIMEOUT` seconds (``--timeout``)
is closed; at most :data:`MAX_CONNECTIONS` are served at once (503 beyond). Malformed input always
gets a 4xx; a 500 means a bug, never bad input, and carries no details.
"""

from __future__ import annotations

import contextlib
import logging
import re
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ledger.core.witness import MAX_BODY_SIZE
from ledger.witness.service import Answer, Witness, problem

__all__ = ["MAX_CONNECTIONS", "TIMEOUT", "WitnessHTTPServer", "make_server", "serve_forever"]

TIMEOUT = 10.0
"""Seconds a connection may stay idle or take to send one request."""
MAX_CONNECTIONS = 128
"""Connections served at once."""

_CHECKPOINT = re.compile(r"/([0-9a-f]{64})/checkpoint")
logger = logging.getLogger("ledger.witness.http")


class WitnessHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server holding the :class:`Witness` and a connection bound."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self, address: tuple[str, int], witness: Witness, timeout: float = TIMEOUT
    ) -> None:
        self.witness = witness
        self.timeout_s = timeout
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            with contextlib.suppress(OSError):
                request.sendall(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                    b"Retry-After: 1\r\nConnection: close\r\n\r\n"
                )
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


class _Handler(BaseHTTPRequestHandler):
    server: WitnessHTTPServer
    protocol_version = "HTTP/1.1"
    # One write per answer (headers and body), sent at once: without these, Nagle's
    # algorithm and the client's delayed ACK add 40 ms to every answer.
    wbufsize = 1 << 16
    disable_nagle_algorithm = True
    server_version = "ledger-witness"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.timeout_s)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)

    def _send(self, answer: Answer, *, close: bool = False) -> None:
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        for name, value in answer.headers:
            self.send_header(name, value)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer.body)

    def _guard(self, fn: Any) -> None:
        try:
            fn()
        except (TimeoutError, ConnectionError):
            self.close_connection = True
        except Exception:
            logger.exception("witness request failed")
            self._send(problem(500, "internal_error", "internal error"), close=True)

    def do_POST(self) -> None:
        self._guard(self._post)

    def do_GET(self) -> None:
        self._guard(self._get)

    def do_HEAD(self) -> None:
        self._guard(self._get)

    def _other(self) -> None:
        self._send(
            problem(405, "method_not_allowed", f"{self.command} is not allowed here"),
            close=True,
        )

    def do_PUT(self) -> None:
        self._other()

    def do_DELETE(self) -> None:
        self._other()

    def do_PATCH(self) -> None:
        self._other()

    def do_OPTIONS(self) -> None:
        self._other()

    def _post(self) -> None:
        if self.path != "/add-checkpoint":
            self._send(problem(404, "not_found", "no such endpoint"), close=True)
            return
        body = self._body()
        if body is not None:
            self._send(self.server.witness.add_checkpoint(body))

    def _body(self) -> bytes | None:
        if self.headers.get("Transfer-Encoding") is not None:
            self._send(problem(411, "length_required", "send a Content-Length"), close=True)
            return None
        raw = self.headers.get("Content-Length")
        if raw is None:
            self._send(problem(411, "length_required", "send a Content-Length"), close=True)
            return None
        if not raw.isascii() or not raw.isdigit() or len(raw) > 12:
            self._send(problem(400, "malformed", "bad Content-Length"), close=True)
            return None
        length = int(raw)
        if length > MAX_BODY_SIZE:
            self._send(
                problem(
                    413,
                    "body_too_large",
                    f"request body larger than {MAX_BODY_SIZE} bytes",
                    found=length,
                ),
                close=True,
            )
            return None
        body = self.rfile.read(length)
        if len(body) != length:
            self.close_connection = True
            return None
        return body

    def _get(self) -> None:
        if self.path == "/healthz":
            self._send(Answer(200, "text/plain; charset=utf-8", b"ok\n"))
            return
        match = _CHECKPOINT.fullmatch(self.path)
        if match is None:
            self._send(problem(404, "not_found", "no such endpoint"))
            return
        self._send(self.server.witness.checkpoint(match.group(1)))


def make_server(
    witness: Witness, host: str, port: int, *, timeout: float = TIMEOUT
) -> WitnessHTTPServer:
    """A server bound to ``host:port`` (port 0: any free port), not yet serving."""
    return WitnessHTTPServer((host, port), witness, timeout)


def serve_forever(server: WitnessHTTPServer) -> None:
    """Serve until SIGTERM or SIGINT, then finish the requests in flight and close."""

    def stop(signum: int, frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.server_close()
