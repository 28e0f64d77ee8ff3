"""Writes: ``ledger register``, ``endorse``, ``withdraw``, and the offline pair ``sign`` /
``submit`` that works for every record type."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime
from pathlib import Path

import click

from cli.errors import InputError, VerifyError
from cli.flows import (
    INPUT_FILE,
    OUTPUT_FILE,
    describe,
    drafting,
    is_stdio,
    parse_id,
    read_draft,
    replace_file,
    resolve_statement,
    session_for,
    user_text,
    write_draft,
)
from cli.keyio import load_signer, read_public_key
from cli.options import (
    draft_options,
    json_option,
    passphrase_option,
    receipt_option,
    server_options,
    signed_at_option,
)
from cli.output import counted, note, plural, warn
from cli.session import ServerOptions
from cli.submit import (
    author_slots,
    draft_of,
    missing_signers,
    now,
    order_signatures,
    report,
    server_lookup,
    sign,
    signatory_of,
    submit_record,
    verify_existing_signatures,
)
from ledger.core.ed25519 import key_hash
from ledger.core.encoding import b64encode
from ledger.core.errors import LedgerError
from ledger.core.records import (
    Endorsement,
    Kind,
    Registration,
    Revocation,
    Rotation,
    SignedRecord,
    Statement,
    Withdrawal,
    verify_signatures,
)
from ledger.core.state import KINDS


def _body_error(e: LedgerError) -> InputError:
    return InputError(f"invalid record: {e} [{e.code}]")


@click.command("register")
@click.option("--key", "key", required=True, metavar="KEY", help="The key file to register.")
@click.option("--name", required=True, help="The signatory's name (at most 200 bytes).")
@click.option("--kind", required=True, type=click.Choice(KINDS), help="What kind of signatory.")
@click.option("--country", default=None, metavar="CC", help="ISO 3166-1 alpha-2 code, e.g. FR.")
@click.option("--domain", default=None, help="A DNS name, e.g. example.org (not checked).")
@passphrase_option
@server_options
@receipt_option
@draft_options
@signed_at_option
@json_option
def register(
    *,
    key: str,
    name: str,
    kind: str,
    country: str | None,
    domain: str | None,
    passphrase_file: Path | None,
    conn: ServerOptions,
    receipt_path: Path | None,
    draft_path: Path | None,
    origin: str | None,
    signed_at: int | None,
    as_json: bool,
) -> None:
    """Register a signatory: key, name and kind.

    The signatory's id is the hash of the key it registers with.

    \b
    Example:
      ledger register --key ministry.key --name "Ministry of Digital Affairs" \\
          --kind state --country FR --domain numerique.gouv.fr
    """
    name = user_text(name, "--name")
    if draft_path is not None:
        with drafting(conn, origin) as ctx:
            pub = read_public_key(key, passphrase_file)
            body = Registration(
                ctx.origin, signed_at or now(), pub, name, Kind(kind), country, domain
            )
            try:
                record = draft_of(body)
            except LedgerError as e:
                raise _body_error(e) from None
            write_draft(draft_path, record)
        return
    with session_for(conn, for_write=True) as session:
        signer = load_signer(Path(key), passphrase_file)
        body = Registration(
            session.origin, signed_at or now(), signer.public_key, name, Kind(kind), country, domain
        )
        try:
            record = sign(body, signer)
        except LedgerError as e:
            raise _body_error(e) from None
        saved = submit_record(session, record, receipt_path=receipt_path)
        report(
            saved,
            as_json=as_json,
            origin=session.origin,
            extra={"signatory": signer.key_hash.hex()},
        )


def _pair_command(kind: str) -> click.Command:
    """``endorse`` and ``withdraw``: one signatory, one statement."""
    is_endorse = kind == "endorse"

    @click.command(kind)
    @click.argument("statement")
    @click.option("--key", "key", required=True, metavar="KEY", help="The signatory's key file.")
    @passphrase_option
    @server_options
    @receipt_option
    @draft_options
    @signed_at_option
    @json_option
    @click.option(
        "--signatory",
        default=None,
        metavar="ID",
        help="The signatory id, if the key's own hash is not it (after a rotation); "
        "online, the server is asked.",
    )
    def command(
        *,
        statement: str,
        key: str,
        passphrase_file: Path | None,
        conn: ServerOptions,
        receipt_path: Path | None,
        draft_path: Path | None,
        origin: str | None,
        signed_at: int | None,
        as_json: bool,
        signatory: str | None,
        comment: str | None = None,
    ) -> None:
        note_text = user_text(comment, "--comment") if comment is not None else None

        def body_for(origin_: str, sid: bytes, stmt: bytes) -> Endorsement | Withdrawal:
            t = signed_at or now()
            if is_endorse:
                return Endorsement(origin_, t, sid, stmt, note_text)
            return Withdrawal(origin_, t, sid, stmt)

        if draft_path is not None:
            with drafting(conn, origin) as ctx:
                stmt = resolve_statement(ctx.client, statement)
                pub = read_public_key(key, passphrase_file)
                sid = (
                    parse_id(signatory, "--signatory")
                    if signatory
                    else signatory_of(ctx.client, pub)
                )
                try:
                    record = draft_of(body_for(ctx.origin, sid, stmt))
                except LedgerError as e:
                    raise _body_error(e) from None
                write_draft(draft_path, record)
            return
        with session_for(conn, for_write=True) as session:
            stmt = resolve_statement(session.client, statement)
            signer = load_signer(Path(key), passphrase_file)
            sid = (
                parse_id(signatory, "--signatory")
                if signatory
                else signatory_of(session.client, signer.public_key)
            )
            try:
                record = sign(body_for(session.origin, sid, stmt), signer)
            except LedgerError as e:
                raise _body_error(e) from None
            saved = submit_record(session, record, receipt_path=receipt_path)
            report(
                saved,
                as_json=as_json,
                origin=session.origin,
                extra={"statement": stmt.hex(), "signatory": sid.hex()},
            )

    if is_endorse:
        command = click.option(
            "--comment", default=None, help="A one-line comment, published with the endorsement."
        )(command)
        command.help = inspect.cleandoc("""Endorse a statement of the log.

        STATEMENT is the statement id (64 hex digits, or a unique prefix of at least 6).

        \b
        Example:
          ledger endorse 250955a4fe09 --key ngo.key --comment "On behalf of our board"
        """)
    else:
        command.help = inspect.cleandoc("""Withdraw your endorsement of a statement.

        You may endorse it again later.

        \b
        Example:
          ledger withdraw 250955a4fe09 --key ngo.key
        """)
    return command


endorse = _pair_command("endorse")
withdraw = _pair_command("withdraw")


# --- offline signing ---------------------------------------------------------------------


def _when(t: int) -> str:
    """A record's signed_at (Unix seconds) as people read it: ISO 8601 in UTC."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _summary(record: SignedRecord) -> list[str]:
    """What the signer is about to sign, in a few lines."""
    b = record.body
    lines = [f"{b.TYPE} for the log {b.log}, signed at {_when(b.signed_at)}"]
    if isinstance(b, Statement):
        lines.append(f"title: {b.title}")
        lines.append(f"authors: {', '.join(a.hex()[:16] + '...' for a in b.authors)}")
        lines.append(
            f"text: {counted(len(b.text.encode()), 'byte')}, "
            f"first line: {b.text.splitlines()[0][:70]}"
        )
    elif isinstance(b, Registration):
        lines.append(f"name: {b.name} ({b.kind.value})")
    elif isinstance(b, Endorsement | Withdrawal):
        lines.append(f"signatory {b.signatory.hex()}, statement {b.statement.hex()}")
    elif isinstance(b, Rotation):
        lines.append(f"signatory {b.signatory.hex()}, new key {b64encode(b.new_key)}")
    elif isinstance(b, Revocation):
        lines.append(f"signatory {b.signatory.hex()}, revoked key {b64encode(b.key)}")
    lines.append(f"record id: {record.record_id.hex()}")
    return lines


