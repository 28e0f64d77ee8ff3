"""``ledger domain``: what a signatory publishes to prove its domain, and checking it.

``ledger domain proof --key KEY`` prints the proof document of docs/spec.md
("Domain proofs") for the key's signatory and the log, in its two forms: the file
``https://<domain>/.well-known/endorsement-ledger`` and the TXT record
``_endorsement-ledger.<domain>`` (zone-file form). ``ledger domain check DOMAIN``
fetches both forms (:mod:`ledger.verify.domains`) and reports confirmed, mismatch,
malformed, unreachable or missing, with the reason and the time of the check.

Exit codes (cli/errors.py): 0 confirmed (or, without a signatory, the domain names
at least one for the log), 5 mismatch or malformed, 6 missing, 3 unreachable.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from cli.client import LedgerClient
from cli.errors import InputError, NotFoundError, UnreachableError, VerifyError
from cli.flows import drafting, parse_id, write_new_file
from cli.keyio import read_public_key
from cli.options import OrderedGroup, json_option, passphrase_option, server_options
from cli.output import emit_json, note, warn
from cli.session import ServerOptions
from cli.submit import signatory_of
from ledger.core.domainproof import (
    DomainProof,
    DomainProofFormatError,
    check_domain_name,
    encode_domain_proof,
    parse_domain_proof,
    txt_name,
    txt_strings,
    well_known_url,
    zone_file_strings,
)
from ledger.core.errors import FormatError, LedgerError
from ledger.verify.domains import (
    DomainCheck,
    FetchedProof,
    InsecureTestOverride,
    Status,
    check_domain,
    fetch_txt,
    fetch_well_known,
)

#: TESTS ONLY (tests/test_domain_cli.py sets it with monkeypatch): where test domains
#: are served. No option, environment variable or file sets it.
INSECURE_TEST_OVERRIDE: InsecureTestOverride | None = None

METHODS = {"both": ("dns", "https"), "dns": ("dns",), "https": ("https",)}
PLACEHOLDER = "<domain>"


@click.group("domain", cls=OrderedGroup)
def domain_group() -> None:
    """Prove that a domain is yours, and check anyone's claim to one.

    A registration's --domain is only a claim. The domain's holder confirms it by
    publishing the signatory id under the domain, as a file or a DNS TXT record;
    every reader checks it for themselves.

    \b
    Example:
      ledger domain proof --key ministry.key --domain gouv.example
      ledger domain check gouv.example --key ministry.key.pub
    """


def _check_domain_arg(domain: str) -> str:
    try:
        return check_domain_name(domain)
    except FormatError as e:
        raise InputError(f"{domain!r}: {e.message}") from None


def _registered_domain(client: LedgerClient, sid: bytes) -> str | None:
    """The domain the signatory registered, as the server's projection says."""
    doc = client.signatory(sid.hex())
    value = doc.get("domain") if doc is not None else None
    return value if isinstance(value, str) else None


