"""Limits and failure answers through the real application: 429, 503, and no 500 ever."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

import anyio
import anyio.from_thread
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.types import Message, Receive, Scope, Send
from test_api_support import BASE, Api, now_maker, problem, running_api

from api.app import build_app
from api.limits import BodyLimitMiddleware
from api.sequencing.queue import OverloadedError
from api.server import prepare
from api.settings import Settings
from api.storage.base import StorageError
from ledger.core.records import SignedRecord


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[Api]:
    with running_api(database_url, tmp_path / "data") as a:
        yield a


def test_rate_limit_answers_429_with_retry_after(database_url: str, tmp_path: Path) -> None:
    # A rate this low refills nothing during the test: the third request is refused.
    with running_api(
        database_url, tmp_path / "data", rate_limit_rps=0.001, rate_limit_burst=2
    ) as api:
        assert api.get("/api/v1/log").status_code == 200
        assert api.get("/api/v1/statements").status_code == 200
        r = api.get("/api/v1/log")
        doc = problem(r, 429, "rate_limited")
        assert int(r.headers["retry-after"]) >= 1
        assert str(int(r.headers["retry-after"])) in doc["detail"]
        r = api.post("/api/v1/records", content=now_maker().register("a").encode())
        problem(r, 429, "rate_limited")
        # The public tlog-tiles layout and operations are not limited.
        assert api.get("/checkpoint").status_code == 200
        assert api.get("/healthz").status_code == 200


def test_forwarded_for_counts_only_behind_a_trusted_proxy(
    database_url: str, tmp_path: Path
) -> None:
    with running_api(
        database_url,
        tmp_path / "data",
        peer=("10.1.2.3", 5000),
        rate_limit_rps=0.001,
        rate_limit_burst=1,
        trusted_proxies="10.0.0.0/8",
    ) as api:
        for client in ["203.0.113.1", "203.0.113.2", "203.0.113.3"]:
            r = api.get("/api/v1/log", headers={"X-Forwarded-For": f"{client}, 10.9.9.9"})
            assert r.status_code == 200, client
        r = api.get("/api/v1/log", headers={"X-Forwarded-For": "203.0.113.1"})
        problem(r, 429, "rate_limited")
        # A client cannot escape its bucket by writing addresses to the left.
        r = api.get("/api/v1/log", headers={"X-Forwarded-For": "192.0.2.77, 203.0.113.2"})
        problem(r, 429, "rate_limited")
    with running_api(
        database_url, tmp_path / "data", rate_limit_rps=0.001, rate_limit_burst=1
    ) as api:  # the peer is not a trusted proxy: its header is ignored
        assert api.get("/api/v1/log", headers={"X-Forwarded-For": "203.0.113.1"}).is_success
        r = api.get("/api/v1/log", headers={"X-Forwarded-For": "203.0.113.2"})
        problem(r, 429, "rate_limited")


class _FullSequencer:
    """Stands in for a sequencer whose queue is full."""

    running = True
    queued = 10_000
    verifies_signatures = False

    def submit_async(self, record: SignedRecord) -> Future[object]:
        raise OverloadedError("the sequencing queue is full", retry_after_s=3)

    def submit_on_loop(self, record: SignedRecord) -> Future[object]:
        raise OverloadedError("the sequencing queue is full", retry_after_s=3)

    def submit_many_async(
        self, records: list[SignedRecord], *, verified: bool = False
    ) -> Future[object]:
        raise OverloadedError("the sequencing queue is full", retry_after_s=3)


def test_overloaded_and_stopped_answer_503(database_url: str, tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, origin="ledger.example.org/test", database_url=database_url
    )
    service = prepare(settings)
    try:
        record = now_maker().register("alice").encode()
        for sequencer, code, retry in [
            (None, "unavailable", "5"),
            (_FullSequencer(), "overloaded", "3"),
        ]:
            app = build_app(
                service.storage,
                settings,
                service.vkey,
                sequencer=sequencer,  # type: ignore[arg-type]
            )
            with anyio.from_thread.start_blocking_portal() as portal:
                client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)
                r = portal.call(lambda c=client: c.post("/api/v1/records", content=record))
                problem(r, 503, code)
                assert r.headers["retry-after"] == retry
                r = portal.call(
                    lambda c=client: c.post("/api/v1/records/batch", json=[record.decode()])
                )
                problem(r, 503, code)
                r = portal.call(lambda c=client: c.get("/healthz"))
                if sequencer is None:
                    problem(r, 503, "unavailable")
                portal.call(client.aclose)
    finally:
        service.close()


def test_mutated_records_never_get_a_500(api: Api) -> None:
    """Every single-byte change of a valid record is refused with a 4xx problem."""
    m = now_maker()
    api.submit(m.register("alice"))
    record = m.endorse("alice", bytes(32), comment="Oui, évidemment.").encode()
    codes = set()
    for i in range(0, len(record), 3):
        for b in (0x00, 0x0A, 0x20, 0x41, 0x80, 0xFF):
            mutated = record[:i] + bytes([b]) + record[i + 1 :]
            if mutated == record:
                continue
            r = api.post("/api/v1/records", content=mutated)
            assert 400 <= r.status_code < 500, (i, b, r.text)
            codes.add(r.json()["code"])
    assert {"malformed", "bad_signature"} <= codes
    assert api.get("/api/v1/log").json()["size"] == 1


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    body=st.binary(max_size=300),
    content_type=st.sampled_from(
        ["text/plain", "application/json", "text/plain; charset=utf-8", "x/y", ""]
    ),
    path=st.sampled_from(["/api/v1/records", "/api/v1/records/batch"]),
)
def test_arbitrary_bodies_get_a_4xx_problem(
    api: Api, body: bytes, content_type: str, path: str
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    r = api.post(path, content=body, headers=headers)
    assert 400 <= r.status_code < 500, r.text
    assert r.headers["content-type"] == "application/problem+json"


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    path=st.text(
        alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="?#%"),
        max_size=40,
    ),
    prefix=st.sampled_from(
        [
            "/tile/",
            "/tile/entries/",
            "/api/v1/entries/",
            "/api/v1/entries/by-leaf/",
            "/api/v1/receipts/",
            "/api/v1/statements/",
            "/api/v1/signatories/",
        ]
    ),
)
def test_arbitrary_paths_get_a_4xx_problem(api: Api, prefix: str, path: str) -> None:
    r = api.get(prefix + path)
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        assert r.headers["content-type"] == "application/problem+json"


def test_wrong_content_length_is_a_problem(api: Api) -> None:
    r = api.post("/api/v1/records", content=b"x\n", headers={"Content-Length": "abc"})
    problem(r, 400, "bad_request")


def test_the_body_limit_counts_what_arrives_whatever_content_length_says() -> None:
    """A body longer than its Content-Length (a parser that frames it otherwise) is
    still cut off at the limit: the middleware counts bytes, it does not trust headers."""
    read: list[int] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        total = 0
        while True:
            message = await receive()
            total += len(message.get("body", b""))
            read.append(total)
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    chunks = [b"x" * 1024] * 64  # 64 KiB, announced as 10 bytes
    sent: list[Message] = []

    async def receive() -> Message:
        body = chunks.pop() if chunks else b""
        return {"type": "http.request", "body": body, "more_body": bool(chunks)}

    async def send(message: Message) -> None:
        sent.append(message)

    middleware = BodyLimitMiddleware(app, max_bytes=4096)
    scope = {"type": "http", "path": "/api/v1/records", "headers": [(b"content-length", b"10")]}
    anyio.run(middleware, scope, receive, send)
    assert sent[0]["status"] == 413
    assert (b"connection", b"close") in sent[0]["headers"]
    assert max(read, default=0) <= 4096


class _DownStorage:
    """Stands in for a database that does not answer."""

    origin = "ledger.example.org/test"

    def head(self) -> object:
        raise StorageError("connection refused")


def test_livez_answers_while_readyz_and_healthz_say_unavailable(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, origin="ledger.example.org/test")
    app = build_app(_DownStorage(), settings, "vkey")  # type: ignore[arg-type]
    with anyio.from_thread.start_blocking_portal() as portal:
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)
        try:
            r = portal.call(client.get, "/livez")
            assert r.status_code == 200 and r.json() == {"status": "ok"}
            assert r.headers["cache-control"] == "no-store"
            for path in ("/readyz", "/healthz"):
                r = portal.call(client.get, path)
                problem(r, 503, "unavailable")
                assert r.headers["retry-after"] == "5"
        finally:
            portal.call(client.aclose)


def test_the_body_budget_is_released_when_each_request_is_answered() -> None:
    """Bodies held together count against one budget; each request gives its share back
    when answered (or when the application fails), so the budget never leaks."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        while (await receive()).get("more_body"):
            pass
        if scope["path"] == "/fail":
            raise RuntimeError("the application failed")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    middleware = BodyLimitMiddleware(app, max_bytes=4096, max_buffered_bytes=4096)

    def call(path: str, size: int) -> list[Message]:
        sent: list[Message] = []
        chunks = [b"x" * (size // 2), b"x" * (size - size // 2)]

        async def receive() -> Message:
            body = chunks.pop(0)
            return {"type": "http.request", "body": body, "more_body": bool(chunks)}

        async def send(message: Message) -> None:
            sent.append(message)

        scope = {"type": "http", "path": path, "headers": []}
        anyio.run(middleware, scope, receive, send)
        return sent

    for _ in range(10):
        assert call("/api/v1/records", 3000)[0]["status"] == 200
        with pytest.raises(RuntimeError):
            call("/fail", 3000)
        assert middleware.buffered == 0

    async def two_at_once() -> list[int]:
        statuses: list[int] = []
        gate = anyio.Event()

        async def slow_app(scope: Scope, receive: Receive, send: Send) -> None:
            while (await receive()).get("more_body"):
                pass
            if scope["path"] == "/first":
                gate.set()
                await anyio.sleep(0.2)  # holds its body while the second arrives
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        mw = BodyLimitMiddleware(slow_app, max_bytes=4096, max_buffered_bytes=4096)

        async def one(path: str) -> None:
            sent: list[Message] = []

            async def receive() -> Message:
                return {"type": "http.request", "body": b"x" * 3000, "more_body": False}

            async def send(message: Message) -> None:
                sent.append(message)

            await mw({"type": "http", "path": path, "headers": []}, receive, send)
            statuses.append(int(sent[0]["status"]))

        async with anyio.create_task_group() as tg:
            tg.start_soon(one, "/first")
            await gate.wait()
            tg.start_soon(one, "/second")
        assert mw.buffered == 0
        return statuses

    assert sorted(anyio.run(two_at_once)) == [200, 503]
