"""The storage interface of the service.

The routes and the sequencer see storage only through :class:`Storage`. There is one
implementation, :class:`api.storage.sql.SqlStorage` (SQLModel over SQLite or
PostgreSQL); the conformance suite ``tests/storage_conformance.py`` runs against
every backend.

The log itself (entries, stored Merkle hashes, checkpoints) is the source of truth.
The projection (signatories, statements, endorsements, tallies) is derived from the
entries inside the same transaction that appends them, and
:meth:`Storage.rebuild_projection` rebuilds it from the entries alone.

Sequencing (:meth:`Storage.append_batch`) is one transaction per batch:

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
3. compute the new root, sign a checkpoint with the log key, replace the head by
   compare-and-swap (``UPDATE ... WHERE size = <old size>``), record the checkpoint
   in the history, commit.

Nothing is answered before the commit. Indices are assigned by this code, never by
a SEQUENCE or an autoincrement (which leave gaps); the record id is UNIQUE in the
entries table, so deduplication is exact.

Every method may raise :class:`StorageError` (database unreachable, lock timeout);
the service answers it with 503.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ledger.core.merkle import HashReader, inclusion_proof
from ledger.core.note import NoteSigner
from ledger.core.records import SignedRecord
from ledger.core.rules import DEFAULT_MAX_AGE_S


class StorageError(Exception):
    """The database failed or refused (unreachable, lock timeout, inconsistent state)."""


class StorageUnavailableError(StorageError):
    """The database could not be reached or did not answer in time: retry later."""


class OriginMismatchError(StorageError):
    """The database holds the log of another origin."""


#: Signs checkpoints: the log key as a signed-note signer (``keys.signer.NoteSigner``,
#: from ``Signer.note_signer()``), whose ``name`` must be the log's origin.
CheckpointSigner = NoteSigner


@dataclass(frozen=True)
class LogHead:
    """The newest state of the log: its size, root and signed checkpoint."""

    size: int
    root: bytes
    checkpoint: bytes  # the signed note; b"" until the log is initialised (init_log)


@dataclass(frozen=True)
class StoredCheckpoint:
    """A checkpoint the log signed, as kept in its history (one per size)."""

    size: int
    root: bytes
    checkpoint: bytes
    time_ms: int


@dataclass(frozen=True)
class Appended:
    """A record that is in the log, at ``index``.

    ``existing`` is True when an identical record (same record id) was already in the
    log, or earlier in the same batch: nothing new was appended for it (HTTP 200,
    not 201). ``checkpoint`` is the signed checkpoint committed with the batch (of
    size ``tree_size``, which includes ``index``): the receipt's checkpoint.

    For a record appended by this batch, a storage may also give the ``entry``
    bytes and either its inclusion ``proof`` in the tree of ``tree_size``, or
    ``hashes``, an in-memory ``ledger.core.merkle.HashReader`` holding the stored hashes
    the batch computed or read (shared by the batch's results), enough for that
    proof; so that the answer needs no further read (:meth:`held_proof`). None when
    it does not (a duplicate, for one).
    """

    index: int
    leaf_hash: bytes
    existing: bool
    tree_size: int
    checkpoint: bytes
    entry: bytes | None = field(default=None, compare=False, repr=False)
    hashes: HashReader | None = field(default=None, compare=False, repr=False)
    proof: tuple[bytes, ...] | None = field(default=None, compare=False, repr=False)
    #: The HTTP answer's JSON bytes (``api.answers``), when the sequencing child
    #: rendered them for a new entry: the serving process sends them as they are.
    answer: bytes | None = field(default=None, compare=False, repr=False)

    def held_proof(self) -> list[bytes] | None:
        """The inclusion proof: ``proof`` if computed already, else from ``hashes``;
        None if they do not hold all it needs."""
        if self.proof is not None:
            return list(self.proof)
        if self.hashes is None:
            return None
        try:
            return inclusion_proof(self.index, self.tree_size, self.hashes)
        except KeyError:
            return None


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


class Storage(Protocol):
    """What the service needs from its database. All methods are thread-safe."""

    origin: str

    # --- the log ---------------------------------------------------------------------

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        """``ledger.core.merkle.HashReader`` over the committed tree; raises if one is missing."""
        ...

    def head(self) -> LogHead:
        """The committed head (size, root, signed checkpoint)."""
        ...

    def read_entries(self, start: int, end: int) -> list[bytes]:
        """Entries [start, end) as their canonical bytes; ``end`` is clipped to the size."""
        ...

    def index_of_leaf(self, leaf_hash: bytes) -> int | None: ...

    def index_of_record(self, record_id: bytes) -> int | None: ...

    def checkpoint_at(self, size: int) -> StoredCheckpoint | None:
        """The checkpoint the log signed for exactly ``size``, if it signed one."""
        ...

    def checkpoints(self, *, min_size: int = 0, limit: int = 1000) -> list[StoredCheckpoint]:
        """The checkpoint history, smallest size first, from ``min_size``."""
        ...

    def init_log(self, signer: CheckpointSigner, *, time_ms: int | None = None) -> LogHead:
        """Claim an empty database for this origin and sign its first checkpoint.

        Idempotent: an initialised log is returned unchanged. Raises
        OriginMismatchError if the database belongs to another origin.
        """
        ...

    def append_batch(
        self,
        records: Sequence[SignedRecord],
        *,
        signer: CheckpointSigner,
        time_ms: int | None = None,
        max_age_s: int | None = DEFAULT_MAX_AGE_S,
    ) -> list[Appended | Rejected]:
        """Sequence ``records`` in ONE transaction; one result per record, in order.

        The records must be complete and their signatures already verified
        (``ledger.core.records.verify_signatures``). ``time_ms`` defaults to the clock;
        the batch's entries get ``max(time_ms, time of the last entry)``. Returns
        only after the commit; on an exception nothing was appended.
        """
        ...

    # --- the projection (rebuildable from the entries; never a source of truth) -----

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

    def rebuild_projection(self) -> int:
        """Recompute the projection from the entries alone; return the entries replayed."""
        ...

    # --- operations ------------------------------------------------------------------

    def durability(self) -> Durability: ...

    def close(self) -> None: ...


__all__ = [
    "Appended",
    "CheckpointSigner",
    "Durability",
    "EndorsementView",
    "LogHead",
    "OriginMismatchError",
    "Rejected",
    "SignatoryView",
    "StatementView",
    "Storage",
    "StorageError",
    "StorageUnavailableError",
    "StoredCheckpoint",
]
