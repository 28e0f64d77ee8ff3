"""Connection limits: read deadlines and a cap on open connections, in the HTTP/1.1 layer.

uvicorn (its h11 protocol) closes a connection that stays idle for
``timeout_keep_alive`` seconds *after a response*, but nothing else: a connection
that never sends a request, or sends its headers or its body a byte at a time, is
held for ever (slowloris), and every such connection costs a socket and memory.
:class:`LimitedH11Protocol` is uvicorn's h11 protocol with, per connection:

- a **header deadline** (``header_timeout_s``): the request line and headers must
  arrive in full within that many seconds, counted from the connection's opening
  (for its first request) or from the first byte of the next request after an
  idle keep-alive. The deadline is not pushed back by bytes that trickle in. An
  idle new connection is then closed without an answer; a partial request gets
  ``408 request_timeout`` (problem+json, ``Connection: close``);
- a **body deadline** (``body_timeout_s``): once the headers are in, the whole
  body must arrive within that many seconds, or ``408 request_timeout`` and the
  connection is closed. A deadline that falls while the server itself is not
  reading (the application has not yet taken what arrived: flow control) or has
  not yet sent the ``100 Continue`` the client waits for is not enforced then, but
  checked again every second until the server reads;
- a **cap on open connections** (``max_connections``, per server process): a
  connection over the cap is answered ``503 overloaded`` with ``Retry-After``
  and closed as soon as it opens, before anything is read from it.

Between requests, the idle keep-alive timeout stays uvicorn's
(``keep_alive_timeout_s``), and the largest request head h11 buffers is
``max_header_bytes`` (over it: 400). :func:`uvicorn_options` gives the uvicorn
options that select this protocol with those values. The protocol reads the limits
from the :class:`~api.settings.Settings` of its process (``LEDGER_*`` variables,
which ``api.server.run`` hands to every worker), once.

HTTP/1.1 framing is RFC 9112; 408 is RFC 9110 section 15.5.9. Writes are not
limited here: a client that does not read its answer holds the connection until
the operating system's TCP timeouts; put a reverse proxy in front for that.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from api.problems import PROBLEM_JSON, ProblemError
from api.settings import Settings

logger = logging.getLogger("api.connections")

#: The import path uvicorn is given (a string: worker processes import it themselves).
PROTOCOL = "api.connections:LimitedH11Protocol"

#: How often an expired body deadline is looked at again while the server, not the
#: client, is the one not reading.
_PAUSED_RECHECK_S = 1.0


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout_s: float
    body_timeout_s: float
    max_connections: int

    @classmethod
    def of(cls, settings: Settings) -> ConnectionLimits:
        return cls(
            header_timeout_s=settings.header_timeout_s,
            body_timeout_s=settings.body_timeout_s,
            max_connections=settings.max_connections,
        )


@functools.cache
def process_limits() -> ConnectionLimits:
    """The limits of this process, from its ``LEDGER_*`` environment (read once)."""
    return ConnectionLimits.of(Settings())


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The keyword arguments of ``uvicorn.run`` that apply these limits."""
    return {
        "http": PROTOCOL,
        "timeout_keep_alive": settings.keep_alive_timeout_s,
        "h11_max_incomplete_event_size": settings.max_header_bytes,
    }


def _raw_problem(problem: ProblemError) -> bytes:
    """A whole HTTP/1.1 answer, written past h11 just before the connection closes."""
    body = json.dumps(problem.body(), separators=(",", ":")).encode()
    head = [
        f"HTTP/1.1 {problem.status} {HTTPStatus(problem.status).phrase}",
        f"Content-Type: {PROBLEM_JSON}",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *(f"{k}: {v}" for k, v in problem.headers.items()),
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


class LimitedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with header and body deadlines and a connection cap."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = process_limits()
        self._deadline: asyncio.TimerHandle | None = None
        self._phase: str | None = None  # "headers" or "body" while a deadline runs
        self._refused = False

    # --- asyncio.Protocol ----------------------------------------------------------

    def connection_made(  # type: ignore[override]
        self, transport: asyncio.Transport
    ) -> None:
        if len(self.connections) >= self.limits.max_connections:
            self._refused = True
            self.transport = transport
            logger.warning(
                "refused a connection: %d connections open, the most allowed (max_connections)",
                len(self.connections),
            )
            transport.write(
                _raw_problem(
                    ProblemError(
                        "overloaded",
                        "The server holds as many connections as it allows; retry shortly.",
                        status=503,
                        headers={"Retry-After": "1"},
                    )
                )
            )
            transport.close()
            return
        super().connection_made(transport)
        self._arm("headers", self.limits.header_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._refused:
            return
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)
        self._follow(data_arrived=True)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # A pipelined request may already be buffered: its deadline starts now.
        self._follow(data_arrived=bool(self.conn.trailing_data[0]))

    # --- deadlines -----------------------------------------------------------------

    def _follow(self, *, data_arrived: bool) -> None:
        """Start, keep or stop the deadline according to what the client is sending."""
        if self.transport.is_closing():
            self._disarm()
            return
        state = self.conn.their_state
        if state is h11.IDLE:
            # Waiting for a request. A deadline already running is kept (bytes that
            # trickle in do not push it back); between requests only a first byte
            # starts one (until then the keep-alive timeout applies).
            if data_arrived and self._phase != "headers":
                self._arm("headers", self.limits.header_timeout_s)
        elif state is h11.SEND_BODY:
            if self._phase != "body":
                self._arm("body", self.limits.body_timeout_s)
        else:  # the request is in (the application answers), or the connection ends
            self._disarm()

    def _arm(self, phase: str, seconds: float) -> None:
        self._disarm()
        self._phase = phase
        self._deadline = self.loop.call_later(seconds, self._expired, phase)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = None
        self._phase = None

    def _expired(self, phase: str) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        waiting = self.cycle is not None and self.cycle.waiting_for_100_continue
        if phase == "body" and (self.flow.read_paused or waiting):
            # The server stopped reading (or has not yet sent the 100 Continue the client
            # waits for before its body): not the client's delay.
            self._deadline = self.loop.call_later(_PAUSED_RECHECK_S, self._expired, phase)
            return
        self._phase = None
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "unknown"
        timeout = self.limits.header_timeout_s if phase == "headers" else self.limits.body_timeout_s
        started = self.conn.their_state is not h11.IDLE or bool(self.conn.trailing_data[0])
        logger.info(
            "closing the connection of %s: the request %s did not arrive within %g s",
            client,
            phase,
            timeout,
        )
        answered = self.cycle is not None and self.cycle.response_started
        if started and not answered and self.conn.our_state is not h11.DONE:
            self.transport.write(
                _raw_problem(
                    ProblemError(
                        "request_timeout",
                        f"The request's {phase} did not arrive within {timeout:g} seconds.",
                        status=408,
                    )
                )
            )
        if self.cycle is not None:
            self.cycle.keep_alive = False
        self.transport.close()


__all__ = [
    "PROTOCOL",
    "ConnectionLimits",
    "LimitedH11Protocol",
    "process_limits",
    "uvicorn_options",
]
