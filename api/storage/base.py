"""The storage seams of the service: a log writer, a log reader, a projection reader.

There is one implementation, :class:`api.storage.sql.SqlStorage` (SQLModel over
SQLite or PostgreSQL); the seams are narrow so that what varies is visible, and the
conformance suite ``tests/storage_conformance.py`` runs against a storage factory
through them alone.

The log itself (entries, stored Merkle hashes, the published checkpoint) is the
source of truth. The projection (signatories, statements, endorsements, tallies) is
derived from the entries inside the same transaction that appends them, and
``SqlStorage.rebuild_projection`` rebuilds it from the entries alone.

:meth:`LogWriter.append_batch` is one transaction per batch, and signs nothing:

1. lock the log head (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: ``SELECT ... FOR
   UPDATE`` on the head row), so that exactly one writer, in any process, extends
   the log at a time;
2. for each record, in order: answer the existing entry if its record id is already
   in the log (or earlier in the batch); otherwise apply the semantic rules
   (``ledger.core.rules.evaluate``) against the projection as it stands *inside the
   transaction*, so that a record sees the effects of the earlier records of its
   batch; a rejected record gets its error and the others go on; an accepted one
   becomes entry ``size`` (``prev`` = the previous leaf hash, one ``time`` for the
   batch, never less than the previous entry's), its stored hashes and its
   projection effect are written;
3. compute the new root, replace the head (size, root, last leaf) by
   compare-and-swap (``UPDATE ... WHERE size = <old size>``), commit.

It returns the new size and root and one outcome per record (:class:`BatchOutcome`).
Signing and publishing the checkpoint is the next stage's, outside that lock
(``api.checkpoints.CheckpointPublisher``), which then calls
:meth:`LogWriter.replace_checkpoint`: a compare-and-swap that never goes back.
:meth:`LogReader.head` is the *published* checkpoint: what ``/checkpoint`` serves
and what proofs and receipts are built against.

Indices are assigned by this code, never by a SEQUENCE or an autoincrement (which
leave gaps); the record id is UNIQUE in the entries table, so deduplication is exact.

Every method may raise :class:`StorageError` (database unreachable, lock timeout);
the service answers it with 503.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ledger.core.errors import LedgerError
from ledger.core.records import SignedRecord
from ledger.core.rules import DEFAULT_MAX_AGE_S


class StorageError(Exception):
    """The database failed or refused (unreachable, lock timeout, inconsistent state)."""


class StorageUnavailableError(StorageError):
    """The database could not be reached or did not answer in time: retry later."""


class OriginMismatchError(StorageError):
    """The database holds the log of another origin."""


@dataclass(frozen=True, slots=True)
class TreeHead:
    """The committed tree: its size and root (signed or not yet)."""

    size: int
    root: bytes


@dataclass(frozen=True, slots=True)
class LogHead:
    """The published state of the log: a size, its root and the signed checkpoint."""

    size: int
    root: bytes
    checkpoint: bytes  # the signed note; b"" until a first checkpoint was published


@dataclass(frozen=True)
class StoredCheckpoint:
    """A checkpoint the log published, as kept in its history (one per size)."""

    size: int
    root: bytes
    checkpoint: bytes
    time_ms: int


@dataclass(frozen=True, slots=True)
class Logged:
    """What :meth:`LogWriter.append_batch` did with a record: it is at ``index``.

    ``existing``: an identical record (same record id) was already in the log, or
    earlier in the same batch; nothing was appended for it. For a record this batch
    appended, ``entry`` is its bytes and ``proof`` its inclusion proof in the tree
    the batch left (:attr:`BatchOutcome.size`); both None for an existing one.
    """

    index: int
    leaf_hash: bytes
    existing: bool
    entry: bytes | None = field(default=None, compare=False, repr=False)
    proof: tuple[bytes, ...] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Rejected:
    """A record that broke a rule at the point where it would have been sequenced.

    ``code`` is the error code of docs/spec.md (``already_endorsed``,
    ``unknown_statement``, ``entry_too_large``...), ``message`` the sentence,
    ``field``/``expected``/``found`` as in ``ledger.core.errors.LedgerError`` (already
    rendered as text: hex for hashes and keys).
    """

    code: str
    message: str
    field: str | None = None
    expected: str | None = None
    found: str | None = None


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def rejected(e: LedgerError) -> Rejected:
    """The Rejected result of a core error (its code, message, field, expected, found)."""
    return Rejected(e.code, e.message, e.field, _text(e.expected), _text(e.found))


@dataclass(frozen=True)
class BatchOutcome:
    """A committed batch: the tree it left (``size``, ``root``) and one result per record."""

    size: int
    root: bytes
    results: list[Logged | Rejected]


@dataclass(frozen=True, slots=True)
class Appended:
    """A sequenced record, as its submitter is answered: in the log at ``index``.

    ``published`` is the checkpoint published after its batch committed (its size
    includes ``index``): the receipt's checkpoint. ``entry`` and ``proof`` (the
    inclusion proof in the tree of ``published.size``) are given when the batch held
    them, so that the answer needs no further read; None otherwise (an existing
    entry, or a newer checkpoint published by another process).
    """

    index: int
    leaf_hash: bytes
    existing: bool
    published: LogHead
    entry: bytes | None = field(default=None, compare=False, repr=False)
    proof: tuple[bytes, ...] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class SignatoryView:
    signatory: str  # hex id
    name: str
    kind: str
    country: str | None
    domain: str | None
    index: int  # of its registration
    current_key: str  # base64
    active: bool
    keys: list[str]  # hex key hashes, oldest first


@dataclass(frozen=True)
class StatementView:
    statement: str  # hex id
    title: str
    text: str
    authors: list[str]  # hex signatory ids, in record order
    index: int
    signed_at: int
    tallies: dict[str, int] = field(default_factory=dict)  # every kind, active endorsements

    @property
    def total(self) -> int:
        return sum(self.tallies.values())


@dataclass(frozen=True)
class EndorsementView:
    signatory: str  # hex id
    name: str
    kind: str
    country: str | None
    domain: str | None
    statement: str  # hex id
    index: int  # of the endorse entry
    signed_at: int
    comment: str | None


@dataclass(frozen=True)
class Durability:
    """What the database says about durability, and what the operator should fix."""

    settings: dict[str, str]
    warnings: list[str]


class LogWriter(Protocol):
    """Extends the log; never signs. Thread-safe; several processes may share a log."""

    origin: str

    def init_log(self) -> TreeHead:
        """Claim an empty database for this origin (idempotent); the committed tree.

        Raises OriginMismatchError if the database belongs to another origin.
        """
        ...

    def append_batch(
        self,
        records: Sequence[SignedRecord],
        *,
        time_ms: int | None = None,
        max_age_s: int | None = DEFAULT_MAX_AGE_S,
    ) -> BatchOutcome:
        """Sequence ``records`` in ONE transaction (see the module docstring).

        The records must be complete and their signatures already verified
        (``ledger.core.records.verify_signatures``). ``time_ms`` defaults to the clock;
        the batch's entries get ``max(time_ms, time of the last entry)``. Returns
        only after the commit; on an exception nothing was appended.
        """
        ...

    def replace_checkpoint(
        self, size: int, root: bytes, checkpoint: bytes, *, time_ms: int | None = None
    ) -> LogHead:
        """Publish ``checkpoint`` (of the committed tree ``size``, ``root``) by
        compare-and-swap, unless a checkpoint of that size or larger is published
        already; record it in the history. Returns what is published after: this
        checkpoint or a larger one. Never goes back. Raises StorageError for a size
        beyond the committed tree, or another root at the committed size.
        """
        ...


class LogReader(Protocol):
    """Reads the log as published. Thread-safe."""

    origin: str

    def head(self) -> LogHead:
        """The published checkpoint (size, root, signed note)."""
        ...

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        """``ledger.core.merkle.HashReader`` over the committed tree; raises if one is missing."""
        ...

    def read_entries(self, start: int, end: int) -> list[bytes]:
        """Entries [start, end) as their canonical bytes; ``end`` is clipped to the size."""
        ...

    def index_of_leaf(self, leaf_hash: bytes) -> int | None: ...

    def index_of_record(self, record_id: bytes) -> int | None: ...

    def checkpoint_at(self, size: int) -> StoredCheckpoint | None:
        """The checkpoint the log published for exactly ``size``, if it published one."""
        ...

    def checkpoints(self, *, min_size: int = 0, limit: int = 1000) -> list[StoredCheckpoint]:
        """The checkpoint history, smallest size first, from ``min_size``."""
        ...


class ProjectionReader(Protocol):
    """The views the routes read (rebuildable from the entries; never a source of truth)."""

    def statements(self, *, offset: int = 0, limit: int = 100) -> list[StatementView]:
        """Statements in log order."""
        ...

    def statement(self, statement_id: bytes) -> StatementView | None: ...

    def endorsements(
        self,
        statement_id: bytes,
        *,
        kind: str | None = None,
        country: str | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> list[EndorsementView]:
        """Active endorsements of a statement, in log order of their endorse entries."""
        ...

    def signatory(self, key_hash: bytes) -> SignatoryView | None:
        """The signatory of any of its keys (its id is the hash of its first key)."""
        ...

    def search_signatories(self, query: str, *, limit: int = 50) -> list[SignatoryView]:
        """Signatories whose name contains ``query`` (case-insensitive) or whose domain
        is ``query`` or ends with ``.query``, in log order."""
        ...

    def signatory_counts(self) -> dict[str, int]:
        """Registered signatories by kind (every kind present, zeros included)."""
        ...


class ReadStorage(LogReader, ProjectionReader, Protocol):
    """What the routes read: the log and the projection."""


__all__ = [
    "Appended",
    "BatchOutcome",
    "Durability",
    "EndorsementView",
    "LogHead",
    "LogReader",
    "LogWriter",
    "Logged",
    "OriginMismatchError",
    "ProjectionReader",
    "ReadStorage",
    "Rejected",
    "SignatoryView",
    "StatementView",
    "StorageError",
    "StorageUnavailableError",
    "StoredCheckpoint",
    "TreeHead",
    "rejected",
]