@domain_group.command("proof")
@click.option(
    "--key",
    "key_spec",
    required=True,
    metavar="KEY",
    help="The signatory's key: a key file, its .pub file or the base64 public key.",
)
@click.option(
    "--domain",
    default=None,
    metavar="DOMAIN",
    help="The domain (default: the one the signatory registered).",
)
@click.option(
    "--signatory",
    "signatory_text",
    default=None,
    metavar="ID",
    help="The signatory id, if KEY is not the key it registered with and the "
    "server is not asked (--origin).",
)
@click.option(
    "--origin",
    default=None,
    metavar="ORIGIN",
    help="The log's origin, to work without contacting the server.",
)
@click.option(
    "--file",
    "file_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the file form to this new file.",
)
@passphrase_option
@server_options
@json_option
def proof_cmd(
    *,
    key_spec: str,
    domain: str | None,
    signatory_text: str | None,
    origin: str | None,
    file_path: Path | None,
    passphrase_file: Path | None,
    conn: ServerOptions,
    as_json: bool,
) -> None:
    """Print what to publish, and where, to prove the signatory's domain.

    The signatory id is the hash of the key the signatory registered with; it does
    not change when the key is rotated, so neither does the proof. Without
    --origin, the log's origin, the signatory id and its registered domain come
    from the server.

    \b
    Example:
      ledger domain proof --key ministry.key
      ledger domain proof --key ministry.key.pub --origin ledger.example.org/paris-call \\
          --domain gouv.example --file endorsement-ledger
    """  # fmt: skip
    if domain is not None:
        domain = _check_domain_arg(domain)
    pub = read_public_key(key_spec, passphrase_file)
    with drafting(conn, origin) as ctx:
        if signatory_text is not None:
            sid = parse_id(signatory_text, "signatory id")
        else:
            sid = signatory_of(ctx.client, pub)
        if domain is None and ctx.client is not None:
            domain = _registered_domain(ctx.client, sid)
        log_origin = ctx.origin
    try:
        document = encode_domain_proof(DomainProof.of([(log_origin, sid)]))
    except FormatError as e:
        raise InputError(f"cannot make a proof for the origin {log_origin!r}: {e}") from None
    if file_path is not None:
        write_new_file(file_path, document, what="domain proof")
    where = domain or PLACEHOLDER
    url = well_known_url(domain) if domain else f"https://{where}/.well-known/endorsement-ledger"
    name = txt_name(domain) if domain else f"_endorsement-ledger.{where}"
    zone = f"{name}. 3600 IN TXT {zone_file_strings(document)}"
    if as_json:
        emit_json({
            "domain": domain,
            "origin": log_origin,
            "signatory": sid.hex(),
            "document": document.decode("ascii"),
            "well_known_url": url,
            "txt_name": name,
            "txt_strings": [s.decode("ascii") for s in txt_strings(document)],
            "zone_file": zone,
        })  # fmt: skip
        return
    click.echo(f"Proof that {where} speaks through signatory {sid.hex()} in the log {log_origin}.")
    click.echo("Publish it in either place, or both:")
    click.echo("")
    click.echo(f"1. The file {url}")
    click.echo(f"   served with status 200 and no redirect, exactly these {len(document)} bytes:")
    click.echo("")
    click.echo(document.decode("ascii"), nl=False)
    click.echo("")
    click.echo(f"2. One DNS TXT record at {name}, in zone-file form")
    click.echo("   (\\010 is the line feed; the strings join with nothing between them):")
    click.echo("")
    click.echo(zone)
    click.echo("")
    if file_path is not None:
        note(f"wrote the file form to {file_path}")
    if domain is None:
        warn("no domain given or registered: replace <domain> with yours (--domain)")
    note(
        "If the domain already names other signatories, add the 'signatory' line to the "
        "same file and the same TXT record: one document, one record.\n"
        f"Then: ledger domain check {where} --signatory {sid.hex()} --origin {log_origin}"
    )


def _when(unix: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(unix))


def _report(check: DomainCheck) -> None:
    click.echo(f"{check.domain}: {check.status.value} (checked {_when(check.checked_at)})")
    click.echo(f"  signatory {check.signatory_id.hex()} in {check.origin}")
    click.echo(f"  {check.reason}")
    for r in check.results:
        click.echo(f"  {r.method:5} {r.status.value:11} {r.source}: {r.reason} [{r.code}]")
        for sid in r.listed:
            if sid != check.signatory_id:
                click.echo(f"        names instead: {sid.hex()}")


def _exit_for(check: DomainCheck) -> None:
    message = f"{check.domain}: {check.status.value}: {check.reason}"
    if check.status is Status.CONFIRMED:
        return
    if check.status is Status.MISMATCH:
        raise VerifyError(message + " (someone else may be claiming this domain)")
    if check.status is Status.MALFORMED:
        raise VerifyError(message)
    if check.status is Status.UNREACHABLE:
        raise UnreachableError(message)
    raise NotFoundError(message)


