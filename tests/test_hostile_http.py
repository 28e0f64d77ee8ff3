"""Hostile HTTP through a real server: ``python -m api.server`` (uvicorn) on a free port.

Raw sockets, not an HTTP client library, so that nothing buffers or fixes up what is
sent: bodies over the limit (announced by Content-Length, chunked without it, and
gzip bombs small on the wire) are refused with 413 while they are still arriving,
and the server's peak memory (VmHWM of its process) stays far below the size of
what was sent; deep and huge JSON get a 4xx; rate limits answer 429 with
Retry-After, and X-Forwarded-For moves a client to another bucket only when the
peer is a configured trusted proxy; CORS is open for reads only; there is no
operation that changes the service other than submitting signed records.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ORIGIN
from test_api_support import now_maker

from api.app import build_app
from api.routes import ROUTERS
from api.settings import Settings

MB = 1 << 20


@dataclass
class Server:
    port: int
    pid: int

    def peak_rss(self) -> int:
        """The process's peak resident memory (VmHWM), in bytes."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        match = re.search(r"VmHWM:\s+(\d+) kB", status)
        assert match is not None
        return int(match.group(1)) * 1024


@contextmanager
def serve(tmp: Path, **settings: str) -> Iterator[Server]:
    """``python -m api.server`` on 127.0.0.1, port 0; yields once it listens."""
    env = {
        **os.environ,
        "LEDGER_DATA_DIR": str(tmp / "data"),
        "LEDGER_ORIGIN": ORIGIN,
        "LEDGER_HOST": "127.0.0.1",
        "LEDGER_PORT": "0",
        "LEDGER_RATE_LIMIT_RPS": "0",
        "LEDGER_LOG_LEVEL": "info",
        **{f"LEDGER_{k.upper()}": v for k, v in settings.items()},
    }
    env.pop("LEDGER_DATABASE_URL", None)
    tmp.mkdir(parents=True, exist_ok=True)
    log = tmp / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "api.server"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).parent.parent,
        )
    try:
        port = None
        for _ in range(600):  # up to a minute on a busy machine
            match = re.search(rb"Uvicorn running on http://127\.0\.0\.1:(\d+)", log.read_bytes())
            if match:
                port = int(match.group(1))
                break
            assert proc.poll() is None, log.read_text()
            time.sleep(0.1)
        assert port is not None, log.read_text()
        yield Server(port, proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()
            proc.wait()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with serve(tmp_path) as s:
        yield s


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    sent: int  # request bytes written before the answer was complete

    def json(self) -> dict[str, object]:
        doc: dict[str, object] = json.loads(self.body)
        return doc


def _read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before an answer: {data!r}"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body[:length]


def request(
    server: Server,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes | Iterator[bytes] = b"",
) -> Answer:
    """Send a request over a raw socket; the body is written by another thread.

    The answer is read while the body is still being sent (a server that answers
    early is seen to do so), and ``sent`` says how much had been written by then.
    """
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=60)
    hdrs = {"Host": f"127.0.0.1:{server.port}", "Connection": "close", **(headers or {})}
    if isinstance(body, bytes) and body and "Content-Length" not in hdrs:
        hdrs["Content-Length"] = str(len(body))
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
    sock.sendall(head.encode("latin-1") + b"\r\n")
    sent = [0]
    done = threading.Event()

    def write() -> None:
        chunks = [body] if isinstance(body, bytes) else body
        try:
            for chunk in chunks:
                if done.is_set():
                    return
                sock.sendall(chunk)
                sent[0] += len(chunk)
        except OSError:  # the server answered and closed: stop sending
            pass

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        status, headers_in, data = _read_answer(sock)
        at_answer = sent[0]
    finally:
        done.set()
        # shutdown wakes a writer blocked in sendall; closing only after it has stopped
        # keeps it from writing to a reused descriptor (another client's connection).
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        writer.join(timeout=60)
        sock.close()
    return Answer(status, headers_in, data, at_answer)


def chunked(total: int, size: int = 64 * 1024, byte: bytes = b"a") -> Iterator[bytes]:
    """``total`` bytes in HTTP/1.1 chunked encoding (no Content-Length)."""
    block = byte * size
    left = total
    while left > 0:
        n = min(size, left)
        yield b"%x\r\n" % n + block[:n] + b"\r\n"
        left -= n
    yield b"0\r\n\r\n"


def problem(answer: Answer, status: int, code: str) -> None:
    assert answer.status == status, (answer.status, answer.body[:300])
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == code


# --- body limits -------------------------------------------------------------------


