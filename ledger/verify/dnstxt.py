"""A minimal DNS client for one question: the TXT records of a name (RFC 1035).

Why not a resolver library: the standalone verifier (``ledger-verify``) installs
with nothing but ``cryptography`` (tests/test_import_boundary.py), and it must check
domains too. What it needs is one fixed exchange with the machine's configured
recursive resolver: one question (``<name> IN TXT``, recursion desired), the
answer section's TXT records for that name (following CNAMEs the resolver put in
the answer), over UDP with a retry over TCP when the answer is truncated. That is
small enough to write and test completely here: the parser is bounded (names of
at most 255 bytes, compression pointers only backwards, every length checked
against the message) and fuzzed in tests/test_domain_dns.py. What it does not do,
and dnspython would not do by default either: DNSSEC validation; the answer is as
trustworthy as the resolver and the network path to it, which is why a domain
proof is evidence at a time, checked by each reader, not a signature.

The resolver is the first ``nameserver`` of ``/etc/resolv.conf`` that answers (the
local resolver ``127.0.0.1`` when the file names none, as resolv.conf(5) says).
Which resolver is asked is the operator's choice, never a request's: a request
chooses only the name asked about.

:func:`query_txt` returns the records (each a list of its character-strings), an
empty list when the name exists without TXT records, or raises
:class:`NoSuchNameError` (NXDOMAIN) or :class:`DnsError` (no answer in time,
SERVFAIL, REFUSED, a malformed or mismatched answer).
"""

from __future__ import annotations

import secrets
import socket
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass

from ledger.core.errors import LedgerError

TYPE_TXT = 16
TYPE_CNAME = 5
TYPE_OPT = 41
CLASS_IN = 1
#: The UDP payload size announced with EDNS(0) (RFC 6891), the DNS Flag Day 2020 value.
EDNS_UDP_SIZE = 1232
#: CNAMEs followed inside one answer.
MAX_CNAME_CHAIN = 8
RESOLV_CONF = "/etc/resolv.conf"
DNS_PORT = 53


class DnsError(LedgerError):
    """No usable answer: timeout, server failure, refusal, or a malformed answer."""

    code = "dns_error"


class NoSuchNameError(DnsError):
    """The resolver answered NXDOMAIN: the name does not exist."""

    code = "dns_nxdomain"


@dataclass(frozen=True)
class Nameserver:
    host: str
    port: int = DNS_PORT


def system_nameservers(path: str = RESOLV_CONF) -> list[Nameserver]:
    """The ``nameserver`` lines of resolv.conf, in order (127.0.0.1 if there are none)."""
    found: list[Nameserver] = []
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "nameserver":
                    found.append(Nameserver(parts[1].split("%")[0]))
    except OSError:
        pass
    return found or [Nameserver("127.0.0.1")]


def _encode_name(name: str) -> bytes:
    labels = name.rstrip(".").split(".")
    out = bytearray()
    for label in labels:
        raw = label.encode("ascii")
        if not 1 <= len(raw) <= 63:
            raise DnsError("a DNS label is 1 to 63 bytes", found=name)
        out += bytes([len(raw)]) + raw
    out += b"\x00"
    if len(out) > 255:
        raise DnsError("a DNS name is at most 255 bytes", found=name)
    return bytes(out)


def build_query(name: str, qid: int) -> bytes:
    """A query for ``name IN TXT``: recursion desired, one EDNS(0) OPT record."""
    header = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 1)
    question = _encode_name(name) + struct.pack(">HH", TYPE_TXT, CLASS_IN)
    opt = b"\x00" + struct.pack(">HHIH", TYPE_OPT, EDNS_UDP_SIZE, 0, 0)
    return header + question + opt


def _read_name(msg: bytes, offset: int) -> tuple[str, int]:
    """The name at ``offset`` (lowercased) and the offset after it in place."""
    labels: list[str] = []
    end: int | None = None
    total = 0
    pos = offset
    while True:
        if pos >= len(msg):
            raise DnsError("name runs past the end of the message")
        length = msg[pos]
        if length & 0xC0 == 0xC0:
            if pos + 1 >= len(msg):
                raise DnsError("truncated compression pointer")
            target = ((length & 0x3F) << 8) | msg[pos + 1]
            if end is None:
                end = pos + 2
            if target >= pos:  # only backwards: no loops
                raise DnsError("compression pointer does not point backwards")
            pos = target
            continue
        if length & 0xC0:
            raise DnsError("unknown label type")
        pos += 1
        if length == 0:
            break
        if pos + length > len(msg):
            raise DnsError("label runs past the end of the message")
        total += length + 1
        if total > 255:
            raise DnsError("name longer than 255 bytes")
        labels.append(msg[pos : pos + length].decode("latin-1").lower())
        pos += length
    return ".".join(labels), end if end is not None else pos


@dataclass(frozen=True)
class _Record:
    name: str
    rtype: int
    rclass: int
    rdata_offset: int
    rdata: bytes


def _read_record(msg: bytes, offset: int) -> tuple[_Record, int]:
    name, pos = _read_name(msg, offset)
    if pos + 10 > len(msg):
        raise DnsError("record header runs past the end of the message")
    rtype, rclass, _ttl, rdlength = struct.unpack_from(">HHIH", msg, pos)
    pos += 10
    if pos + rdlength > len(msg):
        raise DnsError("record data runs past the end of the message")
    return _Record(name, rtype, rclass, pos, msg[pos : pos + rdlength]), pos + rdlength


