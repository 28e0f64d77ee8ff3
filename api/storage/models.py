"""The database schema (SQLModel tables), the same on SQLite and PostgreSQL.

The log (source of truth):

* ``log_head``: one row (id 1) with the log's origin, the committed tree's size and
  root, the last leaf hash (the next entry's ``prev``) and the last integration
  time. Every sequencing transaction locks it first and replaces it by
  compare-and-swap. It holds no signature: the log writer does not sign.
* ``published_checkpoint``: one row (id 1), the newest checkpoint published (size,
  root, signed note; size -1 until the first), replaced by compare-and-swap by the
  checkpoint publisher (``api.checkpoints``) after a batch committed, never going
  back.
* ``entries``: entry ``idx`` (assigned by the sequencer, never by a SEQUENCE or an
  autoincrement, which leave gaps on rollback), its canonical bytes, and its leaf
  hash and record id, both UNIQUE: deduplication is exact, by constraint.
* ``tree_hashes``: the stored Merkle hashes (``ledger.core.merkle``, stored hash index).
* ``checkpoints``: every checkpoint the log published, by size (one per size).

The projection (derived from the entries; ``rebuild_projection`` recomputes it):
``signatories``, ``signatory_keys``, ``statements``, ``statement_authors``,
``endorsements`` (one row per signatory and statement, with its active flag and the
last ``signed_at``; kind and country copied from the signatory for filtering) and
``statement_tallies`` (active endorsements by kind).

Alembic migrations in ``api/migrations`` create exactly this schema;
``tests/test_storage.py`` checks that they agree.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, Column, Index, Table, Text
from sqlmodel import Field, SQLModel

# Named constraints, so that a later migration can alter them by name on both databases.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "pk": "pk_%(table_name)s",
}
_NO_AUTOINCREMENT = {"autoincrement": False}


class LogHeadRow(SQLModel, table=True):
    __tablename__ = "log_head"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: int = Field(default=1, primary_key=True, sa_column_kwargs=_NO_AUTOINCREMENT)
    origin: str = Field(default="")  # "" until the log is initialised
    size: int = Field(default=0, sa_type=BigInteger)
    root: bytes
    last_leaf_hash: bytes
    last_time_ms: int = Field(default=0, sa_type=BigInteger)


class PublishedRow(SQLModel, table=True):
    __tablename__ = "published_checkpoint"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: int = Field(default=1, primary_key=True, sa_column_kwargs=_NO_AUTOINCREMENT)
    size: int = Field(default=-1, sa_type=BigInteger)  # -1: nothing published yet
    root: bytes
    checkpoint: bytes  # the signed note; b"" until the first
    time_ms: int = Field(default=0, sa_type=BigInteger)


class EntryRow(SQLModel, table=True):
    __tablename__ = "entries"

    idx: int = Field(primary_key=True, sa_type=BigInteger, sa_column_kwargs=_NO_AUTOINCREMENT)
    data: bytes
    leaf_hash: bytes = Field(unique=True)
    record_id: bytes = Field(unique=True)


class TreeHash(SQLModel, table=True):
    __tablename__ = "tree_hashes"

    id: int = Field(primary_key=True, sa_type=BigInteger, sa_column_kwargs=_NO_AUTOINCREMENT)
    hash: bytes


class CheckpointRow(SQLModel, table=True):
    __tablename__ = "checkpoints"

    size: int = Field(primary_key=True, sa_type=BigInteger, sa_column_kwargs=_NO_AUTOINCREMENT)
    root: bytes
    checkpoint: bytes
    time_ms: int = Field(sa_type=BigInteger)


class SignatoryRow(SQLModel, table=True):
    __tablename__ = "signatories"

    id: bytes = Field(primary_key=True)
    name: str
    name_folded: str  # casefolded name, for search
    kind: str = Field(index=True)
    country: str | None = None
    domain: str | None = Field(default=None, index=True)
    idx: int = Field(sa_type=BigInteger, unique=True)
    current_key: bytes
    active: bool


class SignatoryKeyRow(SQLModel, table=True):
    __tablename__ = "signatory_keys"

    key_hash: bytes = Field(primary_key=True)
    signatory: bytes = Field(index=True)
    public_key: bytes
    revoked: bool
    idx: int = Field(sa_type=BigInteger)  # the entry that brought the key in


class StatementRow(SQLModel, table=True):
    __tablename__ = "statements"

    id: bytes = Field(primary_key=True)
    title: str
    text: str = Field(sa_column=Column(Text, nullable=False))
    idx: int = Field(sa_type=BigInteger, unique=True)
    signed_at: int = Field(sa_type=BigInteger)


class StatementAuthorRow(SQLModel, table=True):
    __tablename__ = "statement_authors"

    statement: bytes = Field(primary_key=True)
    position: int = Field(primary_key=True, sa_column_kwargs=_NO_AUTOINCREMENT)
    signatory: bytes = Field(index=True)


class EndorsementRow(SQLModel, table=True):
    __tablename__ = "endorsements"
    __table_args__ = (
        # Listings: a statement's active endorsements in log order, by kind or country.
        Index(None, "statement", "active", "idx"),
        Index(None, "statement", "kind", "active", "idx"),
        Index(None, "statement", "country", "active", "idx"),
    )

    signatory: bytes = Field(primary_key=True)
    statement: bytes = Field(primary_key=True)
    active: bool
    last_signed_at: int = Field(sa_type=BigInteger)
    idx: int = Field(sa_type=BigInteger)  # the latest endorse or withdraw entry
    kind: str
    country: str | None = None
    comment: str | None = None


class StatementTallyRow(SQLModel, table=True):
    __tablename__ = "statement_tallies"

    statement: bytes = Field(primary_key=True)
    kind: str = Field(primary_key=True)
    count: int = Field(default=0, sa_type=BigInteger)


metadata = SQLModel.metadata

# The Core tables, which the storage queries directly (the ORM adds nothing there).
HEAD: Table = LogHeadRow.__table__  # type: ignore[attr-defined]
PUBLISHED: Table = PublishedRow.__table__  # type: ignore[attr-defined]
ENTRIES: Table = EntryRow.__table__  # type: ignore[attr-defined]
HASHES: Table = TreeHash.__table__  # type: ignore[attr-defined]
CHECKPOINTS: Table = CheckpointRow.__table__  # type: ignore[attr-defined]
SIGNATORIES: Table = SignatoryRow.__table__  # type: ignore[attr-defined]
KEYS: Table = SignatoryKeyRow.__table__  # type: ignore[attr-defined]
STATEMENTS: Table = StatementRow.__table__  # type: ignore[attr-defined]
AUTHORS: Table = StatementAuthorRow.__table__  # type: ignore[attr-defined]
PAIRS: Table = EndorsementRow.__table__  # type: ignore[attr-defined]
TALLIES: Table = StatementTallyRow.__table__  # type: ignore[attr-defined]
LOG_TABLES = ("log_head", "published_checkpoint", "entries", "tree_hashes", "checkpoints")
PROJECTION_TABLES = (
    "signatories",
    "signatory_keys",
    "statements",
    "statement_authors",
    "endorsements",
    "statement_tallies",
)

__all__ = [
    "AUTHORS",
    "CHECKPOINTS",
    "ENTRIES",
    "HASHES",
    "HEAD",
    "KEYS",
    "LOG_TABLES",
    "PAIRS",
    "PROJECTION_TABLES",
    "PUBLISHED",
    "SIGNATORIES",
    "STATEMENTS",
    "TALLIES",
    "CheckpointRow",
    "EndorsementRow",
    "EntryRow",
    "LogHeadRow",
    "PublishedRow",
    "SignatoryKeyRow",
    "SignatoryRow",
    "StatementAuthorRow",
    "StatementRow",
    "StatementTallyRow",
    "TreeHash",
    "metadata",
]
