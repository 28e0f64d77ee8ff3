"""``ledger witness``: keygen, serve, evidence (the witness of :mod:`ledger.witness`).

The witness key is an Ed25519 key in a PKCS#8 file made by ``keys/`` (mode 0600; plain
by default, as the log key, since a witness starts unattended; encrypted with
``--passphrase-file``). Beside it ``KEY.vkey`` holds its cosigner verifier key
(C2SP tlog-cosignature: ``<name>+<key ID>+base64(0x04 || key)``), the line logs and
verifiers put in their policies (``witness NAME VKEY URL``).

The logs it witnesses come from a C2SP tlog-policy file: its ``log <vkey> [<url>]``
lines (the vkey's name is the log's origin; the URL is where an auditing witness
fetches the log's tiles). Its ``witness``, ``group`` and ``quorum`` lines are parsed and
checked but not used by the witness (``quorum none`` is enough).
"""

from __future__ import annotations

import datetime
import logging
import sys
from pathlib import Path

import click

from cli.errors import InputError, KeyProblemError
from cli.options import OrderedGroup
from keys.keyfile import (
    generate_private_key,
    key_file_is_encrypted,
    load_private_key,
    save_private_key,
)
from keys.passphrase import read_passphrase_file, resolve_passphrase
from ledger.core.errors import FormatError
from ledger.core.note import ALG_COSIGNATURE_V1, CosignatureVerifier, make_vkey, parse_vkey
from ledger.core.policy import Policy, parse_policy
from ledger.durable import write_new
from ledger.verify.source import open_source
from ledger.witness.audit import LogAuditor
from ledger.witness.server import TIMEOUT, make_server, serve_forever
from ledger.witness.service import Witness, logs_of
from ledger.witness.store import WitnessStore

KEY_PATH = click.Path(dir_okay=False, path_type=Path)
EXISTING = click.Path(exists=True, dir_okay=False, path_type=Path)


def vkey_path(key: Path) -> Path:
    return key.with_name(key.name + ".vkey")


@click.group("witness", cls=OrderedGroup)
def witness_group() -> None:
    """Run a witness: cosign a log's checkpoints only if it never forks (C2SP tlog-witness).

    \b
    Example:
      ledger witness keygen w1.key --name witness.example.org/w1
      ledger witness serve --key w1.key --policy logs.policy --db w1.db \\
          --listen 127.0.0.1:7380
    """


@witness_group.command("keygen")
@click.argument("path", type=KEY_PATH)
@click.option("--name", required=True, help="The witness's key name: witness.example.org/w1.")
@click.option(
    "--passphrase-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Encrypt the key with the passphrase in this file (default: plain, mode 0600).",
)
def keygen(path: Path, name: str, passphrase_file: Path | None) -> None:
    """Make a witness key PATH and its cosigner vkey PATH.vkey; print the vkey.

    \b
    Example:
      ledger witness keygen w1.key --name witness.example.org/w1
    """
    passphrase = read_passphrase_file(passphrase_file) if passphrase_file else None
    key = generate_private_key()
    try:
        vkey = make_vkey(name, key.public_key().public_bytes_raw(), ALG_COSIGNATURE_V1)
    except FormatError as e:
        raise InputError(f"--name: {e.message}") from None
    if vkey_path(path).exists():
        raise KeyProblemError(f"{vkey_path(path)} exists; move it away first")
    save_private_key(path, key, passphrase, allow_unencrypted=passphrase is None)
    write_new(vkey_path(path), (vkey + "\n").encode("utf-8"))
    click.echo(vkey)


def _load_policy(path: Path) -> Policy:
    try:
        policy = parse_policy(path.read_bytes())
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror}") from None
    except FormatError as e:
        raise InputError(f"{path}: {e}") from None
    if not policy.logs:
        raise InputError(f"{path} names no log to witness (add 'log <vkey> [<url>]' lines)")
    return policy


def _witness_name(key: Path, name: str | None, public_key: bytes) -> str:
    vkey_file = vkey_path(key)
    if not vkey_file.exists():
        if name is None:
            raise InputError(f"give --name (no {vkey_file} beside the key)")
        return name
    try:
        verifier = parse_vkey(vkey_file.read_text(encoding="utf-8").strip())
    except (OSError, UnicodeDecodeError, FormatError) as e:
        raise InputError(f"cannot read {vkey_file}: {e}") from None
    if not isinstance(verifier, CosignatureVerifier) or verifier.public_key != public_key:
        raise KeyProblemError(f"{vkey_file} is not the cosigner vkey of {key}")
    if name is not None and name != verifier.name:
        raise InputError(f"--name {name!r} differs from the name in {vkey_file}")
    return verifier.name


def _sources(policy: Policy, given: tuple[str, ...]) -> dict[str, str]:
    where = {v.name: url for v, url in zip(policy.logs, policy.log_urls, strict=True) if url}
    for item in given:
        origin, sep, location = item.partition("=")
        if not sep or not origin or not location:
            raise InputError(f"--source must be ORIGIN=LOCATION, not {item!r}")
        where[origin] = location
    return where


