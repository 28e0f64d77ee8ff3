"""The stdlib DNS TXT client (ledger.verify.dnstxt) against a DNS server on loopback."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_domain_servers import TxtDNSServer, answer, encode_name, qname_of, rr, txt_rdata

from ledger.core.domainproof import DomainProof, encode_domain_proof, txt_strings
from ledger.verify import dnstxt
from ledger.verify.dnstxt import (
    DnsError,
    Nameserver,
    NoSuchNameError,
    build_query,
    parse_response,
    query_txt,
    system_nameservers,
)
from ledger.verify.domains import (
    InsecureTestOverride,
    ProofAbsentError,
    Status,
    check_domain,
    fetch_txt,
)

ORIGIN = "ledger.example.org/paris-call"
SID = bytes.fromhex("343cfa0d397aea2cbdba93e2bf05e834632c59da0001ae63df4259b34d979e03")
GOOD = encode_domain_proof(DomainProof.of([(ORIGIN, SID)]))
NAME = "_endorsement-ledger.good.test"


def _truncated_then_tcp(query: bytes, transport: str) -> bytes:
    if transport == "udp":
        return answer(query, tc=True)
    return answer(query, records=[rr(16, txt_rdata(txt_strings(GOOD)))])


def _spoofed_first(query: bytes, transport: str) -> list[bytes]:
    (qid,) = struct.unpack_from(">H", query)
    good = answer(query, records=[rr(16, txt_rdata([b"right"]))])
    return [answer(query, records=[rr(16, txt_rdata([b"spoof"]))], qid=qid ^ 1), good]


def _cname(query: bytes, transport: str) -> bytes:
    target = encode_name("proof.elsewhere.test")
    return answer(
        query,
        records=[
            rr(16, txt_rdata([b"not this one"]), owner=encode_name("unrelated.test")),
            rr(5, target),
            rr(16, txt_rdata([b"via cname"]), owner=target),
        ],
    )


def _cname_loop(query: bytes, transport: str) -> bytes:
    return answer(query, records=[rr(5, b"\xc0\x0c")])


def _other_question(query: bytes, transport: str) -> bytes:
    other = build_query("other.test", struct.unpack_from(">H", query)[0])
    return answer(other, records=[rr(16, txt_rdata([b"x"]))])


@pytest.fixture(scope="module")
def dns() -> Iterator[TxtDNSServer]:
    srv = TxtDNSServer(
        {
            NAME: [txt_strings(GOOD)],
            "_endorsement-ledger.nodata.test": [],
            "_endorsement-ledger.servfail.test": "servfail",
            "_endorsement-ledger.refused.test": "refused",
            "_endorsement-ledger.silent.test": "silent",
            "_endorsement-ledger.truncated.test": _truncated_then_tcp,
            "_endorsement-ledger.spoofed.test": _spoofed_first,
            "_endorsement-ledger.cname.test": _cname,
            "_endorsement-ledger.loop.test": _cname_loop,
            "_endorsement-ledger.other.test": _other_question,
            "several.test": [[b"one"], [b"two", b"three"]],
        }
    ).start()
    yield srv
    srv.stop()


@pytest.fixture
def ns(dns: TxtDNSServer) -> list[Nameserver]:
    return [Nameserver("127.0.0.1", dns.port)]


def test_txt_record(ns: list[Nameserver], dns: TxtDNSServer) -> None:
    records = query_txt(NAME, nameservers=ns, timeout=2)
    assert records == [txt_strings(GOOD)]
    assert ("udp", NAME) in dns.queries
    assert query_txt("several.test", nameservers=ns) == [[b"one"], [b"two", b"three"]]
    assert query_txt(NAME.upper(), nameservers=ns) == [txt_strings(GOOD)]


def test_nxdomain_and_nodata(ns: list[Nameserver]) -> None:
    with pytest.raises(NoSuchNameError):
        query_txt("_endorsement-ledger.nowhere.test", nameservers=ns)
    assert query_txt("_endorsement-ledger.nodata.test", nameservers=ns) == []


@pytest.mark.parametrize(("name", "message"), [("servfail", "SERVFAIL"), ("refused", "REFUSED")])
def test_server_failures(ns: list[Nameserver], name: str, message: str) -> None:
    with pytest.raises(DnsError, match=message):
        query_txt(f"_endorsement-ledger.{name}.test", nameservers=ns)


def test_silent_server_times_out(ns: list[Nameserver]) -> None:
    start = time.monotonic()
    with pytest.raises(DnsError, match="no answer"):
        query_txt("_endorsement-ledger.silent.test", nameservers=ns, timeout=0.5)
    assert time.monotonic() - start < 1.5


def test_truncated_answer_is_asked_again_over_tcp(ns: list[Nameserver], dns: TxtDNSServer) -> None:
    name = "_endorsement-ledger.truncated.test"
    assert query_txt(name, nameservers=ns) == [txt_strings(GOOD)]
    assert ("udp", name) in dns.queries and ("tcp", name) in dns.queries


def test_answers_with_another_id_are_ignored(ns: list[Nameserver]) -> None:
    assert query_txt("_endorsement-ledger.spoofed.test", nameservers=ns) == [[b"right"]]


def test_cname_is_followed_inside_the_answer(ns: list[Nameserver]) -> None:
    assert query_txt("_endorsement-ledger.cname.test", nameservers=ns) == [[b"via cname"]]
    with pytest.raises(DnsError, match="CNAME"):
        query_txt("_endorsement-ledger.loop.test", nameservers=ns)


def test_answer_for_another_question_is_refused(ns: list[Nameserver]) -> None:
    with pytest.raises(DnsError, match="another question"):
        query_txt("_endorsement-ledger.other.test", nameservers=ns)


def test_next_nameserver_when_one_fails(ns: list[Nameserver]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as closed:
        closed.bind(("127.0.0.1", 0))
        dead = Nameserver("127.0.0.1", closed.getsockname()[1])
    assert query_txt(NAME, nameservers=[dead, *ns], timeout=2) == [txt_strings(GOOD)]
    with pytest.raises(DnsError, match="no answer"):
        query_txt(NAME, nameservers=[dead], timeout=0.5)


def test_fetch_txt_and_check(ns: list[Nameserver], tmp_path: Path) -> None:
    override = InsecureTestOverride(str(tmp_path / "unused.pem"), {}, ns)
    assert fetch_txt("good.test", insecure_test_override=override).document == GOOD
    for absent in ("nowhere.test", "nodata.test"):
        with pytest.raises(ProofAbsentError):
            fetch_txt(absent, insecure_test_override=override)
    check = check_domain(
        "good.test", ORIGIN, SID, methods=("dns",), insecure_test_override=override
    )
    assert check.status is Status.CONFIRMED
    assert check.results[0].source == NAME
    failed = check_domain(
        "servfail.test", ORIGIN, SID, methods=("dns",), insecure_test_override=override
    )
    assert failed.status is Status.UNREACHABLE


def test_system_nameservers(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("# comment\nsearch example\nnameserver 192.0.2.53\nnameserver fe80::1%eth0\n")
    assert system_nameservers(str(conf)) == [Nameserver("192.0.2.53"), Nameserver("fe80::1")]
    assert system_nameservers(str(tmp_path / "none")) == [Nameserver("127.0.0.1")]


def test_query_bytes() -> None:
    q = build_query("_endorsement-ledger.Example.org", 0x1234)
    assert q[:12] == struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 1)
    assert qname_of(q) == "_endorsement-ledger.example.org"
    assert q.endswith(b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00")  # OPT, 1232 bytes
    with pytest.raises(DnsError):
        build_query("a" * 64 + ".test", 1)
    with pytest.raises(DnsError):
        build_query(".".join(["a" * 63] * 4) + ".test", 1)


# --- the response parser on hostile input -----------------------------------------------

_QUERY = build_query(NAME, 7)
_GOOD_ANSWER = answer(_QUERY, records=[rr(16, txt_rdata(txt_strings(GOOD)))])


def _parse_or_dns_error(msg: bytes) -> Any:
    try:
        return parse_response(msg, 7, NAME)
    except DnsError:
        return "error"


def test_good_answer_parses() -> None:
    assert parse_response(_GOOD_ANSWER, 7, NAME) == [txt_strings(GOOD)]


def test_compression_pointer_loops_are_refused() -> None:
    msg = bytearray(_GOOD_ANSWER)
    start = len(answer(_QUERY))  # where the answer RR's owner begins
    msg[start : start + 2] = struct.pack(">H", 0xC000 | start)  # points at itself
    with pytest.raises(DnsError, match="backwards"):
        parse_response(bytes(msg), 7, NAME)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600))
def test_random_bytes(data: bytes) -> None:
    _parse_or_dns_error(data)
    _parse_or_dns_error(_GOOD_ANSWER[:12] + data)
    _parse_or_dns_error(_GOOD_ANSWER[: len(answer(_QUERY))] + data)


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_mutated_answers(data: st.DataObject) -> None:
    msg = bytearray(_GOOD_ANSWER)
    for _ in range(data.draw(st.integers(1, 6))):
        i = data.draw(st.integers(0, len(msg) - 1))
        op = data.draw(st.sampled_from(["set", "delete", "truncate"]))
        if op == "set":
            msg[i] = data.draw(st.integers(0, 255))
        elif op == "delete":
            del msg[i]
        else:
            del msg[i:]
        if not msg:
            break
    result = _parse_or_dns_error(bytes(msg))
    assert result == "error" or result is None or isinstance(result, list)


def test_guard_no_system_resolver_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without nameservers the client asks resolv.conf's: checked, not sent, here."""
    seen: list[str] = []

    def fake(path: str = "") -> list[Nameserver]:
        seen.append("asked")
        return []

    monkeypatch.setattr(dnstxt, "system_nameservers", fake)
    with pytest.raises(DnsError, match="no resolver"):
        query_txt(NAME, timeout=0.2)
    assert seen == ["asked"]
