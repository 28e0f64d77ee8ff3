"""``ledger import-signatories``: register a list of signatories from a CSV file.

For a coalition that onboards its members: one row per signatory, with a header::

    name,kind,country,domain,key
    Example Ministry of Digital Affairs,state,FR,numerique.example,keys/ministry.key
    Open Wires Foundation,civil-society,,openwires.example,

``name`` and ``kind`` are required; ``country``, ``domain`` and ``key`` may be empty;
other columns are ignored. ``key`` is the signatory's key file (relative to the CSV
file's directory); when it is empty, the key ``<keys-dir>/<name>.key`` is used, and
generated if it does not exist yet (with ``.pub`` beside it), so that each signatory
has a key of its own. All new keys are encrypted with one passphrase unless
``--no-encrypt``.

Registrations go through the batch endpoint, a progress bar counting them; each
logged one has its receipt verified against the pinned log key and saved in
``--receipts-dir``. Running the import again is safe: a signatory already
registered is reported as such, not as a failure. With ``--endorse STATEMENT``
every imported signatory also endorses that statement.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import click

from cli.errors import EXIT_REFUSED, InputError, KeyProblemError
from cli.flows import INPUT_FILE, describe, is_stdio, read_input, resolve_statement, session_for
from cli.keyio import make_key_directory, write_public_key
from cli.options import json_option, passphrase_option, server_options, signed_at_option
from cli.output import emit_json, note, out, progress, table
from cli.session import ServerOptions, Session
from cli.submit import (
    BATCH_SIZE,
    BatchOutcome,
    now,
    sign,
    submit_batches,
    summarize_refusals,
)
from keys.keyfile import key_file_is_encrypted
from keys.passphrase import resolve_passphrase
from keys.signer import Signer
from ledger.core.errors import LedgerError
from ledger.core.records import Endorsement, Kind, Registration, SignedRecord, encode_body

#: Codes that mean "already done": not a failure when an import is run again.
ALREADY = frozenset({"already_registered", "already_endorsed"})
_SLUG = re.compile(r"[^a-z0-9]+")


@dataclass
class SignatoryRow:
    """One row of a signatories CSV file."""

    line: int
    name: str
    kind: Kind
    country: str | None = None
    domain: str | None = None
    key: Path | None = None
    extra: dict[str, str] = field(default_factory=dict)


def _opt(row: dict[str, str | None], name: str) -> str | None:
    value = (row.get(name) or "").strip()
    return value or None


def read_signatories_csv(path: Path) -> list[SignatoryRow]:
    """Parse and check every row before anything is signed (InputError names the line).

    ``-`` is standard input; a ``key`` column is then relative to the working directory.
    """
    name_of_file = describe(path)
    try:
        text = read_input(path).decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError(f"cannot read {name_of_file}: {e}") from None
    base = Path() if is_stdio(path) else path.parent
    reader = csv.DictReader(text.splitlines())
    if reader.fieldnames is None or not {"name", "kind"} <= set(reader.fieldnames):
        raise InputError(f"{name_of_file}: the header must name at least the columns name and kind")
    rows: list[SignatoryRow] = []
    for n, raw in enumerate(reader, start=2):
        name = unicodedata.normalize("NFC", (raw.get("name") or "").strip())
        kind = (raw.get("kind") or "").strip()
        if not name:
            raise InputError(f"{name_of_file}, line {n}: empty name")
        try:
            kind_value = Kind(kind)
        except ValueError:
            raise InputError(
                f"{name_of_file}, line {n}: kind {kind!r} is not one of "
                + ", ".join(k.value for k in Kind)
            ) from None
        key = _opt(raw, "key")
        row = SignatoryRow(
            line=n,
            name=name,
            kind=kind_value,
            country=_opt(raw, "country"),
            domain=_opt(raw, "domain"),
            key=(base / key) if key else None,
            extra={k: v or "" for k, v in raw.items() if k not in ("name", "kind") and k},
        )
        try:  # every field checked now, with a placeholder key and log
            encode_body(
                Registration("check", 0, bytes(32), row.name, row.kind, row.country, row.domain)
            )
        except LedgerError as e:
            raise InputError(f"{name_of_file}, line {n}: {e} [{e.code}]") from None
        rows.append(row)
    if not rows:
        raise InputError(f"{name_of_file} lists no signatory")
    return rows


def key_file_names(rows: Sequence[SignatoryRow], keys_dir: Path) -> list[Path]:
    """The key file of each row: its ``key`` column, else ``<keys_dir>/<slug of name>.key``."""
    used: set[str] = set()
    paths = []
    for row in rows:
        if row.key is not None:
            paths.append(row.key)
            continue
        ascii_name = unicodedata.normalize("NFKD", row.name).encode("ascii", "ignore").decode()
        base = _SLUG.sub("-", ascii_name.lower()).strip("-")[:60] or "signatory"
        slug, i = base, 2
        while slug in used:
            slug, i = f"{base}-{i}", i + 1
        used.add(slug)
        paths.append(keys_dir / f"{slug}.key")
    return paths


def prepare_keys(
    paths: Sequence[Path],
    *,
    passphrase: bytes | None,
    new_key_passphrase: bytes | None,
    description: str = "keys",
) -> list[Signer]:
    """Load each key file, generating the missing ones (with their ``.pub``).

    ``passphrase`` opens existing encrypted keys; new keys are encrypted with
    ``new_key_passphrase``, or stored unencrypted if it is None.
    """
    signers: list[Signer] = []
    with progress() as bar:
        task = bar.add_task(description, total=len(paths))
        for path in paths:
            if path.exists():
                encrypted = key_file_is_encrypted(path)
                if encrypted and passphrase is None:
                    raise KeyProblemError(f"{path} is encrypted and no passphrase was given")
                signer = Signer.load(path, passphrase if encrypted else None)
            else:
                make_key_directory(path)
                signer = Signer.generate()
                signer.save(path, new_key_passphrase, allow_unencrypted=new_key_passphrase is None)
                write_public_key(path, signer.public_key)
            signers.append(signer)
            bar.advance(task)
    return signers


def registrations(
    rows: Sequence[SignatoryRow], signers: Sequence[Signer], origin: str, signed_at: int
) -> list[tuple[str, SignedRecord]]:
    return [
        (
            row.name,
            sign(
                Registration(
                    origin, signed_at, s.public_key, row.name, row.kind, row.country, row.domain
                ),
                s,
            ),
        )
        for row, s in zip(rows, signers, strict=True)
    ]


def endorsements(
    *,
    labels: Sequence[str],
    signers: Sequence[Signer],
    origin: str,
    statement: bytes,
    signed_at: int,
    comments: Sequence[str | None] | None = None,
) -> list[tuple[str, SignedRecord]]:
    comments = comments or [None] * len(labels)
    return [
        (label, sign(Endorsement(origin, signed_at, s.key_hash, statement, c), s))
        for label, s, c in zip(labels, signers, comments, strict=True)
    ]


def count(outcomes: Sequence[BatchOutcome]) -> dict[str, int]:
    new = sum(1 for o in outcomes if o.ok and o.saved is not None and not o.saved.existing)
    existing = sum(1 for o in outcomes if o.ok and o.saved is not None and o.saved.existing)
    already = sum(1 for o in outcomes if not o.ok and o.code in ALREADY)
    refused = sum(1 for o in outcomes if not o.ok and o.code not in ALREADY)
    return {"logged": new, "in_log": existing, "already": already, "refused": refused}


@click.command("import-signatories")
@click.argument("csv_file", metavar="CSV", type=INPUT_FILE)
@click.option(
    "--keys-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("keys"),
    show_default=True,
    help="Where the keys of rows without a key column live, and new keys are made.",
)
@click.option(
    "--no-encrypt", is_flag=True, help="Store new keys without a passphrase (demos only)."
)
@passphrase_option
@click.option(
    "--receipts-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("receipts"),
    show_default=True,
    help="Where each entry's receipt and entry are saved.",
)
@click.option(
    "--endorse",
    "statement",
    default=None,
    metavar="STATEMENT",
    help="Also have every imported signatory endorse this statement.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 1000),
    default=BATCH_SIZE,
    show_default=True,
    help="Records per request.",
)
@server_options
@signed_at_option
@json_option
def import_signatories(
    *,
    csv_file: Path,
    keys_dir: Path,
    no_encrypt: bool,
    passphrase_file: Path | None,
    receipts_dir: Path,
    statement: str | None,
    batch_size: int,
    conn: ServerOptions,
    signed_at: int | None,
    as_json: bool,
) -> None:
    """Register signatories listed in a CSV file.

    Each gets its own key.

    Columns: name, kind (required), country, domain, key (optional). A row without
    a key gets KEYS_DIR/<name>.key, generated if missing. Safe to run again.

    \b
    Example:
      ledger import-signatories paris-call/signatories.csv --keys-dir keys/
      ledger import-signatories members.csv --endorse 250955a4fe09 --json
    """
    rows = read_signatories_csv(csv_file)
    paths = key_file_names(rows, keys_dir)
    with session_for(conn, for_write=True) as session:
        stmt = resolve_statement(session.client, statement) if statement else None
        missing = [p for p in paths if not p.exists()]
        encrypted = any(p.exists() and key_file_is_encrypted(p) for p in paths)
        passphrase = None
        if (missing and not no_encrypt) or encrypted:
            passphrase = resolve_passphrase(
                passphrase_file=passphrase_file,
                prompt="Passphrase of the signatories' keys: ",
                confirm=bool(missing) and not no_encrypt,
            )
        signers = prepare_keys(
            paths,
            passphrase=passphrase,
            new_key_passphrase=None if no_encrypt else passphrase,
            description=f"keys ({len(missing)} new)",
        )
        results = run_import(
            session,
            rows,
            signers,
            receipts_dir=receipts_dir,
            statement=stmt,
            signed_at=signed_at or now(),
            batch_size=batch_size,
        )
    registered, endorsed = results
    if as_json:
        emit_json(
            {
                "log": session.origin,
                "registrations": _json_outcomes(registered),
                "registration_counts": count(registered),
                **(
                    {
                        "endorsements": _json_outcomes(endorsed),
                        "endorsement_counts": count(endorsed),
                    }
                    if stmt is not None
                    else {}
                ),
            }
        )
    else:
        _print_counts("registrations", count(registered))
        summarize_refusals([o for o in registered if o.code not in ALREADY])
        if stmt is not None:
            _print_counts(f"endorsements of {stmt.hex()[:16]}", count(endorsed))
            summarize_refusals([o for o in endorsed if o.code not in ALREADY])
        note(f"receipts in {receipts_dir}/, keys in {keys_dir}/")
    if count(registered)["refused"] or (stmt is not None and count(endorsed)["refused"]):
        raise SystemExit(EXIT_REFUSED)


def run_import(
    session: Session,
    rows: Sequence[SignatoryRow],
    signers: Sequence[Signer],
    *,
    receipts_dir: Path,
    statement: bytes | None,
    signed_at: int,
    batch_size: int,
) -> tuple[list[BatchOutcome], list[BatchOutcome]]:
    records = registrations(rows, signers, session.origin, signed_at)
    registered = submit_batches(
        session,
        records,
        receipts_dir=receipts_dir,
        description="registering",
        batch_size=batch_size,
    )
    endorsed: list[BatchOutcome] = []
    if statement is not None:
        ok = [i for i, o in enumerate(registered) if o.ok or o.code == "already_registered"]
        items = endorsements(
            labels=[rows[i].name for i in ok],
            signers=[signers[i] for i in ok],
            origin=session.origin,
            statement=statement,
            signed_at=signed_at,
        )
        endorsed = submit_batches(
            session,
            items,
            receipts_dir=receipts_dir,
            description="endorsing",
            batch_size=batch_size,
        )
    return registered, endorsed


def _json_outcomes(outcomes: Sequence[BatchOutcome]) -> list[dict[str, object]]:
    docs = []
    for o in outcomes:
        doc: dict[str, object] = {"name": o.label, "status": o.status}
        if o.saved is not None:
            doc.update(o.saved.as_json())
        else:
            doc.update({"code": o.code, "detail": o.detail})
        docs.append(doc)
    return docs


def _print_counts(what: str, counts: dict[str, int]) -> None:
    grid = table(what, "count")
    labels = {
        "logged": "logged now",
        "in_log": "already in the log (same record)",
        "already": "already done before",
        "refused": "refused",
    }
    for key, label in labels.items():
        grid.add_row(label, str(counts[key]))
    out().print(grid)


__all__ = [
    "SignatoryRow",
    "count",
    "endorsements",
    "import_signatories",
    "key_file_names",
    "prepare_keys",
    "read_signatories_csv",
    "registrations",
    "run_import",
]
