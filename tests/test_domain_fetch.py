"""The HTTPS fetcher and the combined check (ledger.verify.domains), against real servers.

An HTTPS server on 127.0.0.1 with a certificate authority made here serves one
proof per test domain; the fetcher is given that CA and a map of the test domains
to the server (:class:`InsecureTestOverride`). The cases without the override patch
``socket.getaddrinfo`` (so no name ever leaves the machine) and
``socket.create_connection`` (to prove that nothing was connected to).
"""

from __future__ import annotations

import inspect
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_domain_servers import ProofHTTPSServer, Route, TestCA, TxtDNSServer, txt_rdata

from ledger.core.domainproof import (
    MAX_PROOF_SIZE,
    DomainProof,
    DomainProofFormatError,
    DomainProofMismatchError,
    DomainProofMissingError,
    DomainProofTooLargeError,
    encode_domain_proof,
    match_domain_proof,
    parse_domain_proof,
    txt_strings,
)
from ledger.verify import dnstxt, domains
from ledger.verify.dnstxt import Nameserver
from ledger.verify.domains import (
    DomainFetchError,
    InsecureTestOverride,
    NonPublicAddressError,
    ProofAbsentError,
    RedirectRefusedError,
    Status,
    check_domain,
    check_public_address,
    fetch_well_known,
)

ORIGIN = "ledger.example.org/paris-call"
SID = bytes.fromhex("343cfa0d397aea2cbdba93e2bf05e834632c59da0001ae63df4259b34d979e03")
OTHER_SID = bytes.fromhex("40cf3cd53174c81b933f01e7f9bd47fae2c7e6ca7c1a47b5727826b9907b0231")
GOOD = encode_domain_proof(DomainProof.of([(ORIGIN, SID)]))