def _txt_strings(rdata: bytes) -> list[bytes]:
    strings: list[bytes] = []
    pos = 0
    while pos < len(rdata):
        length = rdata[pos]
        if pos + 1 + length > len(rdata):
            raise DnsError("TXT character-string runs past its record")
        strings.append(rdata[pos + 1 : pos + 1 + length])
        pos += 1 + length
    if not strings:
        raise DnsError("TXT record with no character-string")
    return strings


def parse_response(msg: bytes, qid: int, name: str) -> list[list[bytes]] | None:
    """The TXT records of ``name`` in a response; None if it is truncated (retry over TCP).

    Raises NoSuchNameError for NXDOMAIN and DnsError for anything unusable.
    """
    if len(msg) < 12:
        raise DnsError("answer shorter than a DNS header")
    rid, flags, qdcount, ancount, _nscount, _arcount = struct.unpack_from(">HHHHHH", msg)
    if rid != qid or not flags & 0x8000:
        raise DnsError("answer is not a response to this query")
    if (flags >> 11) & 0xF:
        raise DnsError("answer has another opcode")
    if flags & 0x0200:
        return None
    rcode = flags & 0xF
    if rcode == 3:
        raise NoSuchNameError(f"{name} does not exist (NXDOMAIN)", found=name)
    if rcode != 0:
        names = {1: "FORMERR", 2: "SERVFAIL", 4: "NOTIMP", 5: "REFUSED"}
        raise DnsError(f"the resolver answered {names.get(rcode, f'RCODE {rcode}')}")
    if qdcount != 1:
        raise DnsError("answer does not echo exactly one question")
    qname, pos = _read_name(msg, 12)
    if pos + 4 > len(msg):
        raise DnsError("question runs past the end of the message")
    qtype, qclass = struct.unpack_from(">HH", msg, pos)
    want = name.rstrip(".").lower()
    if qname != want or qtype != TYPE_TXT or qclass != CLASS_IN:
        raise DnsError("answer is for another question")
    pos += 4
    answers: list[_Record] = []
    for _ in range(ancount):
        record, pos = _read_record(msg, pos)
        answers.append(record)
    current = want
    for _ in range(MAX_CNAME_CHAIN + 1):
        cname = next((r for r in answers if r.name == current and r.rtype == TYPE_CNAME), None)
        if cname is None:
            break
        current, _ = _read_name(msg, cname.rdata_offset)
    else:
        raise DnsError(f"more than {MAX_CNAME_CHAIN} CNAMEs")
    return [
        _txt_strings(r.rdata)
        for r in answers
        if r.name == current and r.rtype == TYPE_TXT and r.rclass == CLASS_IN
    ]


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("DNS query timed out")
    return left


def _ask_udp(server: Nameserver, query: bytes, qid: int, name: str, deadline: float) -> bytes:
    family = socket.AF_INET6 if ":" in server.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.connect((server.host, server.port))  # the kernel drops datagrams from others
        sock.settimeout(_remaining(deadline))
        sock.send(query)
        while True:
            sock.settimeout(_remaining(deadline))
            msg = sock.recv(65535)
            if len(msg) >= 2 and struct.unpack_from(">H", msg)[0] == qid:
                return msg  # other IDs: stray or spoofed datagrams, ignored


def _recv_exact(sock: socket.socket, n: int, deadline: float) -> bytes:
    data = bytearray()
    while len(data) < n:
        sock.settimeout(_remaining(deadline))
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise DnsError("the resolver closed the TCP connection early")
        data += chunk
    return bytes(data)


def _ask_tcp(server: Nameserver, query: bytes, deadline: float) -> bytes:
    with socket.create_connection((server.host, server.port), _remaining(deadline)) as sock:
        sock.sendall(struct.pack(">H", len(query)) + query)
        (length,) = struct.unpack(">H", _recv_exact(sock, 2, deadline))
        return _recv_exact(sock, length, deadline)


def query_txt(
    name: str, *, nameservers: Sequence[Nameserver] | None = None, timeout: float = 5.0
) -> list[list[bytes]]:
    """The TXT records of ``name`` (each a list of character-strings), asking the resolver.

    ``nameservers`` defaults to :func:`system_nameservers`; they are tried in order
    within one overall ``timeout`` (seconds).
    """
    servers = list(nameservers) if nameservers is not None else system_nameservers()
    deadline = time.monotonic() + timeout
    failures: list[str] = []
    for server in servers:
        qid = secrets.randbelow(0x10000)
        query = build_query(name, qid)
        try:
            msg = _ask_udp(server, query, qid, name, deadline)
            records = parse_response(msg, qid, name)
            if records is None:
                records = parse_response(_ask_tcp(server, query, deadline), qid, name)
                if records is None:
                    raise DnsError("the answer is truncated even over TCP")
            return records
        except NoSuchNameError:
            raise
        except DnsError as e:
            failures.append(f"{server.host}: {e.message}")
        except OSError as e:  # TimeoutError included
            failures.append(f"{server.host}: {e.strerror or e or type(e).__name__}")
        if time.monotonic() >= deadline:
            break
    raise DnsError(f"no answer for {name} TXT: {'; '.join(failures) or 'no resolver'}")


__all__ = [
    "DnsError",
    "Nameserver",
    "NoSuchNameError",
    "build_query",
    "parse_response",
    "query_txt",
    "system_nameservers",
]
