"""The published checkpoint leaves the head row: the log writer no longer signs.

``log_head`` keeps the committed tree (size, root, last leaf, last time); the signed
checkpoint moves to ``published_checkpoint`` (one row), which the checkpoint
publisher (``api.checkpoints``) replaces by compare-and-swap after each commit,
outside the head lock. A database of revision 0001 keeps its checkpoint: it becomes
the published one (it was signed for the head's own size and root).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EMPTY_ROOT = hashlib.sha256(b"").digest()


def upgrade() -> None:
    published = op.create_table(
        "published_checkpoint",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("root", sa.LargeBinary(), nullable=False),
        sa.Column("checkpoint", sa.LargeBinary(), nullable=False),
        sa.Column("time_ms", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_published_checkpoint_single_row"),
        sa.PrimaryKeyConstraint("id", name="pk_published_checkpoint"),
    )
    conn = op.get_bind()
    row = conn.execute(
        sa.text("SELECT size, root, checkpoint, last_time_ms FROM log_head WHERE id = 1")
    ).one_or_none()
    if row is not None and bytes(row.checkpoint):
        first = {
            "id": 1,
            "size": row.size,
            "root": bytes(row.root),
            "checkpoint": bytes(row.checkpoint),
            "time_ms": row.last_time_ms,
        }
    else:
        first = {"id": 1, "size": -1, "root": EMPTY_ROOT, "checkpoint": b"", "time_ms": 0}
    op.bulk_insert(published, [first])
    with op.batch_alter_table("log_head") as batch:
        batch.drop_column("checkpoint")


def downgrade() -> None:
    with op.batch_alter_table("log_head") as batch:
        batch.add_column(sa.Column("checkpoint", sa.LargeBinary(), nullable=True))
    conn = op.get_bind()
    row = conn.execute(
        sa.text("SELECT size, checkpoint FROM published_checkpoint WHERE id = 1")
    ).one_or_none()
    if row is not None and row.size >= 0:
        conn.execute(
            sa.text("UPDATE log_head SET checkpoint = :c WHERE id = 1 AND size = :s"),
            {"c": bytes(row.checkpoint), "s": row.size},
        )
    op.drop_table("published_checkpoint")
