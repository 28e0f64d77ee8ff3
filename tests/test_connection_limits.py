"""Slow and idle connections against a real server (``python -m api.server``, uvicorn).

With short limits set through the settings (header deadline 1 s, body deadline 2 s,
keep-alive 1 s, at most 20 connections): a connection that sends nothing, or its
headers or its body a byte at a time, is closed after its deadline (408 when part
of a request came), an idle keep-alive connection after the keep-alive timeout,
and a connection over the cap is answered 503 at once; the server serves again as
soon as the held connections are gone. Memory stays bounded while hundreds of idle
connections are held.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_hostile_http import MB, Server, problem, request, serve

LIMITS = {
    "header_timeout_s": "1",
    "body_timeout_s": "2",
    "keep_alive_timeout_s": "1",
    "max_connections": "20",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(tmp_path_factory.mktemp("limits"), **LIMITS) as s:
        yield s


def connect(server: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def closed_after(
    sock: socket.socket, trickle: bytes = b"", every: float = 0.2, window: float = 10
) -> tuple[bool, bytes]:
    """Whether the server closed ``sock`` within ``window`` seconds (sending ``trickle``
    every ``every`` s meanwhile), and what it wrote before closing. The window is far
    beyond the deadlines under test: a connection still open at its end was held."""
    start = time.monotonic()
    received = b""
    closed = False
    sock.settimeout(every)
    while time.monotonic() - start < window:
        if trickle:
            try:
                sock.sendall(trickle)
            except OSError:  # closed by the server
                closed = True
                break
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            closed = True
            break
        if not chunk:
            closed = True
            break
        received += chunk
    sock.close()
    return closed, received


def answer_of(data: bytes) -> tuple[int, bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_an_idle_new_connection_is_closed_after_the_header_deadline(server: Server) -> None:
    closed, data = closed_after(connect(server))
    assert closed, "the server held an idle connection"
    assert data == b""  # nothing was asked: nothing is answered


def test_slow_headers_are_cut_off_with_408(server: Server) -> None:
    sock = connect(server)
    sock.sendall(b"GET /api/v1/log HTTP/1.1\r\nHost: x\r\n")
    closed, data = closed_after(sock, trickle=b"X-Slow: 1\r\n")  # never ends the headers
    assert closed, "the server held a connection whose headers never ended"
    status, body = answer_of(data)
    assert status == 408
    assert b'"code":"request_timeout"' in body
    assert b"connection: close" in data.lower()


def test_a_slow_body_is_cut_off_with_408(server: Server) -> None:
    sock = connect(server)
    sock.sendall(
        b"POST /api/v1/records HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
        b"Content-Length: 10000\r\n\r\n"
    )
    closed, data = closed_after(sock, trickle=b"x")  # 5 bytes a second
    assert closed, "the server held a connection whose body never ended"
    status, body = answer_of(data)
    assert status == 408
    assert b'"code":"request_timeout"' in body


def test_an_idle_keep_alive_connection_is_closed(server: Server) -> None:
    sock = connect(server)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    closed, data = closed_after(sock)
    assert data.startswith(b"HTTP/1.1 200"), data[:100]
    assert closed, "the server held an idle keep-alive connection"


def test_connections_over_the_cap_get_503_and_the_server_recovers(server: Server) -> None:
    held = [connect(server) for _ in range(20)]
    time.sleep(0.3)  # the server has accepted them all
    a = request(server, "GET", "/api/v1/log")
    problem(a, 503, "overloaded")
    assert a.headers["retry-after"] == "1"
    assert a.headers["connection"] == "close"
    for sock in held:  # the held connections are closed by their deadline ...
        closed, _ = closed_after(sock)
        assert closed
    # ... and the server serves again.
    assert request(server, "GET", "/api/v1/log").status == 200


def test_memory_stays_bounded_with_many_idle_connections(tmp_path: Path) -> None:
    with serve(tmp_path, header_timeout_s="30", max_connections="2000") as s:
        warm = [connect(s) for _ in range(50)]
        time.sleep(0.5)
        base = s.peak_rss()
        held = [connect(s) for _ in range(1000)]
        time.sleep(1.0)
        assert request(s, "GET", "/api/v1/log").status == 200  # still serving
        growth = s.peak_rss() - base
        for sock in warm + held:
            sock.close()
    print(f"1000 idle connections: peak RSS growth {growth / MB:.2f} MiB")
    assert growth < 10 * MB, f"1000 idle connections grew peak memory by {growth / MB:.1f} MiB"
