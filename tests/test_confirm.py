"""Who is confirmed (ledger.verify.confirm, ``ledger-verify log --check-domains``): an
impostor who registers a real signatory's name and domain is a mismatch, the real one
confirmed, and the confirmed tallies count only the confirmed endorsements.

Real servers on loopback (tests/test_domain_servers.py): HTTPS with a test CA and a DNS
server answering TXT queries, reached through the fetchers' explicit test override.
"""

from __future__ import annotations

import functools
import hashlib
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_domain_servers import ProofHTTPSServer, Route, TestCA, TxtDNSServer

import ledger.verify.cli
from ledger.core.domainproof import DomainProof, encode_domain_proof, txt_strings
from ledger.core.records import Kind, Registration
from ledger.verify import dnstxt
from ledger.verify.cli import main as ledger_verify
from ledger.verify.confirm import DomainChecker, check_domains, confirmed, confirmed_tallies
from ledger.verify.dnstxt import Nameserver
from ledger.verify.domains import InsecureTestOverride, Status
from ledger.verify.source import DirectorySource
from ledger.verify.trust import Trust
from ledger.verify.verifier import verify_log
from tests.logfactory import LogFactory, Member, public_bytes, sign_record

DOMAINS = ["gouv-aldoria.test", "acme.test", "nowhere.test"]


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    real = socket.getaddrinfo

    def guarded(host: Any, *args: Any, **kw: Any) -> Any:
        if host not in ("127.0.0.1", "::1"):
            pytest.fail(f"a test resolved {host!r} through the system resolver")
        return real(host, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)
    monkeypatch.setattr(dnstxt, "system_nameservers", lambda *a, **k: pytest.fail("resolver"))


def _register(f: LogFactory, name: str, kind: Kind, domain: str | None) -> Member:
    key = f.new_key()
    pub = public_bytes(key)
    body = Registration(f.origin, f.signed_at, pub, name, kind, domain=domain)
    f.append_record(sign_record(body, [key]))
    m = Member(len(f.members), hashlib.sha256(pub).digest(), kind, [key])
    f.members.append(m)
    f.active.append(m)
    return m


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    f = LogFactory(seed="confirm")
    real = _register(f, "Republic of Aldoria", Kind.STATE, "gouv-aldoria.test")
    impostor = _register(f, "Republic of Aldoria", Kind.STATE, "gouv-aldoria.test")
    acme = _register(f, "Acme", Kind.COMPANY, "acme.test")
    lost = _register(f, "Lost", Kind.OTHER, "nowhere.test")
    plain = _register(f, "No Domain", Kind.INDIVIDUAL, None)
    st = f.statement([real], title="The call")
    for m in (real, impostor, acme, lost, plain):
        f.endorse(m, st)
    d = f.write(tmp_path_factory.mktemp("log") / "log")
    return {"f": f, "dir": d, "real": real, "impostor": impostor, "acme": acme, "st": st}


@pytest.fixture(scope="module")
def override(
    log: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InsecureTestOverride]:
    origin = log["f"].origin
    ca = TestCA(tmp_path_factory.mktemp("ca"))
    aldoria = encode_domain_proof(DomainProof.of([(origin, log["real"].id)]))
    acme = encode_domain_proof(DomainProof.of([(origin, log["acme"].id)]))
    https = ProofHTTPSServer({d: ca.issue(d) for d in DOMAINS}, default="acme.test")
    https.routes.update(
        {
            "gouv-aldoria.test": Route(body=aldoria),
            "acme.test": Route(status=404),  # acme proves it by DNS only
            "nowhere.test": Route(status=404),
        }
    )
    https.start()
    dns = TxtDNSServer({"_endorsement-ledger.acme.test": [txt_strings(acme)]}).start()
    try:
        yield InsecureTestOverride(
            ca_file=str(ca.ca_file),
            hosts={d: ("127.0.0.1", https.port) for d in DOMAINS},
            nameservers=[Nameserver("127.0.0.1", dns.port)],
        )
    finally:
        https.shutdown()
        https.server_close()
        dns.stop()


def _replay(log: dict[str, Any]) -> Any:
    trust = Trust.from_vkeys([log["f"].log_key.vkey])
    return verify_log(DirectorySource(log["dir"]), trust).replay


