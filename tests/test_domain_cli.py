"""``ledger domain proof`` and ``ledger domain check`` (cli/domain_cmd.py).

Offline cases use --origin; the online ones run ``ledger serve`` on loopback, register
a real signatory and an impostor under one domain, and check both against an HTTPS
server and a DNS server on loopback (the CLI's loudly named test override).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from test_domain_servers import ProofHTTPSServer, Route, TestCA, TxtDNSServer

from cli import domain_cmd
from cli.demo import free_port, local_server
from cli.errors import EXIT_NOT_FOUND, EXIT_UNREACHABLE, EXIT_USAGE, EXIT_VERIFY
from cli.main import cli as ledger_cli
from ledger.core.domainproof import (
    DomainProof,
    encode_domain_proof,
    join_txt_strings,
    parse_domain_proof,
    txt_strings,
)
from ledger.core.ed25519 import key_hash
from ledger.core.encoding import b64decode_strict
from ledger.verify.dnstxt import Nameserver
from ledger.verify.domains import InsecureTestOverride

ORIGIN = "ledger.test/domains"
KEY1 = "QdMSxxuBaQruuxjiScAckKYm2sHZ2cJt4yQI7BmWMsc="
SID1 = "343cfa0d397aea2cbdba93e2bf05e834632c59da0001ae63df4259b34d979e03"
OTHER = "40cf3cd53174c81b933f01e7f9bd47fae2c7e6ca7c1a47b5727826b9907b0231"
TEST_DOMAINS = ["org.test", "missing.test", "down.test", "bad.test"]
Run = Callable[..., Result]


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("cli-ca"))


@pytest.fixture(scope="module")
def https(ca: TestCA) -> Iterator[ProofHTTPSServer]:
    srv = ProofHTTPSServer({d: ca.issue(d) for d in TEST_DOMAINS}, default="org.test")
    srv.routes["missing.test"] = Route(status=404)
    srv.routes["down.test"] = Route(status=503)
    srv.routes["bad.test"] = Route(body=b"endorsement-ledger/v1 domain\nsignatory x\n")
    srv.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def dns() -> Iterator[TxtDNSServer]:
    srv = TxtDNSServer({}).start()
    yield srv
    srv.stop()


@pytest.fixture
def run(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    ca: TestCA,
    https: ProofHTTPSServer,
    dns: TxtDNSServer,
) -> Run:
    for name in list(os.environ):
        if name.startswith("LEDGER_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(
        domain_cmd,
        "INSECURE_TEST_OVERRIDE",
        InsecureTestOverride(
            str(ca.ca_file),
            {d: ("127.0.0.1", https.port) for d in TEST_DOMAINS},
            [Nameserver("127.0.0.1", dns.port)],
        ),
    )
    runner = CliRunner()

    def invoke(*args: object, server: str = "http://127.0.0.1:1") -> Result:
        env = {"LEDGER_CONFIG_DIR": str(tmp_path / "config"), "LEDGER_SERVER": server}
        return runner.invoke(ledger_cli, [str(a) for a in args], env=env, catch_exceptions=False)

    return invoke


def test_proof_offline_prints_both_forms(run: Run) -> None:
    result = run("domain", "proof", "--key", KEY1, "--origin", ORIGIN, "--domain", "org.test")
    assert result.exit_code == 0, result.output
    document = f"endorsement-ledger/v1 domain\nsignatory {ORIGIN} {SID1}\n"
    assert document in result.stdout
    assert "https://org.test/.well-known/endorsement-ledger" in result.stdout
    zone = next(line for line in result.stdout.splitlines() if " IN TXT " in line)
    assert zone.startswith("_endorsement-ledger.org.test. 3600 IN TXT ")
    assert zone.endswith(f'"endorsement-ledger/v1 domain\\010signatory {ORIGIN} {SID1}\\010"')
    assert f"ledger domain check org.test --signatory {SID1}" in result.stderr


def test_proof_json_and_file(run: Run, tmp_path: Path) -> None:
    result = run("domain", "proof", "--key", KEY1, "--origin", ORIGIN, "--domain", "org.test",
                 "--file", "endorsement-ledger", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    written = (tmp_path / "endorsement-ledger").read_bytes()
    assert doc["document"].encode() == written
    assert parse_domain_proof(written).signatories_for(ORIGIN) == (bytes.fromhex(SID1),)
    assert join_txt_strings([s.encode() for s in doc["txt_strings"]]) == written
    assert doc["txt_name"] == "_endorsement-ledger.org.test"
    again = run("domain", "proof", "--key", KEY1, "--origin", ORIGIN, "--file",
                "endorsement-ledger")  # fmt: skip
    assert again.exit_code == EXIT_USAGE  # never overwrites


def test_proof_without_domain_uses_a_placeholder(run: Run) -> None:
    result = run("domain", "proof", "--key", KEY1, "--origin", ORIGIN, "--signatory", OTHER)
    assert result.exit_code == 0, result.output
    assert f"signatory {ORIGIN} {OTHER}\n" in result.stdout
    assert "https://<domain>/.well-known/endorsement-ledger" in result.stdout
    assert "replace <domain>" in result.stderr


def test_proof_refuses_bad_input(run: Run) -> None:
    bad_domain = run("domain", "proof", "--key", KEY1, "--origin", ORIGIN, "--domain", "Org.Test")
    assert bad_domain.exit_code == EXIT_USAGE
    bad_origin = run("domain", "proof", "--key", KEY1, "--origin", "a b")
    assert bad_origin.exit_code == EXIT_USAGE


def _serve(https: ProofHTTPSServer, domain: str, *sids: str) -> bytes:
    document = encode_domain_proof(DomainProof.of([(ORIGIN, bytes.fromhex(s)) for s in sids]))
    https.routes[domain] = Route(body=document)
    return document


def test_check_offline_verdicts_and_exit_codes(
    run: Run, https: ProofHTTPSServer, dns: TxtDNSServer
) -> None:
    _serve(https, "org.test", SID1)
    ok = run("domain", "check", "org.test", "--signatory", SID1, "--origin", ORIGIN)
    assert ok.exit_code == 0, ok.output
    assert ok.stdout.startswith("org.test: confirmed (checked 20")
    mismatch = run("domain", "check", "org.test", "--signatory", OTHER, "--origin", ORIGIN)
    assert mismatch.exit_code == EXIT_VERIFY
    assert f"names instead: {SID1}" in mismatch.stdout
    assert "someone else may be claiming this domain" in mismatch.stderr
    missing = run("domain", "check", "missing.test", "--signatory", SID1, "--origin", ORIGIN)
    assert missing.exit_code == EXIT_NOT_FOUND, missing.output
    down = run("domain", "check", "down.test", "--signatory", SID1, "--origin", ORIGIN)
    assert down.exit_code == EXIT_UNREACHABLE, down.output
    assert "HTTP 503" in down.stdout
    bad = run("domain", "check", "bad.test", "--signatory", SID1, "--origin", ORIGIN, "--json")
    assert bad.exit_code == EXIT_VERIFY
    assert json.loads(bad.stdout)["status"] == "malformed"
    # the TXT form alone
    dns.zone["_endorsement-ledger.missing.test"] = [
        txt_strings(encode_domain_proof(DomainProof.of([(ORIGIN, bytes.fromhex(SID1))])))
    ]
    via_dns = run("domain", "check", "missing.test", "--signatory", SID1, "--origin", ORIGIN,
                  "--method", "dns", "--json")  # fmt: skip
    assert via_dns.exit_code == 0, via_dns.output
    doc = json.loads(via_dns.stdout)
    assert doc["methods"][0]["source"] == "_endorsement-ledger.missing.test"
    assert doc["checked_at"] > 1_700_000_000


def test_check_without_signatory_lists_the_named(run: Run, https: ProofHTTPSServer) -> None:
    _serve(https, "org.test", SID1, OTHER)
    listed = run("domain", "check", "org.test", "--origin", ORIGIN, "--method", "https")
    assert listed.exit_code == 0, listed.output
    assert SID1 in listed.stdout and OTHER in listed.stdout
    none = run("domain", "check", "missing.test", "--origin", "other.log/x", "--method", "https")
    assert none.exit_code == EXIT_NOT_FOUND


def test_check_refuses_names_outside_the_override(run: Run) -> None:
    result = run("domain", "check", "example.org", "--signatory", SID1, "--origin", ORIGIN,
                 "--method", "https")  # fmt: skip
    assert result.exit_code == EXIT_UNREACHABLE
    assert "not a test domain" in result.stdout


# --- against a real server: the real signatory and an impostor ---------------------------


@pytest.fixture(scope="module")
def ledger_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with local_server(tmp_path_factory.mktemp("domain-server"), free_port(), origin=ORIGIN) as url:
        yield url


def test_real_signatory_confirmed_impostor_mismatch(
    run: Run, ledger_server: str, https: ProofHTTPSServer, tmp_path: Path
) -> None:
    def ledger(*args: object) -> Result:
        result = run(*args, server=ledger_server)
        return result

    for label in ("real", "impostor"):
        assert ledger("key", "generate", f"{label}.key", "--no-encrypt").exit_code == 0
        reg = ledger("register", "--key", f"{label}.key", "--name", "Org of Test",
                     "--kind", "company", "--domain", "org.test", "--json")  # fmt: skip
        assert reg.exit_code == 0, reg.output
    real = key_hash(b64decode_strict((tmp_path / "real.key.pub").read_text().strip(), field="k"))
    proof = ledger("domain", "proof", "--key", "real.key", "--json")
    assert proof.exit_code == 0, proof.output
    doc = json.loads(proof.stdout)
    assert (doc["origin"], doc["signatory"], doc["domain"]) == (ORIGIN, real.hex(), "org.test")
    https.routes["org.test"] = Route(body=doc["document"].encode())  # the holder publishes it
    confirmed = ledger("domain", "check", "org.test", "--key", "real.key.pub", "--method", "https")
    assert confirmed.exit_code == 0, confirmed.output
    assert "confirmed" in confirmed.stdout
    impostor = ledger("domain", "check", "org.test", "--key", "impostor.key.pub",
                      "--method", "https")  # fmt: skip
    assert impostor.exit_code == EXIT_VERIFY, impostor.output
    assert "mismatch" in impostor.stdout
    assert f"names instead: {real.hex()}" in impostor.stdout
