"""The initial schema: the log, its stored hashes and checkpoints, and the projection.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here rather than imported, so that this script means the same forever.
EMPTY_ROOT = hashlib.sha256(b"").digest()
ZERO_HASH = bytes(32)


def upgrade() -> None:
    head = op.create_table(
        "log_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("origin", sa.String(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("root", sa.LargeBinary(), nullable=False),
        sa.Column("checkpoint", sa.LargeBinary(), nullable=False),
        sa.Column("last_leaf_hash", sa.LargeBinary(), nullable=False),
        sa.Column("last_time_ms", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_log_head_single_row"),
        sa.PrimaryKeyConstraint("id", name="pk_log_head"),
    )
    op.create_table(
        "entries",
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(), nullable=False),
        sa.Column("record_id", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("idx", name="pk_entries"),
        sa.UniqueConstraint("leaf_hash", name="uq_entries_leaf_hash"),
        sa.UniqueConstraint("record_id", name="uq_entries_record_id"),
    )
    op.create_table(
        "tree_hashes",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tree_hashes"),
    )
    op.create_table(
        "checkpoints",
        sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root", sa.LargeBinary(), nullable=False),
        sa.Column("checkpoint", sa.LargeBinary(), nullable=False),
        sa.Column("time_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("size", name="pk_checkpoints"),
    )
    op.create_table(
        "signatories",
        sa.Column("id", sa.LargeBinary(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("name_folded", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("country", sa.String(), nullable=True),
        sa.Column("domain", sa.String(), nullable=True),
        sa.Column("idx", sa.BigInteger(), nullable=False),
        sa.Column("current_key", sa.LargeBinary(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_signatories"),
        sa.UniqueConstraint("idx", name="uq_signatories_idx"),
    )
    op.create_index("ix_signatories_kind", "signatories", ["kind"])
    op.create_index("ix_signatories_domain", "signatories", ["domain"])
    op.create_table(
        "signatory_keys",
        sa.Column("key_hash", sa.LargeBinary(), nullable=False),
        sa.Column("signatory", sa.LargeBinary(), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.Column("idx", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key_hash", name="pk_signatory_keys"),
    )
    op.create_index("ix_signatory_keys_signatory", "signatory_keys", ["signatory"])
    op.create_table(
        "statements",
        sa.Column("id", sa.LargeBinary(), nullable=False),
        sa.Column("title", sa.String(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("idx", sa.BigInteger(), nullable=False),
        sa.Column("signed_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_statements"),
        sa.UniqueConstraint("idx", name="uq_statements_idx"),
    )
    op.create_table(
        "statement_authors",
        sa.Column("statement", sa.LargeBinary(), nullable=False),
        sa.Column("position", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("signatory", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("statement", "position", name="pk_statement_authors"),
    )
    op.create_index("ix_statement_authors_signatory", "statement_authors", ["signatory"])
    op.create_table(
        "endorsements",
        sa.Column("signatory", sa.LargeBinary(), nullable=False),
        sa.Column("statement", sa.LargeBinary(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("last_signed_at", sa.BigInteger(), nullable=False),
        sa.Column("idx", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("country", sa.String(), nullable=True),
        sa.Column("comment", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("signatory", "statement", name="pk_endorsements"),
    )
    op.create_index(
        "ix_endorsements_statement_active_idx", "endorsements", ["statement", "active", "idx"]
    )
    op.create_index(
        "ix_endorsements_statement_kind_active_idx",
        "endorsements",
        ["statement", "kind", "active", "idx"],
    )
    op.create_index(
        "ix_endorsements_statement_country_active_idx",
        "endorsements",
        ["statement", "country", "active", "idx"],
    )
    op.create_table(
        "statement_tallies",
        sa.Column("statement", sa.LargeBinary(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("statement", "kind", name="pk_statement_tallies"),
    )
    # The empty log. Its origin and first checkpoint are set when the service starts.
    op.bulk_insert(
        head,
        [
            {
                "id": 1,
                "origin": "",
                "size": 0,
                "root": EMPTY_ROOT,
                "checkpoint": b"",
                "last_leaf_hash": ZERO_HASH,
                "last_time_ms": 0,
            }
        ],
    )


def downgrade() -> None:
    for table in (
        "statement_tallies",
        "endorsements",
        "statement_authors",
        "statements",
        "signatory_keys",
        "signatories",
        "checkpoints",
        "tree_hashes",
        "entries",
        "log_head",
    ):
        op.drop_table(table)