def _list_named(domain: str, origin: str, methods: tuple[str, ...], timeout: float,
                as_json: bool) -> None:  # fmt: skip
    """Without a signatory: what the domain names for the log, by each method."""
    override = INSECURE_TEST_OVERRIDE
    found: list[dict[str, object]] = []
    any_named = False
    any_unreachable = False
    for method in methods:
        entry: dict[str, object] = {"method": method}
        try:
            fetched: FetchedProof = (
                fetch_txt(domain, timeout=timeout, insecure_test_override=override)
                if method == "dns"
                else fetch_well_known(domain, timeout=timeout, insecure_test_override=override)
            )
            proof = parse_domain_proof(fetched.document)
        except DomainProofFormatError as e:
            entry.update(status="malformed", reason=e.message, code=e.code)
        except LedgerError as e:
            status = "missing" if e.code == "domain_proof_absent" else "unreachable"
            any_unreachable |= status == "unreachable"
            entry.update(status=status, reason=str(e), code=e.code)
        else:
            named = [s.hex() for s in proof.signatories_for(origin)]
            any_named |= bool(named)
            entry.update(
                status="named" if named else "missing",
                source=fetched.source,
                checked_at=fetched.checked_at,
                signatories=named,
                reason=f"names {len(named)} signatories for {origin}",
            )
        found.append(entry)
    if as_json:
        emit_json({"domain": domain, "origin": origin, "methods": found})
    else:
        click.echo(f"{domain}, for the log {origin}:")
        for entry in found:
            click.echo(f"  {entry['method']:5} {entry['status']}: {entry['reason']}")
            for sid in entry.get("signatories", []) or []:  # type: ignore[attr-defined]
                click.echo(f"        {sid}")
    if any_named:
        return
    if any_unreachable:
        raise UnreachableError(f"{domain}: no proof could be fetched")
    raise NotFoundError(f"{domain} names no signatory for {origin}")


@domain_group.command("check")
@click.argument("domain")
@click.option(
    "--signatory",
    "signatory_text",
    default=None,
    metavar="ID",
    help="The signatory whose claim to check (64 hex digits).",
)
@click.option(
    "--key",
    "key_spec",
    default=None,
    metavar="KEY",
    help="Or the signatory's key (its id is asked of the server unless --origin).",
)
@click.option(
    "--origin",
    default=None,
    metavar="ORIGIN",
    help="The log's origin, to work without contacting the server.",
)
@click.option(
    "--method",
    type=click.Choice(list(METHODS)),
    default="both",
    show_default=True,
    help="Which form of the proof to fetch.",
)
@passphrase_option
@server_options
@json_option
def check_cmd(
    *,
    domain: str,
    signatory_text: str | None,
    key_spec: str | None,
    origin: str | None,
    method: str,
    passphrase_file: Path | None,
    conn: ServerOptions,
    as_json: bool,
) -> None:
    """Fetch DOMAIN's proof and check a signatory's claim to the domain.

    Reports confirmed, mismatch (the domain names other signatories for this log:
    someone else registered with its name), malformed, unreachable or missing,
    with the reason and the time of the check. Without --signatory or --key, lists
    the signatories the domain names for the log. --timeout bounds each fetch.

    \b
    Example:
      ledger domain check gouv.example --signatory 343cfa0d...979e03
      ledger domain check gouv.example --origin ledger.example.org/paris-call
    """  # fmt: skip
    domain = _check_domain_arg(domain)
    if signatory_text is not None and key_spec is not None:
        raise InputError("give --signatory or --key, not both")
    with drafting(conn, origin) as ctx:
        log_origin = ctx.origin
        sid: bytes | None = None
        if signatory_text is not None:
            sid = parse_id(signatory_text, "signatory id")
        elif key_spec is not None:
            sid = signatory_of(ctx.client, read_public_key(key_spec, passphrase_file))
    if sid is None:
        _list_named(domain, log_origin, METHODS[method], conn.timeout, as_json)
        return
    check = check_domain(
        domain,
        log_origin,
        sid,
        methods=METHODS[method],
        timeout=conn.timeout,
        insecure_test_override=INSECURE_TEST_OVERRIDE,
    )
    if as_json:
        emit_json(check.to_json())
    else:
        _report(check)
    _exit_for(check)


__all__ = ["INSECURE_TEST_OVERRIDE", "check_cmd", "domain_group", "proof_cmd"]
