"""Real servers on loopback for the domain-proof tests: HTTPS with a test CA, and DNS.

Nothing here talks to anything but 127.0.0.1. :class:`TestCA` makes a certificate
authority and leaf certificates with ``cryptography.x509``; :class:`ProofHTTPSServer`
serves ``/.well-known/endorsement-ledger`` per test domain (by SNI and Host), and
counts every TCP connection it accepts; :class:`TxtDNSServer` answers TXT queries
over UDP and TCP on one port from a zone given as a dict. The DNS messages are
built here by hand from RFC 1035, independently of ``ledger.verify.dnstxt``.
"""

from __future__ import annotations

import datetime
import http.server
import socket
import socketserver
import ssl
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


class TestCA:
    """A certificate authority made for one test run."""

    __test__ = False

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "endorsement-ledger test CA")])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, key_cert_sign=True, crl_sign=True,
                    content_commitment=False, key_encipherment=False, data_encipherment=False,
                    key_agreement=False, encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )  # fmt: skip
        self.ca_file = directory / "ca.pem"
        self.ca_file.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, *names: str) -> tuple[Path, Path]:
        """A leaf certificate for ``names``; the paths of its PEM chain and key."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), False
            )
            .sign(self.key, hashes.SHA256())
        )
        stem = self.directory / names[0]
        cert_file, key_file = stem.with_suffix(".crt"), stem.with_suffix(".key")
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return cert_file, key_file


@dataclass
class Route:
    """What the HTTPS server answers for one domain."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # before the status line
    trickle: float = 0.0  # seconds between body bytes
    no_length: bool = False  # close-delimited body


class _Handler(http.server.BaseHTTPRequestHandler):
    server: ProofHTTPSServer

    def do_GET(self) -> None:
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
        self.server.requests.append((host, self.path))
        route = self.server.routes.get(host)
        if route is None or self.path != "/.well-known/endorsement-ledger":
            route = Route(status=404, body=b"not found\n")
        if route.delay:
            time.sleep(route.delay)
        self.send_response(route.status)
        for k, v in route.headers.items():
            self.send_header(k, v)
        if not route.no_length:
            self.send_header("Content-Length", str(len(route.body)))
        self.end_headers()
        try:
            if route.trickle:
                for b in route.body:
                    self.wfile.write(bytes([b]))
                    self.wfile.flush()
                    time.sleep(route.trickle)
            else:
                self.wfile.write(route.body)
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:
        pass


class ProofHTTPSServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    """HTTPS on 127.0.0.1: one certificate per SNI name, routes by Host."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, certs: dict[str, tuple[Path, Path]], default: str) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, str]] = []
        self.accepted = 0
        self._contexts: dict[str, ssl.SSLContext] = {}
        for name, (cert_file, key_file) in certs.items():
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert_file, key_file)
            self._contexts[name] = ctx
        self.tls = self._contexts[default]
        self.tls.sni_callback = self._pick
        super().__init__(("127.0.0.1", 0), _Handler)

    def _pick(self, sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        if name in self._contexts:
            sock.context = self._contexts[name]

    def server_bind(self) -> None:  # no getfqdn(): no name lookups at all
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]  # type: ignore[assignment]

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = self.socket.accept()
        self.accepted += 1
        sock.settimeout(10)
        return self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def finish_request(self, request: Any, client_address: Any) -> None:
        try:
            request.do_handshake()
        except (ssl.SSLError, OSError):
            return
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def start(self) -> ProofHTTPSServer:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self


# --- DNS -------------------------------------------------------------------------------

#: A zone entry: a list of TXT records (each a list of strings), or one of the behaviours
#: "nxdomain", "servfail", "refused", "silent", or a callable building the answer.
ZoneEntry = list[list[bytes]] | str | Callable[[bytes, str], bytes | list[bytes] | None]


def encode_name(name: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode() for p in name.split(".") if p) + b"\0"


def txt_rdata(strings: list[bytes]) -> bytes:
    return b"".join(bytes([len(s)]) + s for s in strings)


def answer(query: bytes, *, rcode: int = 0, records: list[bytes] = (), tc: bool = False,  # type: ignore[assignment]
           qid: int | None = None) -> bytes:  # fmt: skip
    """A response echoing the question of ``query`` with the given answer RRs."""
    (rid,) = struct.unpack_from(">H", query)
    end = 12
    while query[end] != 0:
        end += 1 + query[end]
    question = query[12 : end + 5]
    flags = 0x8180 | rcode | (0x0200 if tc else 0)
    header = struct.pack(">HHHHHH", rid if qid is None else qid, flags, 1, len(records), 0, 0)
    return header + question + b"".join(records)


def rr(rtype: int, rdata: bytes, owner: bytes = b"\xc0\x0c") -> bytes:
    """One resource record; by default its owner is a pointer to the question name."""
    return owner + struct.pack(">HHIH", rtype, 1, 300, len(rdata)) + rdata


def qname_of(query: bytes) -> str:
    labels, pos = [], 12
    while query[pos]:
        labels.append(query[pos + 1 : pos + 1 + query[pos]].decode())
        pos += 1 + query[pos]
    return ".".join(labels).lower()


class TxtDNSServer:
    """A DNS server on 127.0.0.1 (UDP and TCP, one port) answering from ``zone``."""

    def __init__(self, zone: dict[str, ZoneEntry]) -> None:
        self.zone = zone
        self.queries: list[tuple[str, str]] = []  # (transport, name)
        for _ in range(20):
            self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.tcp.bind(("127.0.0.1", 0))
            self.port = self.tcp.getsockname()[1]
            self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                self.udp.bind(("127.0.0.1", self.port))
                break
            except OSError:
                self.tcp.close()
                self.udp.close()
        self.tcp.listen(8)
        self._stop = threading.Event()

    def respond(self, query: bytes, transport: str) -> bytes | list[bytes] | None:
        name = qname_of(query)
        self.queries.append((transport, name))
        entry = self.zone.get(name, "nxdomain")
        if callable(entry):
            return entry(query, transport)
        if entry == "nxdomain":
            return answer(query, rcode=3)
        if entry == "servfail":
            return answer(query, rcode=2)
        if entry == "refused":
            return answer(query, rcode=5)
        if entry == "silent":
            return None
        assert isinstance(entry, list)
        return answer(query, records=[rr(16, txt_rdata(r)) for r in entry])

    def _udp_loop(self) -> None:
        self.udp.settimeout(0.2)
        while not self._stop.is_set():
            try:
                query, addr = self.udp.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            reply = self.respond(query, "udp")
            for one in [reply] if isinstance(reply, bytes) else reply or []:
                self.udp.sendto(one, addr)

    def _tcp_loop(self) -> None:
        self.tcp.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.tcp.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    (n,) = struct.unpack(">H", conn.recv(2))
                    query = conn.recv(n)
                    reply = self.respond(query, "tcp")
                    for one in [reply] if isinstance(reply, bytes) else reply or []:
                        conn.sendall(struct.pack(">H", len(one)) + one)
                except (OSError, struct.error):
                    pass

    def start(self) -> TxtDNSServer:
        threading.Thread(target=self._udp_loop, daemon=True).start()
        threading.Thread(target=self._tcp_loop, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.udp.close()
        self.tcp.close()
