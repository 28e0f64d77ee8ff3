"""Fetch and check a domain proof (docs/spec.md, "Domain proofs"): HTTPS and DNS TXT.

The format and the match are pure (:mod:`ledger.core.domainproof`); this module
only fetches, with every resource bounded, and is shared by the service
(``ledger serve --domain-proofs``), the verifier (``ledger-verify --check-domains``),
the mirror and ``ledger domain check``. Standard library only.

**HTTPS** (:func:`fetch_well_known`): ``GET https://<domain>/.well-known/endorsement-ledger``.

* The name is resolved first, and *every* address it resolves to must be public
  (:func:`check_public_address`): not loopback, private, shared (100.64/10),
  link-local, multicast, reserved, unspecified, documentation, nor an IPv4-mapped,
  NAT64 or 6to4 form of one of those. Otherwise nothing is sent. The connection
  then goes to the vetted address itself, with the domain as TLS SNI, certificate
  name and ``Host``: a second resolution (DNS rebinding) cannot redirect it.
* TLS with certificate verification against the system's trust store, TLS 1.2 or
  later; the certificate must name the domain.
* No redirects at all: a 3xx answer is an error, whatever its target. (Following
  only same-domain redirects buys little, and any redirect is one more place an
  attacker may point the fetch; RFC 8615 files are served in place.)
* One deadline for the whole fetch, name resolution included (``getaddrinfo``, which
  has no timeout, runs in a thread that is abandoned at the deadline), enforced on
  the connection by shutting the socket down when it passes, so a server trickling
  bytes cannot hold the fetch; the body is read incrementally, at most
  :data:`~ledger.core.domainproof.MAX_PROOF_SIZE` + 1 bytes, and a larger
  ``Content-Length`` is refused before reading.
* 404 and 410 mean the proof is absent; any other status but 200 is a failure.

**DNS** (:func:`fetch_txt`): the TXT record ``_endorsement-ledger.<domain>`` through
the machine's resolver (:mod:`ledger.verify.dnstxt`, which says why it is not a
library). There must be exactly one TXT record there; its strings are joined.

:func:`check_domain` runs both and returns a :class:`DomainCheck`: one
:class:`Status` (confirmed, mismatch, malformed, unreachable, missing: the first of
these that either method found, in that order), the reason, the time of the check
and the result of each method. Each method has its own ``timeout``; they run one
after the other.

**Tests only:** :class:`InsecureTestOverride` (a CA file, a map of test domains to
loopback addresses and ports, and the DNS server to ask) switches the address
check off for the names it maps and refuses every other name. It is a Python
argument and nothing else: no environment variable, option or request field
builds one.
"""

from __future__ import annotations

import contextlib
import enum
import http.client
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ledger import __version__
from ledger.core.domainproof import (
    MAX_PROOF_SIZE,
    WELL_KNOWN_PATH,
    DomainProofFormatError,
    DomainProofMismatchError,
    DomainProofMissingError,
    DomainProofTooLargeError,
    check_domain_name,
    join_txt_strings,
    match_domain_proof,
    parse_domain_proof,
    txt_name,
    well_known_url,
)
from ledger.core.errors import LedgerError
from ledger.verify.dnstxt import DnsError, Nameserver, NoSuchNameError, query_txt

#: The whole of one fetch, in seconds.
DEFAULT_TIMEOUT = 5.0
HTTPS_PORT = 443
USER_AGENT = f"endorsement-ledger/{__version__} (domain proof check)"

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
#: Refused whatever this Python's ``is_global`` says (its tables vary between versions):
#: the IANA special-purpose blocks that are not globally reachable, whole.
_REFUSED = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8", "100.64.0.0/10", "192.0.0.0/24", "192.0.2.0/24", "198.18.0.0/15",
        "198.51.100.0/24", "203.0.113.0/24", "240.0.0.0/4",
        "100::/64", "2001::/23", "2001:db8::/32", "3fff::/20", "5f00::/16", "fec0::/10",
    )
)  # fmt: skip


class DomainFetchError(LedgerError):
    """The proof could not be fetched: the domain is unreachable for this check."""

    code = "domain_unreachable"


class NonPublicAddressError(DomainFetchError):
    """The domain resolves to an address that is not public: nothing was sent."""

    code = "non_public_address"


class RedirectRefusedError(DomainFetchError):
    """The server answered a redirect; proofs are fetched without redirects."""

    code = "redirect_refused"


class ProofAbsentError(LedgerError):
    """The domain answered that there is no proof (HTTP 404/410, NXDOMAIN, no TXT record)."""

    code = "domain_proof_absent"