def _check_signer(record: SignedRecord, pub: bytes, signatory: bytes | None) -> None:
    """Refuse a key that cannot be the next signer, as far as can be told offline."""
    b = record.body
    khash = key_hash(pub)
    if isinstance(b, Registration):
        if pub != b.key:
            raise InputError("a registration is signed by the key it registers, not this one")
    elif isinstance(b, Statement):
        author = signatory if signatory is not None else khash
        if author not in b.authors:
            raise InputError(
                f"key {khash.hex()} is not the registration key of an author of this "
                "statement; if it is an author's key after a rotation, name the author "
                "with --signatory ID"
            )
        slots = author_slots(record, None)
        if b.authors.index(author) in slots:
            raise InputError(f"author {author.hex()} has already signed this draft")
    elif isinstance(b, Rotation):
        if pub != b.new_key and any(s.public_key != b.new_key for s in record.signatures):
            raise InputError("the old key has already signed this rotation")
        if pub != b.new_key and khash != b.signatory and signatory is None:
            warn(
                "this key's hash is not the signatory id: fine only if it is the "
                "signatory's current key after an earlier rotation"
            )
    elif isinstance(b, Endorsement | Withdrawal | Revocation):
        self_revoke = isinstance(b, Revocation) and pub == b.key
        if not self_revoke and khash != b.signatory and signatory is None:
            warn(
                "this key's hash is not the signatory id: fine only if it is the "
                "signatory's current key after a rotation"
            )


