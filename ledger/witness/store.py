"""The witness's memory: per origin, the latest tree it cosigned; and the refusals it kept.

One SQLite file (WAL journal, ``synchronous=FULL``: a commit is on disk when it
returns), two tables::

    witnessed(origin TEXT PRIMARY KEY, size INTEGER, root BLOB, checkpoint BLOB, updated REAL)
    refusals(id INTEGER PRIMARY KEY, origin TEXT, at REAL, status INTEGER, code TEXT,
             detail TEXT, request BLOB, evidence BLOB)

:meth:`WitnessStore.advance` is the check-and-persist of C2SP tlog-witness (the
rollback race): under the store's write lock (threads of this process queue there:
SQLite has one writer at a time anyway, and its busy handler would make them sleep)
it opens a ``BEGIN IMMEDIATE`` transaction (which takes SQLite's write lock, so other
processes on the same file are serialised too), reads the stored tree, runs the
caller's decision on it, writes the new tree as a compare-and-swap
(``UPDATE ... WHERE origin = ? AND size = ? AND root = ?``, or an ``INSERT`` that
fails if a row appeared) and commits. Only then does the caller answer. A crash at any
point leaves either the old row or the new one; the answer (the cosignature) exists
only after the new one is durable, so two inconsistent trees are never both cosigned.

Refusals are kept only for checkpoints the log validly signed (a bad proof, a fork,
a lawless entry): unsigned junk costs no disk. At most :data:`MAX_REFUSALS` per
origin are kept (the oldest go first), so a misbehaving log cannot fill the disk.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from ledger.core.witness import TreeHead

__all__ = ["MAX_REFUSALS", "Advance", "ConflictError", "Refusal", "WitnessStore"]

MAX_REFUSALS = 1000
"""Most refusals kept per origin."""

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS witnessed (
    origin TEXT PRIMARY KEY,
    size INTEGER NOT NULL CHECK (size >= 0),
    root BLOB NOT NULL CHECK (length(root) = 32),
    checkpoint BLOB NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS refusals (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    origin TEXT NOT NULL,
    at REAL NOT NULL,
    status INTEGER NOT NULL,
    code TEXT NOT NULL,
    detail TEXT NOT NULL,
    request BLOB NOT NULL,
    evidence BLOB
);
CREATE INDEX IF NOT EXISTS refusals_by_origin ON refusals (origin, id);
"""


class ConflictError(RuntimeError):
    """The stored row changed under a transaction that held the write lock: a bug."""


@dataclass(frozen=True)
class Advance:
    """What a decision writes: the new tree and the checkpoint note to serve."""

    head: TreeHead
    checkpoint: bytes


@dataclass(frozen=True)
class Refusal:
    """A kept refusal: when, what status and problem, the request, the evidence (if any)."""

    id: int
    origin: str
    at: float
    status: int
    code: str
    detail: str
    request: bytes
    evidence: bytes | None


class WitnessStore:
    """The SQLite state of one witness (one connection per thread)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._write = threading.Lock()
        with closing(self._connect()) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    def latest(self, origin: str) -> tuple[TreeHead, bytes] | None:
        """The latest cosigned tree of ``origin`` and the note served for it, or None."""
        row = (
            self._conn()
            .execute("SELECT size, root, checkpoint FROM witnessed WHERE origin = ?", (origin,))
            .fetchone()
        )
        if row is None:
            return None
        return TreeHead(int(row[0]), bytes(row[1])), bytes(row[2])

    def origins(self) -> list[str]:
        rows = self._conn().execute("SELECT origin FROM witnessed ORDER BY origin").fetchall()
        return [str(r[0]) for r in rows]

    def advance(self, origin: str, decide: Callable[[TreeHead | None], tuple[Advance, T]]) -> T:
        """Run ``decide`` on the stored tree and persist its result, atomically.

        ``decide`` raises to refuse (nothing is written) or returns the new state and
        the answer, which is returned once the new state is committed to disk.
        """
        with self._write:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute(
                    "SELECT size, root FROM witnessed WHERE origin = ?", (origin,)
                ).fetchone()
                stored = None if row is None else TreeHead(int(row[0]), bytes(row[1]))
                new, answer = decide(stored)
                now = time.time()
                if stored is None:
                    conn.execute(
                        "INSERT INTO witnessed (origin, size, root, checkpoint, updated) "
                        "VALUES (?, ?, ?, ?, ?)",
                        (origin, new.head.size, new.head.root, new.checkpoint, now),
                    )
                else:
                    cur = conn.execute(
                        "UPDATE witnessed SET size = ?, root = ?, checkpoint = ?, updated = ? "
                        "WHERE origin = ? AND size = ? AND root = ?",
                        (
                            new.head.size,
                            new.head.root,
                            new.checkpoint,
                            now,
                            origin,
                            stored.size,
                            stored.root,
                        ),
                    )
                    if cur.rowcount != 1:
                        raise ConflictError(f"the stored tree of {origin!r} changed under a lock")
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return answer

    def keep_refusal(
        self,
        origin: str,
        *,
        status: int,
        code: str,
        detail: str,
        request: bytes,
        evidence: bytes | None = None,
    ) -> int:
        """Keep a refusal of a validly signed checkpoint; return its id."""
        conn = self._conn()
        with self._write:
            conn.execute("BEGIN IMMEDIATE")
            try:
                cur = conn.execute(
                    "INSERT INTO refusals (origin, at, status, code, detail, request, evidence) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (origin, time.time(), status, code, detail, request, evidence),
                )
                conn.execute(
                    "DELETE FROM refusals WHERE origin = ? AND id <= "
                    "(SELECT id FROM refusals WHERE origin = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                    (origin, origin, MAX_REFUSALS),
                )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        return int(cur.lastrowid or 0)

    def refusals(self, origin: str | None = None) -> Iterator[Refusal]:
        """The kept refusals, oldest first (of one origin, or all)."""
        sql = "SELECT id, origin, at, status, code, detail, request, evidence FROM refusals"
        args: tuple[str, ...] = ()
        if origin is not None:
            sql += " WHERE origin = ?"
            args = (origin,)
        for row in self._conn().execute(sql + " ORDER BY id", args).fetchall():
            yield Refusal(
                int(row[0]),
                str(row[1]),
                float(row[2]),
                int(row[3]),
                str(row[4]),
                str(row[5]),
                bytes(row[6]),
                None if row[7] is None else bytes(row[7]),
            )

    def close(self) -> None:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