def test_oversized_bodies_get_413_while_arriving_with_bounded_memory(server: Server) -> None:
    text = {"Content-Type": "text/plain"}
    base = server.peak_rss()

    # Announced: refused on the header, before a byte of the body is read.
    a = request(
        server, "POST", "/api/v1/records", {**text, "Content-Length": str(512 * MB)}, b"x" * 1024
    )
    problem(a, 413, "body_too_large")
    assert a.headers["connection"] == "close"

    # Chunked, no Content-Length: cut off at the limit while the upload goes on.
    total = 256 * MB
    a = request(
        server, "POST", "/api/v1/records", {**text, "Transfer-Encoding": "chunked"}, chunked(total)
    )
    problem(a, 413, "body_too_large")
    assert a.sent < total // 4, f"the answer came after {a.sent} of {total} bytes"

    # The same on the batch endpoint, whose limit is larger (16 MiB by default).
    a = request(
        server,
        "POST",
        "/api/v1/records/batch",
        {"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        chunked(total),
    )
    problem(a, 413, "body_too_large")
    assert a.sent < total // 4

    growth = server.peak_rss() - base
    assert growth < 96 * MB, f"peak memory grew by {growth / MB:.0f} MiB"

    # The server is still fine.
    assert request(server, "GET", "/api/v1/log").status == 200


def test_content_length_with_transfer_encoding_is_refused_before_the_body(
    server: Server,
) -> None:
    # h11 frames such a request by Transfer-Encoding; the Content-Length is a lie that
    # once let the whole body through the limit (then 413, after reading all of it).
    total = 64 * MB
    for path, small in (("/api/v1/records", "100"), ("/api/v1/records/batch", "2")):
        a = request(
            server,
            "POST",
            path,
            {"Content-Type": "text/plain", "Content-Length": small, "Transfer-Encoding": "chunked"},
            chunked(total),
        )
        problem(a, 400, "bad_request")
        assert "Content-Length and Transfer-Encoding" in str(a.json()["detail"])
        assert a.headers["connection"] == "close"
        assert a.sent < total // 4, f"the answer came after {a.sent} of {total} bytes"
    assert request(server, "GET", "/api/v1/log").status == 200


#: The headers of a body over every limit, in each framing a client may use: announced
#: by Content-Length, chunked, and both (the length small, or as large as the body).
FRAMINGS: dict[str, dict[str, str]] = {
    "content-length": {"Content-Length": str(24 * MB)},
    "chunked": {"Transfer-Encoding": "chunked"},
    "both": {"Content-Length": "10", "Transfer-Encoding": "chunked"},
    "both-large": {"Content-Length": str(24 * MB), "Transfer-Encoding": "chunked"},
}


def test_memory_stays_bounded_under_large_bodies_in_any_framing(tmp_path: Path) -> None:
    """24 clients at once sending 24 MiB bodies in every framing: peak RSS grows < 10 MiB.

    The batch limit is lowered to 256 KiB: the application may hold up to the limit
    of each request it reads (16 MiB by default), and the bound tested is that it
    never holds more, whatever the framing.
    """
    with serve(tmp_path, max_batch_body_bytes=str(256 * 1024)) as server:
        _large_bodies_in_any_framing(server)


def _large_bodies_in_any_framing(server: Server) -> None:
    total = 24 * MB
    paths = ("/api/v1/records", "/api/v1/records/batch")

    def one_round(clients_per_case: int) -> list[tuple[str, Answer]]:
        results: list[tuple[str, Answer]] = []
        lock = threading.Lock()

        def client(name: str, path: str) -> None:
            headers = FRAMINGS[name]
            body = chunked(total) if "Transfer-Encoding" in headers else iter([b"a" * MB] * 24)
            a = request(server, "POST", path, {"Content-Type": "application/json", **headers}, body)
            with lock:
                results.append((name, a))

        threads = [
            threading.Thread(target=client, args=(name, path))
            for name in FRAMINGS
            for path in paths
            for _ in range(clients_per_case)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert len(results) == len(threads), "a client got no answer"
        return results

    one_round(1)  # warm up: the code paths of each refusal, imported and run once
    base = server.peak_rss()
    started = time.monotonic()
    results = one_round(3)  # 24 clients, 576 MiB announced in all
    elapsed = time.monotonic() - started
    growth = server.peak_rss() - base
    assert growth < 10 * MB, f"peak memory grew by {growth / MB:.1f} MiB ({elapsed:.1f} s)"
    for name, a in results:
        assert a.status in (400, 413), (name, a.status, a.body[:200])
        assert a.headers["connection"] == "close", name
        assert a.sent < total // 2, (name, a.sent)
    assert request(server, "GET", "/api/v1/log").status == 200


def test_uploads_at_once_share_one_bounded_budget(tmp_path: Path) -> None:
    """20 clients at once, each a chunked body over a 4 MiB batch limit: without a
    budget for all bodies together the server would hold 20 x 4 MiB; with it (4 MiB)
    the others are answered 503 and peak RSS grows by less than 10 MiB."""
    budget = str(4 * MB)
    with serve(tmp_path, max_batch_body_bytes=budget, max_buffered_body_bytes=budget) as s:
        request(s, "POST", "/api/v1/records/batch", {"Transfer-Encoding": "chunked"}, chunked(MB))
        base = s.peak_rss()
        answers: list[Answer] = []

        def client() -> None:
            headers = {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
            answers.append(request(s, "POST", "/api/v1/records/batch", headers, chunked(24 * MB)))

        threads = [threading.Thread(target=client) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        growth = s.peak_rss() - base
        assert len(answers) == 20
        assert growth < 10 * MB, f"peak memory grew by {growth / MB:.1f} MiB"
        for a in answers:
            assert a.status in (413, 503), (a.status, a.body[:200])
            if a.status == 503:
                problem(a, 503, "overloaded")
                assert a.headers["retry-after"] == "1"
            assert a.headers["connection"] == "close"
        assert request(s, "GET", "/api/v1/log").status == 200


def test_gzip_bombs_get_413_with_bounded_memory(server: Server) -> None:
    base = server.peak_rss()
    small_bomb = gzip.compress(b"\n" * (64 * MB), compresslevel=9)  # ~64 KiB
    big_bomb = gzip.compress(b"[" * (1024 * MB), compresslevel=9)  # ~1 MiB
    assert len(small_bomb) < 100 * 1024 and len(big_bomb) < 2 * MB

    gz = {"Content-Encoding": "gzip"}
    a = request(server, "POST", "/api/v1/records", {**gz, "Content-Type": "text/plain"}, small_bomb)
    problem(a, 413, "body_too_large")
    a = request(
        server,
        "POST",
        "/api/v1/records/batch",
        {**gz, "Content-Type": "application/json"},
        big_bomb,
    )
    problem(a, 413, "body_too_large")
    growth = server.peak_rss() - base
    assert growth < 96 * MB, f"peak memory grew by {growth / MB:.0f} MiB for a 1 GiB bomb"

    # gzip within the limit is decoded; broken gzip and other encodings are refused.
    record = now_maker().register("gzip").encode()
    a = request(
        server,
        "POST",
        "/api/v1/records",
        {**gz, "Content-Type": "text/plain"},
        gzip.compress(record),
    )
    assert a.status == 201, a.body
    a = request(
        server, "POST", "/api/v1/records", {**gz, "Content-Type": "text/plain"}, b"not gzip"
    )
    problem(a, 400, "bad_request")
    a = request(
        server,
        "POST",
        "/api/v1/records",
        {"Content-Encoding": "br", "Content-Type": "text/plain"},
        record,
    )
    problem(a, 415, "unsupported_media_type")


# --- JSON ------------------------------------------------------------------------------


def test_deep_and_huge_json_get_a_4xx(server: Server) -> None:
    js = {"Content-Type": "application/json"}
    deep = b"[" * 100_000 + b"]" * 100_000
    problem(request(server, "POST", "/api/v1/records/batch", js, deep), 400, "malformed_json")
    deep_object = b'{"records":' * 20_000 + b"[]" + b"}" * 20_000
    problem(
        request(server, "POST", "/api/v1/records/batch", js, deep_object), 400, "malformed_json"
    )
    # Deep enough to break the JSON parser, small enough for a single record's limit.
    deep = b'{"record":' + b"[" * 30_000 + b"]" * 30_000 + b"}"
    problem(request(server, "POST", "/api/v1/records", js, deep), 400, "malformed_json")

    huge = json.dumps(["x" * 1000] * 20_000).encode()  # 20 MB, over the batch limit
    problem(request(server, "POST", "/api/v1/records/batch", js, huge), 413, "body_too_large")
    many = json.dumps(["x"] * 5_000).encode()  # small, but more records than allowed
    problem(request(server, "POST", "/api/v1/records/batch", js, many), 413, "too_many_records")
    wide = json.dumps({"record": "x", **{f"k{i}": i for i in range(5000)}}).encode()[:60_000]
    a = request(server, "POST", "/api/v1/records", js, wide)
    assert 400 <= a.status < 500
    assert request(server, "GET", "/healthz").status == 200


# --- rate limits and X-Forwarded-For ---------------------------------------------------


def test_rate_limit_cannot_be_escaped_with_forwarded_for(tmp_path: Path) -> None:
    with serve(tmp_path / "direct", rate_limit_rps="0.01", rate_limit_burst="3") as s:
        answers = [
            request(s, "GET", "/api/v1/log", {"X-Forwarded-For": f"203.0.113.{i}"})
            for i in range(5)
        ]
        assert [a.status for a in answers[:3]] == [200, 200, 200]
        for a in answers[3:]:
            problem(a, 429, "rate_limited")
            assert int(a.headers["retry-after"]) >= 1
        # Forwarded and Forwarded-For spellings change nothing either.
        a = request(s, "GET", "/api/v1/log", {"Forwarded": "for=198.51.100.9"})
        problem(a, 429, "rate_limited")
        # Tiles and the checkpoint are not limited (they are meant to be mirrored).
        assert request(s, "GET", "/checkpoint").status == 200

    with serve(
        tmp_path / "proxied",
        rate_limit_rps="0.01",
        rate_limit_burst="1",
        trusted_proxies="127.0.0.1/32",
    ) as s:
        # Behind a trusted proxy, each forwarded client has its own bucket ...
        for i in range(3):
            a = request(s, "GET", "/api/v1/log", {"X-Forwarded-For": f"203.0.113.{i}"})
            assert a.status == 200, a.body
        # ... and what a client writes left of what the proxy appended proves nothing.
        a = request(s, "GET", "/api/v1/log", {"X-Forwarded-For": "192.0.2.1, 203.0.113.0"})
        problem(a, 429, "rate_limited")


# --- CORS and administrative operations ------------------------------------------------

PUBLIC_READS = [
    "/checkpoint",
    "/tile/0/000.p/1",
    "/tile/entries/000.p/1",
    "/api/v1/log",
    "/api/v1/entries/0",
    "/api/v1/receipts/0",
    "/api/v1/proofs/inclusion?index=0",
    "/api/v1/proofs/consistency?old_size=0",
    "/api/v1/statements",
]


def test_cors_is_open_for_public_reads_only(server: Server) -> None:
    record = now_maker().register("cors").encode()
    origin = {"Origin": "https://elsewhere.example"}
    a = request(server, "POST", "/api/v1/records", {**origin, "Content-Type": "text/plain"}, record)
    assert a.status == 201, a.body
    assert "access-control-allow-origin" not in a.headers
    for path in PUBLIC_READS:
        a = request(server, "GET", path, origin)
        assert a.status == 200, (path, a.body)
        assert a.headers["access-control-allow-origin"] == "*", path
    preflight = {**origin, "Access-Control-Request-Method": "POST"}
    for path in ("/api/v1/records", "/api/v1/records/batch"):
        a = request(server, "OPTIONS", path, preflight)
        problem(a, 403, "cross_origin_write")
        assert "access-control-allow-origin" not in a.headers
        a = request(server, "POST", path, {**origin, "Content-Type": "text/plain"}, b"x\n")
        assert "access-control-allow-origin" not in a.headers
    a = request(
        server, "OPTIONS", "/api/v1/log", {**origin, "Access-Control-Request-Method": "GET"}
    )
    assert a.status == 204
    assert a.headers["access-control-allow-origin"] == "*"
    assert a.headers["access-control-allow-methods"] == "GET, HEAD"


def test_no_administrative_operation_exists(tmp_path: Path, server: Server) -> None:
    """Every operation reads, except submitting a signed record: no admin surface."""
    app = build_app(None, Settings(data_dir=tmp_path, origin=ORIGIN), "")  # type: ignore[arg-type]
    routes = [*app.routes, *(r for router in ROUTERS for r in router.routes)]
    writes, paths = set(), set()
    for route in routes:
        methods = getattr(route, "methods", None)
        if methods is None:  # an included router: its routes are listed above
            continue
        paths.add(route.path)  # type: ignore[attr-defined]
        for method in methods - {"GET", "HEAD"}:
            writes.add((method, route.path))  # type: ignore[attr-defined]
    assert writes == {("POST", "/api/v1/records"), ("POST", "/api/v1/records/batch")}
    assert "/metrics" in paths and "/api/v1/log" in paths  # the enumeration sees them all
    for method in ("PUT", "PATCH", "DELETE"):
        for path in ["/api/v1/records", "/api/v1/entries/0", "/checkpoint", "/api/v1/log"]:
            a = request(server, method, path)
            problem(a, 405, "method_not_allowed")
    for path in ("/admin", "/api/v1/admin", "/debug", "/api/v1/keys", "/api/v1/config"):
        problem(request(server, "GET", path), 404, "not_found")
