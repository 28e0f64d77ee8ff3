"""Steps that several commands share: sessions, drafts, ids, user text, input files.

``-`` in place of a file is standard input (a file read) or standard output (a file
written), as in minisign, age and cosign: :data:`INPUT_FILE` is the click type of
such an argument, :func:`read_input` reads one, :func:`write_new_file` and
:func:`replace_file` write one.
"""

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
#: In place of a file: standard input or output.
STDIO = "-"
#: An existing file to read, or ``-`` for standard input.
INPUT_FILE = click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path)
#: A file to write, or ``-`` for standard output.
OUTPUT_FILE = click.Path(dir_okay=False, allow_dash=True, path_type=Path)


def is_stdio(path: Path) -> bool:
    """Whether ``path`` is ``-``: standard input or output."""
    return str(path) == STDIO


def describe(path: Path) -> str:
    """``path`` as messages name it (``-`` is standard input or output)."""
    return "standard input" if is_stdio(path) else str(path)


def read_input(path: Path) -> bytes:
    """The bytes of an input file; ``-`` is standard input."""
    if is_stdio(path):
        return sys.stdin.buffer.read()
    try:
        return path.read_bytes()
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror or e}") from None


@contextlib.contextmanager
def session_for(conn: ServerOptions, *, for_write: bool) -> Iterator[Session]:
    session = open_session(conn, for_write=for_write)
    try:
        yield session
    finally:
        session.client.close()


@contextlib.contextmanager
def client_for(conn: ServerOptions) -> Iterator[LedgerClient]:
    """A client without the log key check (``ledger log --repin``, which replaces the pin)."""
    client = conn.client()
    try:
        yield client
    finally:
        client.close()


@contextlib.contextmanager
def reads_for(conn: ServerOptions) -> Iterator[LedgerClient]:
    """A client for projection reads (statements, tallies, signatories), after the log key
    check of a session (:func:`cli.session.open_session`): the server's key is pinned on
    first contact; a server whose key is not the pinned one gets the framed warning, since
    the tallies shown are then another log's; ``--log-key`` naming another key refuses."""
    with session_for(conn, for_write=False) as session:
        yield session.client


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


def _to_stdout(data: bytes) -> None:
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def write_new_file(path: Path, data: bytes, *, what: str) -> None:
    """Create ``path`` durably (:func:`ledger.durable.write_new`); never replace a file.
    ``-`` is standard output."""
    if is_stdio(path):
        _to_stdout(data)
        return
    try:
        write_new(path, data)
    except FileExistsError:
        raise InputError(
            f"{path} already exists; refusing to overwrite it with the {what}"
        ) from None
    except OSError as e:
        raise InputError(f"cannot write {path}: {e.strerror or e}") from None


def replace_file(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically and durably (a draft being signed). ``-`` is standard
    output."""
    if is_stdio(path):
        _to_stdout(data)
        return
    try:
        write_atomic(path, data)
    except OSError as e:
        raise InputError(f"cannot write {path}: {e.strerror or e}") from None


def write_draft(path: Path, record: SignedRecord) -> None:
    write_new_file(path, record.encode(), what="draft")
    where = "standard output" if is_stdio(path) else path
    name = "FILE" if is_stdio(path) else path
    note(
        f"draft written to {where} ({record.body.TYPE}, record id {record.record_id.hex()}).\n"
        f"Next: ledger sign {name} --key KEY   (by each signer, offline if need be)\n"
        f"then: ledger submit {name}"
    )


def read_draft(path: Path) -> SignedRecord:
    """A record or draft from a file, or from standard input (``-``)."""
    data = read_input(path)
    try:
        return parse_record(data, allow_draft=True)
    except LedgerError as e:
        raise InputError(f"{describe(path)} is not a record or draft: {e} [{e.code}]") from None


def user_text(value: str, what: str) -> str:
    """Free text from the command line in Unicode NFC, as records require."""
    fixed = unicodedata.normalize("NFC", value)
    if fixed != value:
        note(f"note: {what} was converted to Unicode NFC, as records require")
    return fixed


def read_text_file(path: Path) -> str:
    """A statement text: UTF-8, LF line endings (CRLF converted), NFC; ``-``: standard input."""
    raw = read_input(path)
    name = describe(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{name} is not UTF-8 text (byte {e.start})") from None
    if text.startswith("\ufeff"):
        text = text[1:]
        note(f"note: removed the byte-order mark at the start of {name}")
    if "\r" in text:
        text = text.replace("\r\n", "\n")
        if "\r" in text:
            raise InputError(f"{name} contains carriage returns (CR) outside CRLF line endings")
        note(f"note: converted the CRLF line endings of {name} to LF")
    return user_text(text, f"the text of {name}")


def confirm(question: str, *, yes: bool) -> None:
    """Ask on a terminal; elsewhere require ``--yes``."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise InputError(f"{question} Pass --yes to confirm (standard input is not a terminal)")
    if not click.confirm(question, default=False, err=True):
        raise click.Abort()


__all__ = [
    "INPUT_FILE",
    "OUTPUT_FILE",
    "STDIO",
    "DraftContext",
    "client_for",
    "confirm",
    "describe",
    "drafting",
    "is_stdio",
    "parse_id",
    "read_draft",
    "read_input",
    "read_text_file",
    "reads_for",
    "replace_file",
    "resolve_statement",
    "session_for",
    "user_text",
    "write_draft",
    "write_new_file",
]
