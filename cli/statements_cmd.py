"""Statements and signatories: ``ledger statement publish|draft|show``, ``ledger
statements``, ``ledger signatory show|search``.

The reads show the service's projection of the log (docs/spec.md, "Tallies"): what
the server says. To check the tallies yourself, verify the log with ``ledger-verify``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.text import Text

from cli.errors import InputError, KeyProblemError, NotFoundError
from cli.flows import (
    INPUT_FILE,
    OUTPUT_FILE,
    drafting,
    is_stdio,
    read_text_file,
    reads_for,
    resolve_statement,
    session_for,
    user_text,
    write_draft,
)
from cli.keyio import is_hex_id, load_signer, read_public_key
from cli.options import (
    OrderedGroup,
    json_option,
    passphrase_option,
    receipt_option,
    server_options,
    signed_at_option,
)
from cli.output import emit_json, out, table
from cli.session import ServerOptions
from cli.submit import draft_of, now, report, sign, signatory_of, submit_record
from ledger.core.ed25519 import key_hash
from ledger.core.errors import LedgerError
from ledger.core.records import SignedRecord, Statement
from ledger.core.state import KINDS


@click.group("statement", cls=OrderedGroup)
def statement_group() -> None:
    """Publish, draft and show statements.

    \b
    Example:
      ledger statement publish --title "Call for ..." --text-file call.txt \\
          --key ministry.key --key ngo.key
      ledger statement show 250955a4fe09
    """


def _statement_record(
    origin: str, signed_at: int, title: str, authors: tuple[bytes, ...], text: str
) -> SignedRecord:
    if len(set(authors)) != len(authors):
        raise InputError("the same signatory is listed twice as an author")
    try:
        return draft_of(Statement(origin, signed_at, title, authors, text))
    except LedgerError as e:
        raise InputError(f"invalid statement: {e} [{e.code}]") from None


@statement_group.command("publish")
@click.option("--title", required=True, help="The title, one line (at most 200 bytes).")
@click.option(
    "--text-file",
    required=True,
    type=INPUT_FILE,
    help="The statement text, UTF-8 (- reads standard input).",
)
@click.option(
    "--key",
    "keys",
    multiple=True,
    required=True,
    metavar="KEY",
    help="An author's key file; repeat for each author, in the order they are listed.",
)
@passphrase_option
@server_options
@receipt_option
@signed_at_option
@json_option
def publish(
    *,
    title: str,
    text_file: Path,
    keys: tuple[str, ...],
    passphrase_file: Path | None,
    conn: ServerOptions,
    receipt_path: Path | None,
    signed_at: int | None,
    as_json: bool,
) -> None:
    """Publish a statement signed by all its authors.

    All the authors' keys must be at hand.

    When an author's key is elsewhere (an air-gapped machine), use 'ledger
    statement draft', 'ledger sign' and 'ledger submit' instead.

    \b
    Example:
      ledger statement publish --title "Call for Trust and Security in Cyberspace" \\
          --text-file statement.txt --key state.key --key ngo.key
    """
    title = user_text(title, "--title")
    text = read_text_file(text_file)
    for k in keys:
        if not Path(k).exists():
            raise KeyProblemError(f"{k} does not exist")
    with session_for(conn, for_write=True) as session:
        signers = [load_signer(Path(k), passphrase_file) for k in keys]
        authors = tuple(signatory_of(session.client, s.public_key) for s in signers)
        record = _statement_record(session.origin, signed_at or now(), title, authors, text)
        for s in signers:
            record = sign(record, s)
        saved = submit_record(session, record, receipt_path=receipt_path)
        report(
            saved,
            as_json=as_json,
            origin=session.origin,
            extra={"statement": record.record_id.hex()},
        )


def _author_id(spec: str, client: Any, passphrase_file: Path | None) -> bytes:
    if is_hex_id(spec):
        return bytes.fromhex(spec)
    return signatory_of(client, read_public_key(spec, passphrase_file))


@statement_group.command("draft")
@click.option("--title", required=True, help="The title, one line (at most 200 bytes).")
@click.option(
    "--text-file",
    required=True,
    type=INPUT_FILE,
    help="The statement text, UTF-8 (- reads standard input).",
)
@click.option(
    "--author",
    "authors",
    multiple=True,
    required=True,
    metavar="ID|PUBKEY",
    help="An author: signatory id (64 hex digits), .pub file, key file or base64 key. "
    "Repeat for each author, in order (1 to 16).",
)
@click.option(
    "--out",
    required=True,
    type=OUTPUT_FILE,
    help="The draft file to write (- writes standard output).",
)
@click.option(
    "--origin",
    default=None,
    metavar="ORIGIN",
    help="The log's origin, to draft without contacting the server.",
)
@passphrase_option
@server_options
@signed_at_option
def draft(
    *,
    title: str,
    text_file: Path,
    authors: tuple[str, ...],
    out: Path,
    origin: str | None,
    passphrase_file: Path | None,
    conn: ServerOptions,
    signed_at: int | None,
) -> None:
    """Write a statement draft for its authors to sign.

    Each author then adds a signature with 'ledger sign', on any machine.

    The record's signed_at is now: the authors then have the log's age limit (30
    days by default) to collect their signatures and submit.

    \b
    Example:
      ledger statement draft --title "Call for Trust and Security in Cyberspace" \\
          --text-file statement.txt --author state.key.pub --author ngo.key.pub \\
          --out call.draft
    """
    title = user_text(title, "--title")
    text = read_text_file(text_file)
    with drafting(conn, origin) as ctx:
        ids = tuple(_author_id(a, ctx.client, passphrase_file) for a in authors)
        record = _statement_record(ctx.origin, signed_at or now(), title, ids, text)
        write_draft(out, record)
    # With --out -, the draft is standard output: the id goes with the notes.
    click.echo(f"statement id: {record.record_id.hex()}", err=is_stdio(out))


# --- reads ----------------------------------------------------------------------------


def _kind_cells(by_kind: dict[str, int]) -> list[str]:
    return [str(by_kind.get(k, 0)) for k in KINDS]


@statement_group.command("show")
@click.argument("statement_id", metavar="ID")
@click.option(
    "--endorsements", is_flag=True, help="Also list the active endorsements (signatories)."
)
@click.option("--kind", type=click.Choice(KINDS), default=None, help="With --endorsements.")
@click.option("--country", default=None, metavar="CC", help="With --endorsements.")
@server_options
@json_option
def show(
    *,
    statement_id: str,
    endorsements: bool,
    kind: str | None,
    country: str | None,
    conn: ServerOptions,
    as_json: bool,
) -> None:
    """Show a statement: text, authors, tallies.

    The tallies count active endorsements by kind of signatory.

    ID is the statement id (64 hex digits, or a unique prefix of at least 6).

    \b
    Example:
      ledger statement show 250955a4fe09
      ledger statement show 250955a4fe09 --endorsements --kind state --json
    """
    with reads_for(conn) as client:
        sid = resolve_statement(client, statement_id).hex()
        doc = client.statement(sid)
        items: list[dict[str, Any]] = []
        if endorsements:
            offset: int | None = 0
            while offset is not None:
                page = client.endorsements(
                    sid, kind=kind, country=country, offset=offset, limit=1000
                )
                items.extend(page.get("items", []))
                offset = page.get("next_offset")
    if as_json:
        emit_json({**doc, "endorsements": items} if endorsements else doc)
        return
    console = out()
    tally = doc.get("tally", {})
    console.print(Text(str(doc.get("title", "")), style="bold"))
    console.print(f"statement {doc.get('statement')} (entry {doc.get('index')})")
    console.print("authors:")
    for a in doc.get("author_details", []):
        console.print(
            f"  {a.get('name') or '(unknown)'} ({a.get('kind') or '?'})  {a.get('signatory')}"
        )
    grid = table("endorsements", *KINDS)
    grid.add_row(str(tally.get("total", 0)), *_kind_cells(tally.get("by_kind", {})))
    console.print(grid)
    console.print()
    console.print(
        Text(str(doc.get("text", ""))), end="" if str(doc.get("text", "")).endswith("\n") else "\n"
    )
    if endorsements:
        console.print()
        t = table("index", "signatory", "name", "kind", "country", "comment")
        for e in items:
            t.add_row(
                str(e.get("index")),
                str(e.get("signatory", ""))[:16],
                Text(str(e.get("name", ""))),
                str(e.get("kind", "")),
                str(e.get("country") or ""),
                Text(str(e.get("comment") or "")),
            )
        console.print(t)


@click.command("statements")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Show at most N.")
@server_options
@json_option
def statements(limit: int | None, conn: ServerOptions, as_json: bool) -> None:
    """List statements with their tallies.

    Each statement with its tally of active endorsements, by kind of signatory.

    \b
    Example:
      ledger statements
      ledger statements --json | jq '.items[].tally.total'
    """
    with reads_for(conn) as client:
        items: list[dict[str, Any]] = []
        for s in client.all_statements():
            items.append(s)
            if limit is not None and len(items) >= limit:
                break
    if as_json:
        emit_json({"items": items})
        return
    if not items:
        click.echo("no statements yet")
        return
    grid = table("index", "statement", "title", "total", *KINDS)
    for s in items:
        tally = s.get("tally", {})
        grid.add_row(
            str(s.get("index")),
            str(s.get("statement", ""))[:16],
            Text(str(s.get("title", ""))),
            str(tally.get("total", 0)),
            *_kind_cells(tally.get("by_kind", {})),
        )
    out().print(grid)


# --- signatories --------------------------------------------------------------------


@click.group("signatory", cls=OrderedGroup)
def signatory_group() -> None:
    """Look up signatories.

    \b
    Example:
      ledger signatory show 343cfa0d397aea2cbdba93e2bf05e834632c59da0001ae63df4259b34d979e03
      ledger signatory search example.org
    """


def _print_signatory(doc: dict[str, Any]) -> None:
    console = out()
    console.print(Text(str(doc.get("name", "")), style="bold"))
    rows = [
        ("signatory id", doc.get("signatory")),
        ("kind", doc.get("kind")),
        ("country", doc.get("country") or "-"),
        ("domain", doc.get("domain") or "-"),
        ("registered", f"entry {doc.get('index')}"),
        ("current key", doc.get("current_key")),
        ("active", "yes" if doc.get("active") else "no (its current key was revoked)"),
        ("key hashes", ", ".join(str(k) for k in doc.get("keys", []))),
    ]
    for label, value in rows:
        console.print(Text(f"  {label + ':':<13} {value}"))


@signatory_group.command("show")
@click.argument("key", metavar="KEY_HASH|KEY")
@server_options
@json_option
def signatory_show(key: str, conn: ServerOptions, as_json: bool) -> None:
    """Show a signatory by the hash of any of its keys.

    A signatory's id is the hash of its first key.

    KEY_HASH may also be a key file, .pub file or base64 key.

    \b
    Example:
      ledger signatory show 343cfa0d397aea2cbdba93e2bf05e834632c59da0001ae63df4259b34d979e03
      ledger signatory show alice.key.pub --json
    """
    khash = key.lower() if is_hex_id(key.lower()) else key_hash(read_public_key(key)).hex()
    with reads_for(conn) as client:
        doc = client.signatory(khash)
    if doc is None:
        raise NotFoundError(f"no signatory has a key with hash {khash}")
    if as_json:
        emit_json(doc)
        return
    _print_signatory(doc)


@signatory_group.command("search")
@click.argument("query")
@click.option("--limit", type=click.IntRange(1, 200), default=50, show_default=True)
@server_options
@json_option
def signatory_search(query: str, limit: int, conn: ServerOptions, as_json: bool) -> None:
    """Search signatories by name or domain.

    Finds those whose name contains QUERY, or whose domain is QUERY or under it.

    \b
    Example:
      ledger signatory search ministry
      ledger signatory search example.org --json
    """
    with reads_for(conn) as client:
        doc = client.search_signatories(query, limit=limit)
    if as_json:
        emit_json(doc)
        return
    items = doc.get("items", [])
    if not items:
        click.echo(f"no signatory matches {query!r}")
        return
    grid = table("signatory", "name", "kind", "country", "domain", "active")
    for s in items:
        grid.add_row(
            str(s.get("signatory", "")),
            Text(str(s.get("name", ""))),
            str(s.get("kind", "")),
            str(s.get("country") or ""),
            str(s.get("domain") or ""),
            "yes" if s.get("active") else "no",
        )
    out().print(grid)


__all__ = ["signatory_group", "statement_group", "statements"]