@dataclass(frozen=True)
class InsecureTestOverride:
    """TESTS ONLY: trust ``ca_file`` alone, send ``hosts`` to their (loopback) addresses.

    ``hosts`` maps each test domain to ``(address, port)``; every other domain is
    refused. ``nameservers`` answer the TXT queries. Never build one from input.
    """

    ca_file: str
    hosts: Mapping[str, tuple[str, int]]
    nameservers: Sequence[Nameserver] = ()


@dataclass(frozen=True)
class FetchedProof:
    """A document fetched from ``source`` (a URL or a TXT name) at ``checked_at``."""

    document: bytes
    source: str
    checked_at: int


def check_public_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The address, if it is one a fetch may connect to; else NonPublicAddressError."""
    try:
        addr = ipaddress.ip_address(text.split("%", maxsplit=1)[0])
    except ValueError:
        raise NonPublicAddressError("not an IP address", found=text) from None
    inner: ipaddress.IPv4Address | ipaddress.IPv6Address = addr
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            inner = addr.ipv4_mapped
        elif addr in _NAT64:
            inner = ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
        elif addr.sixtofour is not None:
            inner = addr.sixtofour
        elif addr in _NAT64_LOCAL or addr.teredo is not None:
            raise NonPublicAddressError("address embeds another address", found=text)
    bad = (
        not inner.is_global
        or inner.is_multicast
        or inner.is_reserved
        or inner.is_loopback
        or inner.is_link_local
        or inner.is_private
        or inner.is_unspecified
        or any(net.version == inner.version and inner in net for net in _REFUSED)
    )
    if bad:
        raise NonPublicAddressError("address is not public", found=text)
    return addr


def _getaddrinfo(domain: str, port: int, timeout: float) -> list[Any]:
    """``socket.getaddrinfo`` within ``timeout`` (it has none of its own): in a thread,
    abandoned (it ends by itself) if it takes longer."""
    found: list[Any] = []
    failed: list[BaseException] = []

    def work() -> None:
        try:
            found.extend(socket.getaddrinfo(domain, port, type=socket.SOCK_STREAM))
        except (OSError, UnicodeError) as e:
            failed.append(e)

    worker = threading.Thread(target=work, name=f"resolve {domain}", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise DomainFetchError(f"{domain}: name resolution timed out", found=domain)
    if failed:
        raise DomainFetchError(f"{domain} does not resolve: {failed[0]}", found=domain)
    return found


def resolve_public(
    domain: str, port: int = HTTPS_PORT, *, timeout: float = DEFAULT_TIMEOUT
) -> list[str]:
    """Every address of ``domain``, all checked public (else NonPublicAddressError)."""
    infos = _getaddrinfo(domain, port, timeout)
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise DomainFetchError(f"{domain} has no address", found=domain)
    for address in addresses:
        try:
            check_public_address(address)
        except NonPublicAddressError:
            raise NonPublicAddressError(
                f"{domain} resolves to {address}, which is not a public address: nothing was sent",
                found=address,
            ) from None
    return addresses


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to a fixed, already vetted address, with ``host`` as SNI, name and Host.

    :meth:`cut` ends the connection from another thread (the deadline), whether the
    TLS handshake or a read is under way.
    """

    def __init__(
        self, host: str, address: str, port: int, tls: ssl.SSLContext, timeout: float
    ) -> None:
        super().__init__(host, port, timeout=timeout, context=tls)
        self._address = address
        self._tls = tls
        self._live: socket.socket | None = None
        self._cut = threading.Event()

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self._live = sock
        try:
            if self._cut.is_set():
                raise TimeoutError("timed out")
            self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)
            self._live = self.sock
        except BaseException:
            sock.close()
            raise

    def cut(self) -> None:
        self._cut.set()
        live = self._live
        if live is not None:
            # the plain socket's shutdown: the TLS object stays the reading thread's
            with contextlib.suppress(OSError):
                socket.socket.shutdown(live, socket.SHUT_RDWR)


def _tls_context(override: InsecureTestOverride | None) -> ssl.SSLContext:
    tls = ssl.create_default_context(cafile=override.ca_file if override else None)
    tls.minimum_version = ssl.TLSVersion.TLSv1_2
    return tls


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise DomainFetchError("timed out")
    return left