DOMAINS = [
    "good.test", "missing.test", "gone.test", "wrongid.test", "wronglog.test",
    "oversize.test", "oversize-chunked.test", "slow.test", "trickle.test",
    "redirect.test", "redirect-same.test", "wrongcert.test", "malformed.test",
    "gzip.test", "error.test", "dnsonly.test", "both.test", "conflict.test", "fuzz.test",
]  # fmt: skip


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may resolve a name or ask the system resolver: loopback numbers only."""
    real = socket.getaddrinfo

    def guarded(host: Any, *args: Any, **kw: Any) -> Any:
        if host not in ("127.0.0.1", "::1"):
            pytest.fail(f"a test resolved {host!r} through the system resolver")
        return real(host, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)

    def no_system_resolver(*_a: Any, **_k: Any) -> list[Nameserver]:
        pytest.fail("a test asked the system's DNS resolver")

    monkeypatch.setattr(dnstxt, "system_nameservers", no_system_resolver)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def server(ca: TestCA) -> Iterator[ProofHTTPSServer]:
    certs = {d: ca.issue(d) for d in DOMAINS if d != "wrongcert.test"}
    certs["wrongcert.test"] = ca.issue("someone-else.test")  # a valid cert, another name
    srv = ProofHTTPSServer(certs, default="good.test")
    big = GOOD + b"note " + b"x" * MAX_PROOF_SIZE + b"\n"
    srv.routes.update({
        "good.test": Route(body=GOOD, headers={"Content-Type": "text/plain"}),
        "both.test": Route(body=GOOD),
        "conflict.test": Route(body=GOOD),
        "missing.test": Route(status=404),
        "gone.test": Route(status=410),
        "wrongid.test": Route(body=encode_domain_proof(DomainProof.of([(ORIGIN, OTHER_SID)]))),
        "wronglog.test": Route(body=encode_domain_proof(DomainProof.of([("other.log/x", SID)]))),
        "oversize.test": Route(body=big),
        "oversize-chunked.test": Route(body=big, no_length=True),
        "slow.test": Route(body=GOOD, delay=3.0),
        "trickle.test": Route(body=GOOD, trickle=0.05),
        "redirect.test": Route(status=302, headers={"Location": "https://evil.test/x"}),
        "redirect-same.test": Route(
            status=301, headers={"Location": "https://redirect-same.test/other"}
        ),
        "wrongcert.test": Route(body=GOOD),
        "malformed.test": Route(body=GOOD.replace(b"\n", b"\r\n")),
        "gzip.test": Route(body=GOOD, headers={"Content-Encoding": "gzip"}),
        "error.test": Route(status=500),
    })  # fmt: skip
    srv.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def dns() -> Iterator[TxtDNSServer]:
    strings = txt_strings(GOOD)
    srv = TxtDNSServer(
        {
            "_endorsement-ledger.dnsonly.test": [strings],
            "_endorsement-ledger.both.test": [strings],
            "_endorsement-ledger.conflict.test": [
                txt_strings(encode_domain_proof(DomainProof.of([(ORIGIN, OTHER_SID)])))
            ],
        }
    ).start()
    yield srv
    srv.stop()


@pytest.fixture
def override(ca: TestCA, server: ProofHTTPSServer, dns: TxtDNSServer) -> InsecureTestOverride:
    return InsecureTestOverride(
        ca_file=str(ca.ca_file),
        hosts={d: ("127.0.0.1", server.port) for d in DOMAINS},
        nameservers=[Nameserver("127.0.0.1", dns.port)],
    )


def _https(domain: str, override: InsecureTestOverride, timeout: float = 2.0) -> Any:
    return check_domain(
        domain, ORIGIN, SID, methods=("https",), timeout=timeout, insecure_test_override=override
    )


def test_proof_present(override: InsecureTestOverride, server: ProofHTTPSServer) -> None:
    before = time.time()
    fetched = fetch_well_known("good.test", insecure_test_override=override)
    assert fetched.document == GOOD
    assert fetched.source == "https://good.test/.well-known/endorsement-ledger"
    assert int(before) <= fetched.checked_at <= time.time()
    assert ("good.test", "/.well-known/endorsement-ledger") in server.requests
    check = _https("good.test", override)
    assert check.status is Status.CONFIRMED
    assert check.results[0].listed == (SID,)
    assert check.to_json()["status"] == "confirmed"


@pytest.mark.parametrize("domain", ["missing.test", "gone.test"])
def test_missing(override: InsecureTestOverride, domain: str) -> None:
    with pytest.raises(ProofAbsentError):
        fetch_well_known(domain, insecure_test_override=override)
    check = _https(domain, override)
    assert check.status is Status.MISSING
    assert "HTTP 4" in check.reason


def test_wrong_id_is_a_mismatch(override: InsecureTestOverride) -> None:
    check = _https("wrongid.test", override)
    assert check.status is Status.MISMATCH
    assert check.results[0].listed == (OTHER_SID,)
    assert check.results[0].code == "domain_proof_mismatch"


def test_wrong_log_is_missing(override: InsecureTestOverride) -> None:
    check = _https("wronglog.test", override)
    assert check.status is Status.MISSING
    assert "other.log/x only" in check.reason


@pytest.mark.parametrize("domain", ["oversize.test", "oversize-chunked.test"])
def test_oversize(override: InsecureTestOverride, domain: str) -> None:
    if domain == "oversize.test":  # Content-Length says it: refused before reading
        with pytest.raises(DomainProofTooLargeError, match="announces"):
            fetch_well_known(domain, insecure_test_override=override)
    else:  # close-delimited: read no further than the limit
        fetched = fetch_well_known(domain, insecure_test_override=override)
        assert len(fetched.document) == MAX_PROOF_SIZE + 1
    check = _https(domain, override)
    assert check.status is Status.MALFORMED
    assert check.results[0].code == "domain_proof_too_large"


@pytest.mark.parametrize("domain", ["slow.test", "trickle.test"])
def test_slow_server_times_out(override: InsecureTestOverride, domain: str) -> None:
    start = time.monotonic()
    with pytest.raises(DomainFetchError, match="timed out"):
        fetch_well_known(domain, timeout=0.5, insecure_test_override=override)
    assert time.monotonic() - start < 2.0  # the deadline holds for the whole fetch
    assert _https(domain, override, timeout=0.5).status is Status.UNREACHABLE


@pytest.mark.parametrize("domain", ["redirect.test", "redirect-same.test"])
def test_redirects_are_refused(
    override: InsecureTestOverride, server: ProofHTTPSServer, domain: str
) -> None:
    with pytest.raises(RedirectRefusedError, match="redirect"):
        fetch_well_known(domain, insecure_test_override=override)
    assert not any(path == "/other" for _, path in server.requests)
    assert not any(host == "evil.test" for host, _ in server.requests)
    assert _https(domain, override).status is Status.UNREACHABLE


def test_certificate_for_another_name(
    override: InsecureTestOverride, server: ProofHTTPSServer
) -> None:
    with pytest.raises(DomainFetchError, match="certificate"):
        fetch_well_known("wrongcert.test", insecure_test_override=override)
    assert ("wrongcert.test", "/.well-known/endorsement-ledger") not in server.requests
    check = _https("wrongcert.test", override)
    assert check.status is Status.UNREACHABLE


def test_certificate_from_an_unknown_ca(override: InsecureTestOverride, tmp_path: Path) -> None:
    other = TestCA(tmp_path)
    untrusted = InsecureTestOverride(str(other.ca_file), override.hosts, override.nameservers)
    with pytest.raises(DomainFetchError, match="certificate"):
        fetch_well_known("good.test", insecure_test_override=untrusted)


def test_malformed_proof(override: InsecureTestOverride) -> None:
    check = _https("malformed.test", override)
    assert check.status is Status.MALFORMED
    assert "line 1" in check.reason


@pytest.mark.parametrize("domain", ["gzip.test", "error.test"])
def test_other_answers_are_failures(override: InsecureTestOverride, domain: str) -> None:
    with pytest.raises(DomainFetchError):
        fetch_well_known(domain, insecure_test_override=override)


def test_override_refuses_other_names(override: InsecureTestOverride) -> None:
    with pytest.raises(NonPublicAddressError, match="not a test domain"):
        fetch_well_known("example.org", insecure_test_override=override)


def test_dns_and_https_combined(override: InsecureTestOverride) -> None:
    both = check_domain("both.test", ORIGIN, SID, insecure_test_override=override)
    assert both.status is Status.CONFIRMED
    assert [r.status for r in both.results] == [Status.CONFIRMED, Status.CONFIRMED]
    dns_only = check_domain("dnsonly.test", ORIGIN, SID, insecure_test_override=override)
    assert dns_only.status is Status.CONFIRMED
    assert [r.method for r in dns_only.results] == ["dns", "https"]
    assert dns_only.results[1].status is Status.MISSING
    conflict = check_domain("conflict.test", ORIGIN, SID, insecure_test_override=override)
    assert conflict.status is Status.CONFIRMED  # the file names it...
    assert conflict.results[0].status is Status.MISMATCH  # ...the TXT record another
    assert "names other signatories" in conflict.reason
    impostor = check_domain("both.test", ORIGIN, OTHER_SID, insecure_test_override=override)
    assert impostor.status is Status.MISMATCH
    nothing = check_domain("missing.test", ORIGIN, SID, insecure_test_override=override)
    assert nothing.status is Status.MISSING


def test_unreachable_outranks_missing(override: InsecureTestOverride) -> None:
    check = check_domain("error.test", ORIGIN, SID, insecure_test_override=override)
    assert [r.status for r in check.results] == [Status.MISSING, Status.UNREACHABLE]
    assert check.status is Status.UNREACHABLE


def test_dns_record_split_in_strings(override: InsecureTestOverride, dns: TxtDNSServer) -> None:
    long = encode_domain_proof(
        DomainProof.of([(f"log{i}.example.org/call", SID) for i in range(3)] + [(ORIGIN, SID)])
    )
    assert len(long) > 255
    dns.zone["_endorsement-ledger.long.test"] = [txt_strings(long)]
    check = check_domain(
        "long.test", ORIGIN, SID, methods=("dns",), insecure_test_override=override
    )
    assert check.status is Status.CONFIRMED
    dns.zone["_endorsement-ledger.two.test"] = [txt_strings(GOOD), txt_strings(GOOD)]
    two = check_domain("two.test", ORIGIN, SID, methods=("dns",), insecure_test_override=override)
    assert two.status is Status.MALFORMED
    assert two.results[0].code == "domain_proof_ambiguous"
    assert txt_rdata([b"a"]) == b"\x01a"


# --- without the override: public addresses only ----------------------------------------


class _Tripwire:
    def __init__(self) -> None:
        self.calls: list[Any] = []

    def __call__(self, address: Any, *args: Any, **kw: Any) -> Any:
        self.calls.append(address)
        raise AssertionError(f"connected to {address}")


def _resolve_to(monkeypatch: pytest.MonkeyPatch, addresses: list[str]) -> list[str]:
    """Make every name resolve to ``addresses``; returns the list of names asked."""
    asked: list[str] = []

    def fake_getaddrinfo(host: str, port: Any, *args: Any, **kw: Any) -> list[Any]:
        asked.append(host)
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "",
             (a, port) if ":" not in a else (a, port, 0, 0))
            for a in addresses
        ]  # fmt: skip

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    return asked


@pytest.mark.parametrize(
    "addresses",
    [
        ["127.0.0.1"],
        ["10.0.0.1"],
        ["8.8.8.8", "10.0.0.1"],  # one bad address refuses the domain
        ["::1"],
        ["::ffff:127.0.0.1"],
        ["::ffff:10.0.0.1"],
        ["169.254.169.254"],  # cloud metadata
        ["fe80::1"],
        ["0.0.0.0"],
        ["224.0.0.1"],
    ],
    ids="-".join,
)
def test_non_public_addresses_are_refused_before_connecting(
    monkeypatch: pytest.MonkeyPatch, server: ProofHTTPSServer, addresses: list[str]
) -> None:
    asked = _resolve_to(monkeypatch, addresses)
    tripwire = _Tripwire()
    monkeypatch.setattr(socket, "create_connection", tripwire)
    accepted = server.accepted
    with pytest.raises(NonPublicAddressError, match="not a public address"):
        fetch_well_known("good.test")
    check = check_domain("good.test", ORIGIN, SID, methods=("https",))
    assert check.status is Status.UNREACHABLE
    assert check.results[0].code == "non_public_address"
    assert asked == ["good.test", "good.test"]
    assert tripwire.calls == []
    assert server.accepted == accepted


def test_fetch_connects_to_the_vetted_address(monkeypatch: pytest.MonkeyPatch) -> None:
    """A public answer is connected to as resolved (port 443): not resolved again."""
    connected: list[Any] = []

    def fake_connect(address: Any, *args: Any, **kw: Any) -> Any:
        connected.append(address)
        raise ConnectionRefusedError("test: not connecting")

    asked = _resolve_to(monkeypatch, ["8.8.8.8"])
    monkeypatch.setattr(socket, "create_connection", fake_connect)
    with pytest.raises(DomainFetchError, match="cannot fetch"):
        fetch_well_known("good.test")
    assert connected == [("8.8.8.8", 443)]
    assert asked == ["good.test"]


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"],
)
def test_public_addresses(address: str) -> None:
    check_public_address(address)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "127.1.2.3", "10.0.0.1", "172.16.0.1", "192.168.1.1", "100.64.0.1",
        "169.254.169.254", "0.0.0.0", "224.0.0.1", "239.255.255.250", "240.0.0.1",
        "255.255.255.255", "192.0.2.1", "198.18.0.1", "192.0.0.8",
        "::1", "::", "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1", "2001:db8::1",
        "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::127.0.0.1",
        "64:ff9b::7f00:1", "64:ff9b::a00:1", "64:ff9b:1::1", "2002:7f00:1::1", "2002:a00:1::1",
        "2001:0:4136:e378:8000:63bf:3fff:fdd2", "fe80::1%eth0", "not-an-address",
    ],
)  # fmt: skip
def test_non_public_addresses(address: str) -> None:
    with pytest.raises(NonPublicAddressError):
        check_public_address(address)


def test_override_is_only_an_argument() -> None:
    """The override is never read from the environment or a default."""
    for fn in (domains.fetch_well_known, domains.fetch_txt, domains.check_domain):
        assert inspect.signature(fn).parameters["insecure_test_override"].default is None
    source = Path(domains.__file__).read_text(encoding="utf-8")
    assert "os.environ" not in source and "getenv" not in source and "import os" not in source


def test_name_resolution_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    def hanging(*_a: Any, **_k: Any) -> list[Any]:
        time.sleep(2)
        return []

    tripwire = _Tripwire()
    monkeypatch.setattr(socket, "getaddrinfo", hanging)
    monkeypatch.setattr(socket, "create_connection", tripwire)
    start = time.monotonic()
    with pytest.raises(DomainFetchError, match="resolution timed out"):
        fetch_well_known("good.test", timeout=0.3)
    assert time.monotonic() - start < 1.5
    assert tripwire.calls == []


def test_stalled_tls_handshake_times_out(override: InsecureTestOverride) -> None:
    """A server that accepts the connection and never answers the TLS hello."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        stalled = InsecureTestOverride(
            override.ca_file, {"good.test": listener.getsockname()}, override.nameservers
        )
        start = time.monotonic()
        with pytest.raises(DomainFetchError, match="timed out"):
            fetch_well_known("good.test", timeout=0.5, insecure_test_override=stalled)
        assert time.monotonic() - start < 2.0


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data())
def test_malformed_documents_over_both_forms(
    override: InsecureTestOverride,
    server: ProofHTTPSServer,
    dns: TxtDNSServer,
    data: st.DataObject,
) -> None:
    """Any served bytes give the verdict the parser and matcher give them, never a crash."""
    doc = bytearray(GOOD)
    for _ in range(data.draw(st.integers(0, 3))):
        i = data.draw(st.integers(0, len(doc) - 1))
        doc[i] = data.draw(st.sampled_from([0x00, 0x09, 0x0A, 0x0D, 0x20, 0x2B, 0x41, 0xFF]))
    document = bytes(doc)
    server.routes["fuzz.test"] = Route(body=document)
    dns.zone["_endorsement-ledger.fuzz.test"] = [txt_strings(document)]
    try:
        expected = Status.CONFIRMED
        match_domain_proof(parse_domain_proof(document), ORIGIN, SID, "fuzz.test")
    except DomainProofFormatError:
        expected = Status.MALFORMED
    except DomainProofMismatchError:
        expected = Status.MISMATCH
    except DomainProofMissingError:
        expected = Status.MISSING
    check = check_domain("fuzz.test", ORIGIN, SID, insecure_test_override=override)
    assert [r.status for r in check.results] == [expected, expected]
    assert check.status is expected