@click.command("sign")
@click.argument("file", type=INPUT_FILE)
@click.option("--key", "key", required=True, metavar="KEY", help="The key file to sign with.")
@click.option(
    "--signatory",
    default=None,
    metavar="ID",
    help="For a key that is not its signatory's first key (after a rotation): whose it is.",
)
@click.option(
    "--out",
    type=OUTPUT_FILE,
    default=None,
    help="Write the signed draft here instead of updating FILE (- writes standard output; "
    "the default when FILE is -).",
)
@passphrase_option
def sign_cmd(
    file: Path, key: str, signatory: str | None, out: Path | None, passphrase_file: Path | None
) -> None:
    """Add your signature to a draft, offline.

    No network is used: the key may stay on an air-gapped machine.

    Co-authors sign the same draft one after the other, in any order, on any
    machine; then anyone submits it with 'ledger submit'.

    \b
    Example:
      ledger statement draft --title "..." --text-file call.txt \\
          --author a.key.pub --author b.key.pub --out call.draft
      ledger sign call.draft --key a.key      # on A's machine
      ledger sign call.draft --key b.key      # on B's machine, maybe air-gapped
      ledger submit call.draft
      ledger sign - --key c.key < in.draft > out.draft
    """
    record = read_draft(file)
    name = describe(file)
    verify_existing_signatures(record)
    signer = load_signer(Path(key), passphrase_file)
    if any(s.public_key == signer.public_key for s in record.signatures):
        note(f"{name} is already signed with this key; nothing to do")
        if is_stdio(file):  # a filter passes its input on
            replace_file(out or file, record.encode())
        return
    if not record.is_draft:
        raise InputError(
            f"{name} already has its {counted(record.required_signatures, 'signature')}; submit it"
        )
    sid = parse_id(signatory, "--signatory") if signatory else None
    _check_signer(record, signer.public_key, sid)
    for line in _summary(record):
        note(f"signing: {line}")
    signed = order_signatures(sign(record, signer), None)
    target = out or file
    replace_file(target, signed.encode())
    have, need = len(signed.signatures), signed.required_signatures
    to_stdout = is_stdio(target)  # then the draft is standard output: say it on stderr
    shown = "the draft" if to_stdout else str(target)
    if signed.is_draft:
        click.echo(
            f"signed {shown}: {have} of {need} {plural(need, 'signature')}; still to sign: "
            + "; ".join(missing_signers(signed)),
            err=to_stdout,
        )
    else:
        click.echo(
            f"signed {shown}: complete ({have} of {need}); submit it: ledger submit "
            + ("FILE" if to_stdout else str(target)),
            err=to_stdout,
        )


@click.command("submit")
@click.argument("file", type=INPUT_FILE)
@server_options
@receipt_option
@json_option
def submit(file: Path, conn: ServerOptions, receipt_path: Path | None, as_json: bool) -> None:
    """Submit a signed draft to the log.

    The draft comes from 'ledger ... --draft' or 'ledger statement draft', signed
    with 'ledger sign'. The receipt is verified and saved.

    \b
    Example:
      ledger submit call.draft --receipt call.tlog-proof
      ledger sign - --key a.key < call.draft | ledger submit -
    """
    record = read_draft(file)
    name = describe(file)
    if record.is_draft:
        raise InputError(
            f"{name} has {len(record.signatures)} of "
            f"{counted(record.required_signatures, 'signature')}; "
            "still to sign: " + "; ".join(missing_signers(record))
        )
    with session_for(conn, for_write=True) as session:
        if record.body.log != session.origin:
            raise InputError(
                f"{name} is for the log {record.body.log!r}, but {session.server} is the log "
                f"{session.origin!r}"
            )
        ordered = order_signatures(record, server_lookup(session.client))
        try:
            verify_signatures(ordered)
        except LedgerError as e:
            raise VerifyError(f"{name}: {e} [{e.code}]") from None
        saved = submit_record(session, ordered, receipt_path=receipt_path)
        extra = {"statement": ordered.record_id.hex()} if isinstance(record.body, Statement) else {}
        report(saved, as_json=as_json, origin=session.origin, extra=extra)


__all__ = ["endorse", "register", "sign_cmd", "submit", "withdraw"]
