"""The API under test, and unit tests of its middleware (limits, metrics, problems).

:func:`running_api` starts the real application (``api.app.create_app``) over a
real :class:`~api.storage.sql.SqlStorage` (the ``database_url`` fixture: SQLite,
and PostgreSQL when LEDGER_TEST_DATABASE_URL is set), with its lifespan (so the
real sequencer runs), and talks to it through httpx's ASGI transport from a
blocking portal: the tests stay synchronous, nothing is mocked. (Starlette's
TestClient is not used: it warns, and pytest turns warnings into errors.)
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.from_thread
import httpx
import pytest
from conftest import ORIGIN, Maker
from fastapi import FastAPI

from api.app import create_app
from api.limits import RateLimitMiddleware, client_address, parse_networks
from api.metrics import Metrics
from api.problems import PROBLEM_JSON, ProblemError, from_ledger_error
from api.server import Service, prepare
from api.settings import Settings
from ledger.core import merkle
from ledger.core.errors import FormatError, RuleError, SignatureError, TooLargeError
from ledger.core.note import parse_vkey
from ledger.core.receipt import parse_receipt, verify_receipt
from ledger.core.records import SignedRecord

PEER = ("198.51.100.7", 40000)
BASE = "http://ledger.test"


@dataclass
class Api:
    """A running application and a synchronous client for it."""

    app: FastAPI
    service: Service
    portal: anyio.from_thread.BlockingPortal
    client: httpx.AsyncClient

    @property
    def vkey(self) -> str:
        return self.service.vkey

    def request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        return self.portal.call(functools.partial(self.client.request, method, url, **kw))

    def get(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("GET", url, **kw)

    def post(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("POST", url, **kw)

    def submit(self, record: SignedRecord, status: int = 201) -> dict[str, Any]:
        """POST one record as text/plain; assert the status; return the JSON answer."""
        r = self.post(
            "/api/v1/records",
            content=record.encode(),
            headers={"Content-Type": "text/plain; charset=utf-8"},
        )
        assert r.status_code == status, r.text
        doc: dict[str, Any] = r.json()
        return doc

    def batch(self, records: list[SignedRecord], **params: Any) -> dict[str, Any]:
        r = self.post(
            "/api/v1/records/batch",
            json=[rec.encode().decode() for rec in records],
            params=params,
        )
        assert r.status_code == 200, r.text
        doc: dict[str, Any] = r.json()
        return doc


def problem(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Assert ``r`` is an RFC 9457 problem with this status and code; return it."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM_JSON
    doc: dict[str, Any] = r.json()
    assert doc["status"] == status
    assert doc["code"] == code, doc
    assert doc["type"].endswith(":" + code)
    assert doc["title"] and doc["detail"]
    assert r.headers["cache-control"] == "no-store"
    return doc


def now_maker() -> Maker:
    """Records signed an hour ago (inside the age limit, never in the future)."""
    return Maker(start=int(time.time()) - 3600)


def check_receipt(api: Api, receipt: str, entry: bytes, index: int) -> int:
    """Verify a receipt with the log's vkey; return the checkpoint's size."""
    parsed = parse_receipt(receipt.encode())
    assert parsed.index == index
    cp = verify_receipt(parsed, merkle.leaf_hash(entry), [parse_vkey(api.vkey)], ORIGIN)
    return cp.size


@contextmanager
def running_api(
    database_url: str, data_dir: Path, *, peer: tuple[str, int] = PEER, **overrides: Any
) -> Iterator[Api]:
    """The real application on a fresh log in ``data_dir`` (rate limit off by default)."""
    options: dict[str, Any] = {"rate_limit_rps": 0, "batch_max_ms": 1}
    options.update(overrides)
    settings = Settings(data_dir=data_dir, origin=ORIGIN, database_url=database_url, **options)
    service = prepare(settings)
    try:
        app = create_app(service)
        with (
            anyio.from_thread.start_blocking_portal() as portal,
            portal.wrap_async_context_manager(app.router.lifespan_context(app)),
        ):
            client = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app, client=peer), base_url=BASE
            )
            try:
                yield Api(app, service, portal, client)
            finally:
                portal.call(client.aclose)
    finally:
        service.close()


# --- unit tests of the middleware and helpers -------------------------------------


def test_problem_from_ledger_errors() -> None:
    cases = [
        (FormatError("bad", field="signed_at"), 400, "malformed"),
        (TooLargeError("big", code="entry_too_large", field="record"), 413, "entry_too_large"),
        (SignatureError("bad sig"), 422, "bad_signature"),
        (RuleError("dup", code="already_endorsed"), 409, "already_endorsed"),
        (RuleError("no", code="unknown_statement"), 422, "unknown_statement"),
        (RuleError("skew", code="clock_skew"), 422, "clock_skew"),
    ]
    for err, status, code in cases:
        p = from_ledger_error(err)
        assert (p.status, p.code) == (status, code)
        body = p.body()
        assert body["type"] == f"urn:endorsement-ledger:problem:{code}"
        json.dumps(body)  # always serialisable


def test_problem_renders_bytes_as_hex() -> None:
    p = from_ledger_error(SignatureError("wrong key", expected=b"\x01" * 32, found=b"\x02" * 32))
    assert p.body()["expected"] == "01" * 32
    assert p.body()["found"] == "02" * 32


def test_client_address_trusts_forwarded_for_only_from_trusted_proxies() -> None:
    trusted = parse_networks(["10.0.0.0/8", "::1"])

    def scope(peer: str, xff: str | None) -> dict[str, Any]:
        headers = [(b"x-forwarded-for", xff.encode())] if xff is not None else []
        return {"type": "http", "client": (peer, 1), "headers": headers}

    # Untrusted peer: its header is ignored.
    assert client_address(scope("203.0.113.9", "1.2.3.4"), trusted) == "203.0.113.9"
    # Trusted proxy: the rightmost address that is not a trusted proxy is the client.
    assert client_address(scope("10.0.0.5", "1.2.3.4, 198.51.100.1"), trusted) == "198.51.100.1"
    assert client_address(scope("10.0.0.5", "1.2.3.4, 10.1.1.1"), trusted) == "1.2.3.4"
    assert client_address(scope("::1", "2001:db8::1"), trusted) == "2001:db8::1"
    # A trusted proxy without the header: the proxy is the client.
    assert client_address(scope("10.0.0.5", None), trusted) == "10.0.0.5"
    # No trusted proxies at all: the header never counts.
    assert client_address(scope("10.0.0.5", "1.2.3.4"), []) == "10.0.0.5"


def test_rate_limit_bucket_refills_at_the_rate() -> None:
    now = [1000.0]

    async def app(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover
        pass

    limiter = RateLimitMiddleware(app, rate=2.0, burst=3, clock=lambda: now[0])
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a") == pytest.approx(0.5)  # one token needs half a second
    assert limiter.take("b") == 0.0  # buckets are per client
    now[0] += 0.5
    assert limiter.take("a") == 0.0
    assert limiter.take("a") > 0


def test_rate_limit_memory_is_bounded() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover
        pass

    limiter = RateLimitMiddleware(app, rate=1.0, burst=1, max_clients=10)
    for i in range(100):
        limiter.take(f"client {i}")
    assert len(limiter._buckets) == 10


def test_metrics_text_format() -> None:
    m = Metrics()
    m.observe_request("GET", '/odd"route', 200, 0.003)
    m.observe_rejected("bad_signature")
    text = m.render(log_size=7, queued=0)
    assert 'ledger_http_requests_total{method="GET",route="/odd\\"route",status="200"} 1' in text
    assert 'ledger_records_rejected_total{code="bad_signature"} 1' in text
    assert "ledger_log_entries 7\n" in text
    assert 'ledger_http_request_duration_seconds_bucket{route="/odd\\"route",le="0.005"} 1' in text
    assert 'ledger_http_request_duration_seconds_bucket{route="/odd\\"route",le="0.0025"} 0' in text
    for line in text.splitlines():  # every sample line is "name{labels} value"
        if not line.startswith("#"):
            float(line.rsplit(" ", 1)[1].replace("+Inf", "inf"))


def test_problem_error_carries_headers() -> None:
    p = ProblemError("rate_limited", "Slow down.", status=429, headers={"Retry-After": "3"})
    r = p.response()
    assert r.status_code == 429
    assert r.headers["retry-after"] == "3"
    assert r.media_type == PROBLEM_JSON
