"""The log itself: ``ledger log`` (what it is, which key is pinned) and ``ledger receipt``."""

from __future__ import annotations

import base64
from pathlib import Path

import click

from cli.config import Pins, read_vkey_option
from cli.errors import InputError, UnreachableError, VerifyError
from cli.flows import client_for, session_for
from cli.options import json_option, receipt_option, server_options
from cli.output import counted, emit_json, note
from cli.receipts import check_receipt, default_receipt_path, save_receipt
from cli.session import ServerOptions
from cli.submit import report
from ledger.core.encoding import parse_uint
from ledger.core.errors import LedgerError


@click.command("log")
@click.option(
    "--repin",
    is_flag=True,
    help="Trust the key the server shows now (after checking it out of band), or the one "
    "given with --log-key, in place of the pinned one.",
)
@server_options
@json_option
def log_cmd(repin: bool, conn: ServerOptions, as_json: bool) -> None:
    """Show the log and the log key pinned for it.

    Origin, size, root and verifier key, and the key pinned for this server.

    \b
    Example:
      ledger log
      ledger log --server https://ledger.example.org --json
      ledger log --repin --log-key 'ledger.example.org/paris-call+862f1e68+AWzr...'
    """
    pins = Pins()
    if repin:
        with client_for(conn) as client:
            info = client.log_info()
            server_vkey = str(info["vkey"])
            if conn.log_key is not None and read_vkey_option(conn.log_key) != server_vkey:
                raise VerifyError(
                    f"the server shows the log key {server_vkey}, not the one given with "
                    "--log-key; not pinned"
                )
            old = pins.get(client.server)
            path = pins.save(client.server, server_vkey)
        note(
            f"pinned {server_vkey}\n  for {client.server} in {path}"
            + (f"\n  (was {old})" if old and old != server_vkey else "")
        )
    with session_for(conn, for_write=False) as session:
        info = session.info
        doc = {
            "server": session.server,
            "origin": session.origin,
            "size": info.get("size"),
            "root": info.get("root"),
            "vkey": info.get("vkey"),
            "pinned_vkey": session.vkey,
            "pinned_file": str(pins.path(session.server)),
            "key_changed": session.key_changed,
            "checkpoint": info.get("checkpoint"),
        }
    if as_json:
        emit_json(doc)
        return
    click.echo(f"server:  {doc['server']}")
    click.echo(f"origin:  {doc['origin']}")
    click.echo(f"size:    {counted(int(doc['size'] or 0), 'entry', 'entries')}")
    click.echo(f"root:    {doc['root']}")
    click.echo(f"vkey:    {doc['vkey']}")
    state = "CHANGED: does not match the server's" if session.key_changed else "matches"
    click.echo(f"pinned:  {doc['pinned_file']} ({state})")


@click.command("receipt")
@click.argument("entry", metavar="INDEX|LEAF_HASH")
@server_options
@receipt_option
@json_option
def receipt_cmd(entry: str, conn: ServerOptions, receipt_path: Path | None, as_json: bool) -> None:
    """Fetch, verify and save the receipt of an entry.

    The entry is saved beside it.

    The receipt proves the entry against the log's newest checkpoint, checked with
    the pinned log key.

    \b
    Example:
      ledger receipt 17
      ledger receipt d8ba1fa4e084e0badeaf9d3c635fea1b8115fe876f341a94a7670d5e627ea284
      ledger-verify receipt entry-17.tlog-proof --entry entry-17.txt --log-key VKEY
    """
    ref = entry.strip().lower()
    if len(ref) != 64:
        try:
            parse_uint(ref, field="index")
        except LedgerError:
            raise InputError(
                f"{entry!r} is neither an entry index nor a leaf hash (64 hex digits)"
            ) from None
    with session_for(conn, for_write=False) as session:
        receipt = session.client.receipt(ref)
        doc = session.client.entry(ref)
        try:
            index = int(doc["index"])
            entry_bytes = base64.b64decode(str(doc["entry"]), validate=True)
        except (KeyError, TypeError, ValueError):
            raise UnreachableError("the server's entry answer lacks index or entry bytes") from None
        result = check_receipt(
            session.trust,
            receipt,
            entry_bytes,
            index=index,
            leaf_hash=ref if len(ref) == 64 else None,
        )
        path = receipt_path or default_receipt_path(index)
        saved = save_receipt(path, receipt, entry_bytes, result)
        report(
            saved,
            as_json=as_json,
            origin=session.origin,
            headline=f"entry {saved.index}: {saved.record_type} record in {session.origin}",
        )


__all__ = ["log_cmd", "receipt_cmd"]
