"""ledger.verify.source: reading tlog-tiles paths from a directory or over HTTP, with bounds."""

from __future__ import annotations

import gzip
import http.server
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.core.errors import TooLargeError
from ledger.verify.source import (
    MAX_TILE_BYTES,
    DirectorySource,
    HttpSource,
    NotFoundError,
    SourceError,
    max_size,
    open_source,
)


def test_max_size_by_path() -> None:
    assert max_size("checkpoint") == 1 << 20
    assert max_size("tile/0/000") == 8192
    assert max_size("tile/entries/x001/002.p/5") == 256 * (2 + 65535)
    with pytest.raises(ValueError):
        max_size("robots.txt")


def test_directory_source(tmp_path: Path) -> None:
    (tmp_path / "tile" / "0").mkdir(parents=True)
    (tmp_path / "checkpoint").write_bytes(b"cp\n")
    (tmp_path / "tile" / "0" / "000").write_bytes(bytes(MAX_TILE_BYTES + 1))
    src = DirectorySource(tmp_path)
    assert src.fetch("checkpoint") == b"cp\n"
    assert (src.requests, src.bytes_read) == (1, 3)
    with pytest.raises(TooLargeError) as e:
        src.fetch("tile/0/000")
    assert e.value.field == "tile/0/000"
    with pytest.raises(NotFoundError) as nf:
        src.fetch("tile/0/001")
    assert isinstance(nf.value, LookupError)  # TileHashReader falls back on LookupError
    assert "tile/0/001" in str(nf.value)
    for bad in ("../checkpoint", "tile/../../etc/passwd", "/checkpoint", "tile//0"):
        with pytest.raises(ValueError):
            src.fetch(bad)


def test_open_source_kinds(tmp_path: Path) -> None:
    assert isinstance(open_source(str(tmp_path)), DirectorySource)
    assert isinstance(open_source(tmp_path.as_uri()), DirectorySource)
    assert isinstance(open_source("https://ledger.example.org/log"), HttpSource)
    with pytest.raises(SourceError, match="no such directory"):
        open_source(str(tmp_path / "missing"))
    with pytest.raises(SourceError, match="unsupported URL scheme"):
        open_source("ftp://example.org/log")
    with pytest.raises(SourceError):
        HttpSource("https://example.org/log?x=1")


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves a few canned answers; counts requests per path."""

    hits: dict[str, int]
    root: Path

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        path = self.path.removeprefix("/log/")
        self.hits[path] = self.hits.get(path, 0) + 1
        if path == "tile/0/001" and self.hits[path] == 1:
            self.send_error(503)  # transient: retried
            return
        if path == "tile/0/002":
            self.send_error(500)  # always failing
            return
        if path == "tile/0/003":
            time.sleep(1.0)  # slower than the client's timeout
        if path == "tile/0/004":
            self.send_error(403)
            return
        file = self.root / path
        if not file.is_file():
            self.send_error(404)
            return
        body = file.read_bytes()
        self.send_response(200)
        if path.startswith("tile/entries/") or path in ("tile/0/006", "tile/0/007"):
            body = gzip.compress(body)
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # the client hanging up on the slow answer is expected


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, dict[str, int]]]:
    (tmp_path / "tile" / "0").mkdir(parents=True)
    (tmp_path / "tile" / "entries").mkdir(parents=True)
    (tmp_path / "checkpoint").write_bytes(b"checkpoint text\n")
    for n in ("001", "003"):
        (tmp_path / "tile" / "0" / n).write_bytes(bytes(8192))
    (tmp_path / "tile" / "0" / "005").write_bytes(bytes(8193))
    # Hash tiles are random: gzipped, a full tile is larger than 8,192 bytes.
    (tmp_path / "tile" / "0" / "006").write_bytes(random.Random(6).randbytes(8192))
    (tmp_path / "tile" / "0" / "007").write_bytes(bytes(8193))  # small on the wire
    (tmp_path / "tile" / "entries" / "000").write_bytes(b"\x00\x03abc" * 1000)
    hits: dict[str, int] = {}
    handler = type("H", (_Handler,), {"hits": hits, "root": tmp_path})
    httpd = _QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/log", hits
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_http_source(server: tuple[str, dict[str, int]]) -> None:
    url, hits = server
    src = HttpSource(url + "/", timeout=0.3, retries=1, backoff_s=0.01)
    assert src.location == url + "/"
    assert src.fetch("checkpoint") == b"checkpoint text\n"
    # gzip-encoded bundles are decompressed
    assert src.fetch("tile/entries/000") == b"\x00\x03abc" * 1000
    # 503 then 200: retried once
    assert src.fetch("tile/0/001") == bytes(8192)
    assert hits["tile/0/001"] == 2
    with pytest.raises(NotFoundError, match="HTTP 404"):
        src.fetch("tile/0/000")
    with pytest.raises(SourceError, match="HTTP 500") as e:
        src.fetch("tile/0/002")
    assert e.value.field == "tile/0/002"
    assert hits["tile/0/002"] == 2  # first try and one retry
    with pytest.raises(SourceError, match=r"timed out after 0\.3 s"):
        src.fetch("tile/0/003")
    with pytest.raises(SourceError, match="HTTP 403"):
        src.fetch("tile/0/004")
    with pytest.raises(TooLargeError):
        src.fetch("tile/0/005")
    # A full hash tile whose gzip encoding is longer than the tile is accepted...
    tile = src.fetch("tile/0/006")
    assert tile == random.Random(6).randbytes(8192)
    # ...but the decoded size is still bounded.
    with pytest.raises(TooLargeError):
        src.fetch("tile/0/007")


def test_http_source_connection_refused() -> None:
    src = HttpSource("http://127.0.0.1:9/log", timeout=1, retries=0)
    with pytest.raises(SourceError, match="cannot connect"):
        src.fetch("checkpoint")