def test_the_real_signatory_is_confirmed_and_the_impostor_is_a_mismatch(
    log: dict[str, Any], override: InsecureTestOverride
) -> None:
    checks = {
        c.signatory_id: c
        for c in check_domains(_replay(log), timeout=3, insecure_test_override=override)
    }
    assert checks[log["real"].id].status is Status.CONFIRMED
    impostor = checks[log["impostor"].id]
    assert impostor.status is Status.MISMATCH
    assert log["real"].id in {s for r in impostor.results for s in r.listed}
    assert checks[log["acme"].id].status is Status.CONFIRMED  # by DNS alone
    assert [c.status for c in checks.values()].count(Status.MISSING) == 1  # nowhere.test
    assert len(checks) == 4  # the signatory without a domain claims nothing


def test_confirmed_tallies_count_only_confirmed_endorsements(
    log: dict[str, Any], override: InsecureTestOverride
) -> None:
    replay = _replay(log)
    checks = check_domains(replay, timeout=3, insecure_test_override=override)
    counts = confirmed_tallies(replay, confirmed(checks))[log["st"]]
    assert replay.statements[log["st"]].total == 5
    assert counts["confirmed"] == 2 and counts["state"] == 1 and counts["company"] == 1


def test_ledger_verify_reports_domains_and_confirmed_tallies(
    log: dict[str, Any],
    override: InsecureTestOverride,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The CLI passes no test override (none can be given on a command line): the test
    # hands its own to the function the CLI calls.
    monkeypatch.setattr(
        ledger.verify.cli,
        "check_domains",
        functools.partial(check_domains, insecure_test_override=override),
    )
    vkey = log["f"].log_key.vkey
    code = ledger_verify(["log", str(log["dir"]), "--log-key", vkey, "--json", "--check-domains"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    statuses = {d["signatory"]: d["status"] for d in report["domains"]}
    assert statuses[log["impostor"].id.hex()] == "mismatch"
    assert statuses[log["real"].id.hex()] == "confirmed"
    (st,) = report["tallies"]["statements"]
    assert (st["endorsements"], st["confirmed"]) == (5, 2)
    assert st["confirmed_by_kind"]["state"] == 1
    code = ledger_verify(["log", str(log["dir"]), "--log-key", vkey, "--check-domains"])
    out = capsys.readouterr().out
    assert code == 0 and "IMPERSONATION ALERT" in out and "2 of them confirmed" in out


def test_without_check_domains_nothing_is_fetched(
    log: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    vkey = log["f"].log_key.vkey
    assert ledger_verify(["log", str(log["dir"]), "--log-key", vkey, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert "domains" not in report and "confirmed" not in report["tallies"]["statements"][0]


def test_the_site_says_how_each_identity_is_known(
    log: dict[str, Any], override: InsecureTestOverride, tmp_path: Path
) -> None:
    """The real signatory is shown as confirmed by this mirror, the impostor with the
    same name as an impersonation alert, the others as self-declared; each with its id."""
    from ledger.mirror.site.build import Site  # noqa: PLC0415
    from ledger.mirror.site.pages import statement_page  # noqa: PLC0415
    from ledger.mirror.sync import Mirror  # noqa: PLC0415

    f = log["f"]
    d = f.write(tmp_path / "m")
    with Mirror(d, Trust.from_vkeys([f.log_key.vkey])) as m:
        assert m.state is not None
        checker = DomainChecker(timeout=3, insecure_test_override=override)
        domains = checker.update(m.state.replay)
        assert checker.changed and len(domains) == 4
        assert checker.update(m.state.replay) == domains and not checker.changed  # cached
        Site(d, [f.log_key.vkey]).update(m.state, domains)
    page = (d / statement_page(log["st"])).read_text()
    for member, label in (
        (log["real"], "domain confirmed (checked by this mirror"),
        (log["impostor"], "IMPERSONATION ALERT"),
    ):
        row = next(r for r in page.split("<tr>") if member.id.hex() in r)
        assert label in row, row
    plain = next(r for r in page.split("<tr>") if "No Domain" in r)
    assert ">self-declared<" in plain
