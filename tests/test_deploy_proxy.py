"""deploy/proxy.conf, the TLS proxy of docker-compose.yml, in a real nginx on loopback.

The upstreams are real: ``ledger serve`` on SQLite for ``api:8000`` and a static server
of a written log for ``web:8080`` (their names are rewritten to loopback ports, and the
certificate paths to a test certificate made here). Checked: TLS, the routing of
``/api/`` and of everything else, the redirect from HTTP, ``/metrics`` and health
endpoints not public, the global submission limit (429 past the burst, whatever the
api's workers), and the header deadline (shortened here to 1 s).
"""

from __future__ import annotations

import datetime
import functools
import http.client
import http.server
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.crashharness import free_port
from tests.logfactory import LogFactory

ROOT = Path(__file__).resolve().parent.parent
PROXY_CONF = ROOT / "deploy" / "proxy.conf"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)

pytestmark = [
    pytest.mark.skipif(
        NGINX is None, reason="nginx is not installed (apt-get install nginx-light)"
    ),
    pytest.mark.skipif(os.geteuid() != 0, reason="nginx needs root for its default temp paths"),
]


def _certificate(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "tls_cert", directory / "tls_key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _wait_port(port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            assert proc is None or proc.poll() is None, "the process exited"
            assert time.monotonic() < deadline, f"nothing listens on {port}"
            time.sleep(0.1)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def stack() -> Iterator[dict[str, Any]]:
    work = Path(tempfile.mkdtemp(prefix="ledger-proxy-"))
    work.chmod(0o755)
    procs: list[subprocess.Popen[bytes]] = []
    httpd = None
    try:
        f = LogFactory(seed="proxy")
        f.grow(30)
        mirror = f.write(work / "mirror")
        httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(mirror))
        )
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        web_port = httpd.server_address[1]

        api_port = free_port()
        env = {**os.environ, "LEDGER_RATE_LIMIT_RPS": "0", "LEDGER_TRUSTED_PROXIES": "127.0.0.1"}
        api = subprocess.Popen(
            [sys.executable, "-m", "cli", "serve", "--data-dir", str(work / "data"),
             "--origin", "proxy.test/log", "--host", "127.0.0.1", "--port", str(api_port)],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        procs.append(api)
        _wait_port(api_port, api)

        cert, key = _certificate(work)
        https, plain = free_port(), free_port()
        text = PROXY_CONF.read_text(encoding="utf-8")
        for old, new in (
            ("server api:8000;", f"server 127.0.0.1:{api_port};"),
            ("server web:8080;", f"server 127.0.0.1:{web_port};"),
            ("/run/secrets/tls_cert", str(cert)),
            ("/run/secrets/tls_key", str(key)),
            ("listen 8443 ssl", f"listen 127.0.0.1:{https} ssl"),
            ("listen 8080 default_server", f"listen 127.0.0.1:{plain} default_server"),
            ("pid /tmp/proxy.pid", f"pid {work / 'proxy.pid'}"),
            ("access_log /dev/stdout", "access_log off"),
            ("client_header_timeout 10s", "client_header_timeout 1s"),
        ):
            assert old in text, old
            text = text.replace(old, new)
        conf = work / "proxy.conf"
        conf.write_text(text)
        check = subprocess.run(
            [str(NGINX), "-t", "-q", "-c", str(conf), "-e", str(work / "error.log")],
            capture_output=True,
            text=True,
            check=False,
        )
        assert check.returncode == 0, check.stderr
        nginx = subprocess.Popen(
            [str(NGINX), "-c", str(conf), "-e", str(work / "error.log"), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(nginx)
        _wait_port(https, nginx)
        context = ssl.create_default_context(cafile=str(cert))
        yield {"https": https, "plain": plain, "ssl": context, "mirror": mirror}
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        shutil.rmtree(work, ignore_errors=True)


def _https(
    stack: dict[str, Any], method: str, path: str, body: bytes | None = None
) -> tuple[int, bytes]:
    c = http.client.HTTPSConnection("localhost", stack["https"], context=stack["ssl"], timeout=10)
    try:
        c.request(method, path, body, {"Content-Type": "application/json"} if body else {})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def test_reads_go_to_the_mirror_and_the_api_under_tls(stack: dict[str, Any]) -> None:
    status, body = _https(stack, "GET", "/checkpoint")
    assert status == 200 and body == (stack["mirror"] / "checkpoint").read_bytes()
    status, body = _https(stack, "GET", "/api/v1/statements")
    assert status == 200 and b'"items"' in body
    status, _ = _https(stack, "GET", "/openapi.json")
    assert status == 200


def test_http_redirects_to_https(stack: dict[str, Any]) -> None:
    c = http.client.HTTPConnection("127.0.0.1", stack["plain"], timeout=10)
    try:
        c.request("GET", "/checkpoint", headers={"Host": "localhost"})
        r = c.getresponse()
        r.read()
        assert r.status == 308 and r.getheader("Location") == "https://localhost/checkpoint"
    finally:
        c.close()


def test_metrics_and_health_are_not_public(stack: dict[str, Any]) -> None:
    for path in ("/metrics", "/livez", "/readyz", "/healthz"):
        assert _https(stack, "GET", path)[0] == 404, path


def test_submissions_are_limited_for_the_server_as_a_whole(stack: dict[str, Any]) -> None:
    statuses = [
        _https(stack, "POST", "/api/v1/records", b'{"record": "not a record"}')[0]
        for _ in range(80)
    ]
    limited = statuses.count(429)
    assert limited > 0, statuses
    assert all(s in (400, 422, 429) for s in statuses), statuses
    # reads are not counted against the submissions
    assert _https(stack, "GET", "/api/v1/statements")[0] == 200


def test_a_client_that_sends_no_headers_is_cut_off(stack: dict[str, Any]) -> None:
    """Cut off by the proxy's header deadline (1 s here, 10 s as deployed): the client's
    own wait, 20 s, never runs out."""
    raw = socket.create_connection(("127.0.0.1", stack["https"]), timeout=20)
    with stack["ssl"].wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(b"GET /checkpoint HTTP/1.1\r\nHost: local")  # and then nothing
        data = b""
        try:
            while chunk := tls.recv(4096):
                data += chunk
        except TimeoutError:
            pytest.fail("the proxy held a client that never finished its headers")
        except (ConnectionError, ssl.SSLError):
            pass
    assert data == b"" or data.startswith(b"HTTP/1.1 408"), data[:100]