def _get(
    domain: str, address: str, port: int, *, tls: ssl.SSLContext, deadline: float, max_size: int
) -> bytes:
    conn = _PinnedHTTPSConnection(domain, address, port, tls, _remaining(deadline))
    watchdog = threading.Timer(_remaining(deadline), conn.cut)  # the deadline, enforced
    watchdog.daemon = True
    watchdog.start()
    try:
        conn.connect()
        conn.request(
            "GET",
            WELL_KNOWN_PATH,
            headers={
                "User-Agent": USER_AGENT,
                "Accept": "text/plain",
                "Accept-Encoding": "identity",
                "Connection": "close",
            },
        )
        resp = conn.getresponse()
        if resp.status in (404, 410):
            raise ProofAbsentError(f"HTTP {resp.status} for {well_known_url(domain)}")
        if 300 <= resp.status < 400:
            target = resp.getheader("Location", "(no Location)")
            raise RedirectRefusedError(
                f"HTTP {resp.status} redirect to {target[:200]} refused: "
                "proofs are fetched without redirects",
                found=target[:200],
            )
        if resp.status != 200:
            raise DomainFetchError(f"HTTP {resp.status} for {well_known_url(domain)}")
        encoding = (resp.getheader("Content-Encoding") or "identity").strip().lower()
        if encoding != "identity":
            raise DomainFetchError(f"the answer is encoded ({encoding}); send it as it is")
        declared = resp.getheader("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > max_size:
            raise DomainProofTooLargeError(
                f"the server announces {declared} bytes; a domain proof is at most {max_size}",
                line=1,
                found=int(declared),
            )
        body = bytearray()
        while len(body) <= max_size:
            chunk = resp.read(min(4096, max_size + 1 - len(body)))
            if not chunk:
                break
            body += chunk
        if time.monotonic() >= deadline:
            raise DomainFetchError("timed out")
        return bytes(body)
    finally:
        watchdog.cancel()
        conn.close()


def fetch_well_known(
    domain: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    max_size: int = MAX_PROOF_SIZE,
    insecure_test_override: InsecureTestOverride | None = None,
) -> FetchedProof:
    """The file form of ``domain``'s proof (bytes unparsed, at most ``max_size`` + 1).

    ``timeout`` bounds the whole fetch, name resolution included. Raises
    ProofAbsentError (404/410), NonPublicAddressError (before any connection),
    RedirectRefusedError, DomainProofTooLargeError (a larger Content-Length), or
    DomainFetchError for every other failure.
    """
    check_domain_name(domain)
    override = insecure_test_override
    checked_at = int(time.time())
    deadline = time.monotonic() + timeout
    if override is not None:
        if domain not in override.hosts:
            raise NonPublicAddressError(f"{domain} is not a test domain", found=domain)
        address, port = override.hosts[domain]
        addresses = [address]
    else:
        port = HTTPS_PORT
        addresses = resolve_public(domain, port, timeout=timeout)
    tls = _tls_context(override)
    failures: list[str] = []
    for address in addresses:
        try:
            body = _get(domain, address, port, tls=tls, deadline=deadline, max_size=max_size)
        except (ProofAbsentError, DomainFetchError):
            raise
        except ssl.SSLCertVerificationError as e:
            raise DomainFetchError(
                f"the certificate of {domain} does not verify: {e.verify_message}"
            ) from None
        except (OSError, http.client.HTTPException) as e:
            if time.monotonic() >= deadline:
                raise DomainFetchError(f"{well_known_url(domain)}: timed out") from None
            failures.append(f"{address}: {e}")
            continue
        return FetchedProof(body, well_known_url(domain), checked_at)
    raise DomainFetchError(f"cannot fetch {well_known_url(domain)}: {'; '.join(failures)}")


def fetch_txt(
    domain: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    insecure_test_override: InsecureTestOverride | None = None,
) -> FetchedProof:
    """The TXT form of ``domain``'s proof: the one record's strings, joined.

    Raises ProofAbsentError (NXDOMAIN, no TXT record), DomainProofFormatError
    (several records) or DomainFetchError (no usable answer).
    """
    name = txt_name(domain)
    checked_at = int(time.time())
    override = insecure_test_override
    servers = list(override.nameservers) if override is not None else None
    if override is not None and not servers:
        raise DomainFetchError("the test override names no DNS server")
    try:
        records = query_txt(name, nameservers=servers, timeout=timeout)
    except NoSuchNameError:
        raise ProofAbsentError(f"{name} does not exist") from None
    except DnsError as e:
        raise DomainFetchError(e.message) from None
    if not records:
        raise ProofAbsentError(f"{name} has no TXT record")
    if len(records) > 1:
        raise DomainProofFormatError(
            f"{name} has {len(records)} TXT records; publish one, with every line in it",
            line=1,
            code="domain_proof_ambiguous",
        )
    return FetchedProof(join_txt_strings(records[0]), name, checked_at)


class Status(enum.StrEnum):
    """The verdict on one domain claim, in order of precedence."""

    CONFIRMED = "confirmed"
    MISMATCH = "mismatch"
    MALFORMED = "malformed"
    UNREACHABLE = "unreachable"
    MISSING = "missing"


_PRECEDENCE = list(Status)


@dataclass(frozen=True)
class MethodResult:
    """What one method (``https`` or ``dns``) found at ``source`` at ``checked_at``."""

    method: str
    source: str
    status: Status
    reason: str
    checked_at: int
    code: str
    listed: tuple[bytes, ...] = ()  # the ids the domain names for this log


@dataclass(frozen=True)
class DomainCheck:
    """The verdict on a registration's domain claim, with each method's result."""

    domain: str
    origin: str
    signatory_id: bytes
    status: Status
    reason: str
    checked_at: int
    results: tuple[MethodResult, ...] = field(default=())

    def to_json(self) -> dict[str, object]:
        return {
            "domain": self.domain,
            "origin": self.origin,
            "signatory": self.signatory_id.hex(),
            "status": self.status.value,
            "reason": self.reason,
            "checked_at": self.checked_at,
            "methods": [
                {
                    "method": r.method,
                    "source": r.source,
                    "status": r.status.value,
                    "code": r.code,
                    "reason": r.reason,
                    "checked_at": r.checked_at,
                    "listed": [s.hex() for s in r.listed],
                }
                for r in self.results
            ],
        }


def _judge(
    method: str,
    source: str,
    fetch: Callable[[], FetchedProof],
    *,
    domain: str,
    origin: str,
    signatory_id: bytes,
) -> MethodResult:
    checked_at = int(time.time())
    try:
        fetched = fetch()
        checked_at = fetched.checked_at
        proof = parse_domain_proof(fetched.document)
        match_domain_proof(proof, origin, signatory_id, domain)
    except DomainProofMismatchError as e:
        return MethodResult(method, source, Status.MISMATCH, str(e), checked_at, e.code, e.listed)
    except DomainProofMissingError as e:
        return MethodResult(method, source, Status.MISSING, str(e), checked_at, e.code)
    except ProofAbsentError as e:
        return MethodResult(method, source, Status.MISSING, str(e), checked_at, e.code)
    except DomainProofFormatError as e:
        return MethodResult(method, source, Status.MALFORMED, e.message, checked_at, e.code)
    except DomainFetchError as e:
        return MethodResult(method, source, Status.UNREACHABLE, str(e), checked_at, e.code)
    return MethodResult(
        method, source, Status.CONFIRMED, f"{source} names this signatory for {origin}",
        checked_at, "confirmed", (signatory_id,),
    )  # fmt: skip


def check_domain(
    domain: str,
    origin: str,
    signatory_id: bytes,
    *,
    methods: Sequence[str] = ("dns", "https"),
    timeout: float = DEFAULT_TIMEOUT,
    insecure_test_override: InsecureTestOverride | None = None,
) -> DomainCheck:
    """Fetch ``domain``'s proof by each method and judge the claim of ``signatory_id``."""
    check_domain_name(domain)
    override = insecure_test_override
    fetchers: dict[str, tuple[str, Callable[[], FetchedProof]]] = {
        "dns": (
            txt_name(domain),
            lambda: fetch_txt(domain, timeout=timeout, insecure_test_override=override),
        ),
        "https": (
            well_known_url(domain),
            lambda: fetch_well_known(domain, timeout=timeout, insecure_test_override=override),
        ),
    }
    results = tuple(
        _judge(m, *fetchers[m], domain=domain, origin=origin, signatory_id=signatory_id)
        for m in methods
    )
    best = min(results, key=lambda r: _PRECEDENCE.index(r.status))
    reason = best.reason
    conflicts = [r for r in results if r.status is Status.MISMATCH]
    if best.status is Status.CONFIRMED and conflicts:
        reason += f"; but {conflicts[0].source} names other signatories for this log"
    return DomainCheck(
        domain,
        origin,
        signatory_id,
        best.status,
        reason,
        max(r.checked_at for r in results),
        results,
    )


__all__ = [
    "DEFAULT_TIMEOUT",
    "DomainCheck",
    "DomainFetchError",
    "FetchedProof",
    "InsecureTestOverride",
    "MethodResult",
    "NonPublicAddressError",
    "ProofAbsentError",
    "RedirectRefusedError",
    "Status",
    "check_domain",
    "check_public_address",
    "fetch_txt",
    "fetch_well_known",
    "resolve_public",
]