def _listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise InputError(f"--listen must be HOST:PORT, not {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


@witness_group.command("serve")
@click.option("--key", "key_path", type=EXISTING, required=True, help="The witness key file.")
@click.option("--name", default=None, help="Its key name. [the name in KEY.vkey]")
@click.option(
    "--policy", type=EXISTING, required=True, help="tlog-policy file: the logs to witness."
)
@click.option("--db", type=KEY_PATH, required=True, help="SQLite file of the witness's state.")
@click.option("--listen", default="127.0.0.1:7380", show_default=True, help="HOST:PORT.")
@click.option(
    "--passphrase-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The key's passphrase, if it is encrypted (else LEDGER_KEY_PASSPHRASE).",
)
@click.option(
    "--audit",
    is_flag=True,
    help="Auditing witness: replay every new entry against the rules before cosigning.",
)
@click.option(
    "--source",
    "sources",
    multiple=True,
    metavar="ORIGIN=LOCATION",
    help="Where to fetch a log's tiles and entries for --audit (a URL prefix or a "
    "directory; a mirror will do). [the log's URL in the policy]",
)
@click.option(
    "--audit-state",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory of the audited verifier states. [DB.audit]",
)
@click.option("--audit-jobs", type=click.IntRange(1, 64), default=1, show_default=True)
@click.option(
    "--audit-timeout",
    type=click.FloatRange(0.1, 600),
    default=10.0,
    show_default=True,
    help="Seconds to wait for each read from a log's source (a few retries follow).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(0.1, 3600),
    default=TIMEOUT,
    show_default=True,
    help="Seconds a connection may stay idle or take to send a request.",
)
def serve(
    *,
    key_path: Path,
    name: str | None,
    policy: Path,
    db: Path,
    listen: str,
    passphrase_file: Path | None,
    audit: bool,
    sources: tuple[str, ...],
    audit_state: Path | None,
    audit_jobs: int,
    audit_timeout: float,
    timeout: float,
) -> None:
    """Serve POST /add-checkpoint and GET /<sha256(origin)>/checkpoint until SIGTERM.

    With --audit the witness also checks every new entry of a log (its signatures and
    the semantic rules, as ledger-verify does) and cosigns only a lawful log.

    \b
    Example:
      printf 'log %s https://ledger.example.org/paris-call\\nquorum none\\n' \\
          "$(cat log.vkey)" > logs.policy
      ledger witness serve --key w1.key --policy logs.policy --db w1.db \\
          --listen 127.0.0.1:7380 --audit
    """
    passphrase = None
    if key_file_is_encrypted(key_path):
        passphrase = resolve_passphrase(passphrase_file=passphrase_file)
    key = load_private_key(key_path, passphrase, strict_permissions=True)
    witness_name = _witness_name(key_path, name, key.public_key().public_bytes_raw())
    parsed = _load_policy(policy)
    logs = logs_of(parsed)
    host, port = _listen(listen)
    auditor = None
    if audit:
        where = _sources(parsed, sources)
        for origin in logs:
            if origin not in where:
                raise InputError(
                    f"--audit needs a source for {origin}: a URL on its 'log' line "
                    "or --source ORIGIN=LOCATION"
                )
        state_dir = audit_state or db.with_name(db.name + ".audit")
        auditor = LogAuditor(
            logs,
            where,
            state_dir,
            jobs=audit_jobs,
            open_source=lambda location: open_source(location, timeout=audit_timeout),
        )
    elif sources or audit_state is not None:
        raise InputError("--source and --audit-state need --audit")
    witness = Witness(witness_name, key, logs, WitnessStore(db), auditor=auditor)
    try:
        server = make_server(witness, host, port, timeout=timeout)
    except OSError as e:
        raise InputError(f"cannot listen on {listen}: {e.strerror}") from None
    click.echo(f"witness {witness.vkey}{' (auditing)' if audit else ''}")
    for origin in sorted(logs):
        click.echo(f"witnessing {origin}")
    click.echo(f"listening on {server.url}", nl=True)
    sys.stdout.flush()
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    serve_forever(server)


@witness_group.command("evidence")
@click.option("--db", type=EXISTING, required=True, help="The witness's SQLite file.")
@click.option("--origin", default=None, help="Only this log's refusals.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Also write each refusal's request and evidence into this directory.",
)
def evidence(db: Path, origin: str | None, out: Path | None) -> None:
    """Print the refusals of log-signed checkpoints the witness kept, with their evidence.

    A fork's evidence (two checkpoints of one size, both signed by the log) is a
    fork-evidence file: check it with ``ledger-verify evidence FILE --log-key VKEY``.

    \b
    Example:
      ledger witness evidence --db w1.db --out refusals/
    """
    store = WitnessStore(db)
    count = 0
    for r in store.refusals(origin):
        count += 1
        when = datetime.datetime.fromtimestamp(r.at, datetime.UTC).isoformat(timespec="seconds")
        click.echo(f"refusal {r.id}  {when}  {r.origin}  {r.status} {r.code}")
        click.echo(f"  {r.detail}")
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            request_file = out / f"refusal-{r.id}.request"
            request_file.write_bytes(r.request)
            click.echo(f"  request:  {request_file}")
        if r.evidence is not None:
            if out is not None:
                evidence_file = out / f"refusal-{r.id}.evidence.json"
                evidence_file.write_bytes(r.evidence)
                click.echo(f"  evidence: {evidence_file}")
            else:
                click.echo("  evidence: " + r.evidence.decode("utf-8", "replace").rstrip())
    if count == 0:
        click.echo("no refusals kept")
