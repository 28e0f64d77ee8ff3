"""Steps that several commands share: sessions, drafts, ids, user text."""

from __future__ import annotations

import contextlib
import sys
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click

from cli.client import LedgerClient
from cli.errors import InputError, NotFoundError
from cli.output import note
from cli.session import ServerOptions, Session, open_session
from ledger.core.errors import LedgerError
from ledger.core.records import SignedRecord, parse_record
from ledger.durable import write_atomic, write_new

_HEX = frozenset("0123456789abcdef")
MIN_PREFIX = 6


@contextlib.contextmanager
def session_for(conn: ServerOptions, *, for_write: bool) -> Iterator[Session]:
    session = open_session(conn, for_write=for_write)
    try:
        yield session
    finally:
        session.client.close()


@contextlib.contextmanager
def client_for(conn: ServerOptions) -> Iterator[LedgerClient]:
    """A client for projection reads (statements, signatories): nothing to verify there."""
    client = conn.client()
    try:
        yield client
    finally:
        client.close()


@dataclass
class DraftContext:
    """Where a draft is made: the log's origin, and a client if online."""

    origin: str
    client: LedgerClient | None


@contextlib.contextmanager
def drafting(conn: ServerOptions, origin: str | None) -> Iterator[DraftContext]:
    """Offline with ``--origin``; otherwise the origin comes from the server."""
    if origin is not None:
        yield DraftContext(origin, None)
        return
    with session_for(conn, for_write=False) as session:
        yield DraftContext(session.origin, session.client)


def parse_id(text: str, what: str) -> bytes:
    t = text.strip().lower()
    if len(t) != 64 or not set(t) <= _HEX:
        raise InputError(f"{what} {text!r} is not 64 hex digits")
    return bytes.fromhex(t)


def resolve_statement(client: LedgerClient | None, text: str) -> bytes:
    """A statement id from its 64 hex digits, or (online) a unique prefix of them."""
    t = text.strip().lower()
    if len(t) == 64:
        return parse_id(t, "statement id")
    if not (MIN_PREFIX <= len(t) < 64 and set(t) <= _HEX):
        raise InputError(
            f"statement {text!r} is not a statement id (64 hex digits, or at least "
            f"{MIN_PREFIX} of them online)"
        )
    if client is None:
        raise InputError("offline, give the statement's full id (64 hex digits)")
    matches = [s["statement"] for s in client.all_statements() if s["statement"].startswith(t)]
    if not matches:
        raise NotFoundError(f"no statement id starts with {t}")
    if len(matches) > 1:
        raise InputError(f"{t} is the start of {len(matches)} statement ids; give more digits")
    return bytes.fromhex(matches[0])


def write_new_file(path: Path, data: bytes, *, what: str) -> None:
    """Create ``path`` durably (:func:`ledger.durable.write_new`); never replace a file."""
    try:
        write_new(path, data)
    except FileExistsError:
        raise InputError(
            f"{path} already exists; refusing to overwrite it with the {what}"
        ) from None
    except OSError as e:
        raise InputError(f"cannot write {path}: {e.strerror or e}") from None


def replace_file(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically and durably (a draft being signed)."""
    try:
        write_atomic(path, data)
    except OSError as e:
        raise InputError(f"cannot write {path}: {e.strerror or e}") from None


def write_draft(path: Path, record: SignedRecord) -> None:
    write_new_file(path, record.encode(), what="draft")
    note(
        f"draft written to {path} ({record.body.TYPE}, record id {record.record_id.hex()}).\n"
        f"Next: ledger sign {path} --key KEY   (by each signer, offline if need be)\n"
        f"then: ledger submit {path}"
    )


def read_draft(path: Path) -> SignedRecord:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        return parse_record(data, allow_draft=True)
    except LedgerError as e:
        raise InputError(f"{path} is not a record or draft: {e} [{e.code}]") from None


def user_text(value: str, what: str) -> str:
    """Free text from the command line in Unicode NFC, as records require."""
    fixed = unicodedata.normalize("NFC", value)
    if fixed != value:
        note(f"note: {what} was converted to Unicode NFC, as records require")
    return fixed


def read_text_file(path: Path) -> str:
    """A statement text: UTF-8, LF line endings (CRLF converted), NFC."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{path} is not UTF-8 text (byte {e.start})") from None
    if text.startswith("\ufeff"):
        text = text[1:]
        note(f"note: removed the byte-order mark at the start of {path}")
    if "\r" in text:
        text = text.replace("\r\n", "\n")
        if "\r" in text:
            raise InputError(f"{path} contains carriage returns (CR) outside CRLF line endings")
        note(f"note: converted the CRLF line endings of {path} to LF")
    return user_text(text, f"the text of {path}")


def confirm(question: str, *, yes: bool) -> None:
    """Ask on a terminal; elsewhere require ``--yes``."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise InputError(f"{question} Pass --yes to confirm (standard input is not a terminal)")
    if not click.confirm(question, default=False, err=True):
        raise click.Abort()


__all__ = [
    "DraftContext",
    "client_for",
    "confirm",
    "drafting",
    "parse_id",
    "read_draft",
    "read_text_file",
    "replace_file",
    "resolve_statement",
    "session_for",
    "user_text",
    "write_draft",
    "write_new_file",
]
