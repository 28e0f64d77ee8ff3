"""SqlStorage: the log and its projection in SQLite (default) or PostgreSQL.

Schema: ``api.storage.models``; the seams and a sequencing batch: ``api.storage.base``.

**SQLite** (WAL, ``synchronous=FULL``, busy timeout; see ``api.storage.engine``): a
sequencing transaction starts with ``BEGIN IMMEDIATE``, which takes the database's
one write lock, so writers of every process queue there; readers use a deferred
``BEGIN`` and read a consistent snapshot without blocking the writer.

**PostgreSQL** (``postgresql+psycopg://``). Transactions are READ COMMITTED; a
sequencing transaction starts with ``SELECT ... FROM log_head WHERE id = 1 FOR
UPDATE``, which queues writers from every process on the head row and, once granted,
sees everything the previous writer committed. :meth:`SqlStorage.durability` reports
``fsync`` and ``synchronous_commit``.

**Cost of an append.** Per batch: a handful of queries to lock the head, find
duplicates and prefetch the state the rules will read (signatories, keys, statements,
endorsement pairs of the batch's records) and the O(log n) hashes of the tree's right
edge (its compact range); then, per record, only Python work; then one
``executemany`` per table (``api.storage.txstate``). Every stored hash a new leaf
needs is either on the old tree's right edge or was made earlier in the batch, so the
cost per entry does not grow with the log (``bench/ingest_core.py`` measures it).
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Connection,
    Row,
    Table,
    and_,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import DBAPIError, IntegrityError

from api.storage import models
from api.storage.base import (
    BatchOutcome,
    Durability,
    EndorsementView,
    Logged,
    LogHead,
    OriginMismatchError,
    Rejected,
    SignatoryView,
    StatementView,
    StorageError,
    StorageUnavailableError,
    StoredCheckpoint,
    TreeHead,
    rejected,
)
from api.storage.engine import make_engine
from api.storage.migrate import upgrade
from api.storage.models import (
    AUTHORS,
    CHECKPOINTS,
    ENTRIES,
    HASHES,
    HEAD,
    KEYS,
    PAIRS,
    PUBLISHED,
    SIGNATORIES,
    STATEMENTS,
    TALLIES,
)
from api.storage.txstate import TxHashes, TxState, chunks, insert_rows, select_in
from ledger.core.encoding import b64encode
from ledger.core.entry import Entry, parse_entry
from ledger.core.errors import FormatError, RuleError
from ledger.core.merkle import EMPTY_ROOT, inclusion_proof, leaf_hash, tree_hash
from ledger.core.records import SignedRecord
from ledger.core.rules import DEFAULT_MAX_AGE_S, evaluate
from ledger.core.state import KINDS

logger = logging.getLogger("api.storage")

#: Entries replayed per step by rebuild_projection.
_REBUILD_CHUNK = 2000


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


# --- the storage -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Head:
    origin: str
    size: int
    root: bytes
    last_leaf_hash: bytes
    last_time_ms: int


class SqlStorage:
    """The log writer, log reader and projection reader (``api.storage.base``) of
    SQLite and PostgreSQL databases.

    ``SqlStorage(url, origin=...)`` opens the database, migrates it to the newest
    schema (unless ``migrate=False``) and checks that it holds the log of ``origin``
    (or no log yet). One instance is shared by the threads of a process; several
    processes may open the same database and append concurrently.
    """

    def __init__(
        self,
        url: str,
        *,
        origin: str,
        migrate: bool = True,
        busy_timeout_ms: int = 30_000,
    ) -> None:
        self.origin = origin
        self.engine = make_engine(url, busy_timeout_ms=busy_timeout_ms)
        self.dialect = self.engine.dialect.name
        database = self.engine.url.database
        self._lock_path = f"{database}-writer.lock" if self.dialect == "sqlite" else None
        self._thread_lock = threading.Lock()
        self._busy_timeout_s = busy_timeout_ms / 1000
        try:
            if migrate:
                upgrade(self.engine)
            found = self._read_head().origin
        except DBAPIError as e:
            self.engine.dispose()
            raise StorageUnavailableError(f"cannot open the database: {e.orig}") from e
        except BaseException:
            self.engine.dispose()
            raise
        if found not in ("", origin):
            self.engine.dispose()
            raise OriginMismatchError(
                f"the database holds the log {found!r}, not {origin!r}: "
                "check the origin and database_url settings"
            )

    def __repr__(self) -> str:
        return f"SqlStorage({self.engine.url.render_as_string(hide_password=True)!r})"

    # --- transactions --------------------------------------------------------------

    @contextmanager
    def _writer_turn(self) -> Iterator[None]:
        """SQLite: wait for our turn to write on a file lock, before ``BEGIN IMMEDIATE``.

        SQLite's busy handler polls the write lock with sleeps of up to 100 ms, so
        several processes (``--workers``) writing one file lose most of their time
        asleep; ``flock`` wakes the next writer the moment the lock is free. It only
        orders the writers: ``BEGIN IMMEDIATE`` still takes SQLite's own lock, and a
        process that does not take this one (``ledger reindex``, an older server)
        is still serialised by SQLite. A crashed holder's lock is released by the kernel.
        """
        if self._lock_path is None:
            yield
            return
        deadline = time.monotonic() + self._busy_timeout_s
        if not self._thread_lock.acquire(timeout=self._busy_timeout_s):
            raise StorageUnavailableError("database is locked: another writer holds it")
        try:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                # Poll without blocking, in steps of at most 2 ms, so that a writer that
                # hangs makes us give up after the busy timeout like SQLite would.
                pause = 0.0002
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() >= deadline:
                            raise StorageUnavailableError(
                                "database is locked: another writer holds it"
                            ) from None
                        time.sleep(pause)
                        pause = min(pause * 2, 0.002)
                yield
            finally:
                os.close(fd)  # releases the lock
        finally:
            self._thread_lock.release()

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                yield conn
        except DBAPIError as e:
            raise StorageUnavailableError(f"database error: {e.orig}") from e

    @contextmanager
    def _transaction(self, lock: Table) -> Iterator[tuple[Connection, Row[Any]]]:
        """A write transaction holding the lock of ``lock``'s one row (id 1), which it
        yields; commits on normal exit. SQLite has one write lock for the whole
        database (``BEGIN IMMEDIATE``); PostgreSQL locks that row (``FOR UPDATE``)."""
        try:
            with self._writer_turn(), self.engine.connect() as conn:
                conn.execution_options(ledger_write=True)  # SQLite: BEGIN IMMEDIATE
                with conn.begin():
                    q = select(lock).where(lock.c.id == 1)
                    if self.dialect == "postgresql":
                        q = q.with_for_update()
                    row = conn.execute(q).one_or_none()
                    if row is None:
                        raise StorageError(
                            f"the {lock.name} row is missing: was the database migrated?"
                        )
                    yield conn, row
        except IntegrityError as e:
            # A unique constraint fired: someone appended without the head lock.
            raise StorageError(f"constraint violated while appending: {e.orig}") from e
        except DBAPIError as e:
            raise StorageUnavailableError(f"database error: {e.orig}") from e

    @contextmanager
    def _write(self) -> Iterator[tuple[Connection, _Head]]:
        """A write transaction holding the log's head lock; commits on normal exit."""
        with self._transaction(HEAD) as (conn, row):
            head = _head(row)
            if head.origin not in ("", self.origin):
                raise OriginMismatchError(
                    f"the database holds the log {head.origin!r}, not {self.origin!r}"
                )
            yield conn, head

    def _read_head(self) -> _Head:
        with self._read() as conn:
            return _head(conn.execute(select(HEAD).where(HEAD.c.id == 1)).one())

    def _cas_head(
        self,
        conn: Connection,
        old: _Head,
        *,
        size: int,
        root: bytes,
        last_leaf_hash: bytes,
        time_ms: int,
    ) -> None:
        """Replace the head (the committed tree) by compare-and-swap."""
        result = conn.execute(
            update(HEAD)
            .where(and_(HEAD.c.id == 1, HEAD.c.size == old.size, HEAD.c.root == old.root))
            .values(
                origin=self.origin,
                size=size,
                root=root,
                last_leaf_hash=last_leaf_hash,
                last_time_ms=time_ms,
            )
        )
        if result.rowcount != 1:
            raise StorageError(
                f"the log head moved during a locked transaction (expected size {old.size})"
            )

    # --- the log -------------------------------------------------------------------

    def head(self) -> LogHead:
        with self._read() as conn:
            row = conn.execute(select(PUBLISHED).where(PUBLISHED.c.id == 1)).one()
        return _published(row)

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        found: dict[int, bytes] = {}
        wanted = list(dict.fromkeys(indexes))
        with self._read() as conn:
            for chunk in chunks(wanted):
                for r in conn.execute(
                    select(HASHES.c.id, HASHES.c.hash).where(HASHES.c.id.in_(chunk))
                ):
                    found[r.id] = bytes(r.hash)
        try:
            return [found[i] for i in indexes]
        except KeyError as e:
            raise ValueError(f"stored hash {e.args[0]} is not in the log") from None

    def read_entries(self, start: int, end: int) -> list[bytes]:
        if start < 0 or end < start:
            raise ValueError(f"bad entry range [{start}, {end})")
        with self._read() as conn:
            size = conn.execute(select(HEAD.c.size).where(HEAD.c.id == 1)).scalar_one()
            end = min(end, size)
            if start >= end:
                return []
            rows = conn.execute(
                select(ENTRIES.c.idx, ENTRIES.c.data)
                .where(ENTRIES.c.idx >= start, ENTRIES.c.idx < end)
                .order_by(ENTRIES.c.idx)
            ).all()
        if len(rows) != end - start or (rows and rows[0].idx != start):
            raise StorageError(f"entries {start} to {end - 1} are not all in the database")
        return [bytes(r.data) for r in rows]

    def index_of_leaf(self, leaf_hash: bytes) -> int | None:
        with self._read() as conn:
            return conn.execute(
                select(ENTRIES.c.idx).where(ENTRIES.c.leaf_hash == leaf_hash)
            ).scalar_one_or_none()

    def index_of_record(self, record_id: bytes) -> int | None:
        with self._read() as conn:
            return conn.execute(
                select(ENTRIES.c.idx).where(ENTRIES.c.record_id == record_id)
            ).scalar_one_or_none()

    def checkpoint_at(self, size: int) -> StoredCheckpoint | None:
        with self._read() as conn:
            row = conn.execute(select(CHECKPOINTS).where(CHECKPOINTS.c.size == size)).one_or_none()
        return None if row is None else _stored_checkpoint(row)

    def checkpoints(self, *, min_size: int = 0, limit: int = 1000) -> list[StoredCheckpoint]:
        with self._read() as conn:
            rows = conn.execute(
                select(CHECKPOINTS)
                .where(CHECKPOINTS.c.size >= min_size)
                .order_by(CHECKPOINTS.c.size)
                .limit(limit)
            ).all()
        return [_stored_checkpoint(r) for r in rows]

    def init_log(self) -> TreeHead:
        head = self._read_head()
        if head.origin != self.origin:
            with self._write() as (conn, head):
                if head.origin != self.origin:
                    conn.execute(update(HEAD).where(HEAD.c.id == 1).values(origin=self.origin))
            logger.info("claimed the database for the log %s", self.origin)
        return TreeHead(head.size, head.root)

    def append_batch(
        self,
        records: Sequence[SignedRecord],
        *,
        time_ms: int | None = None,
        max_age_s: int | None = DEFAULT_MAX_AGE_S,
    ) -> BatchOutcome:
        if not records:
            head = self._read_head()
            return BatchOutcome(head.size, head.root, [])
        with self._write() as (conn, head):
            now = max(_now_ms() if time_ms is None else time_ms, head.last_time_ms)
            ids = list(dict.fromkeys(r.record_id for r in records))
            logged: dict[bytes, tuple[int, bytes]] = {}
            for chunk in chunks(ids):
                cols = ("record_id", "idx", "leaf_hash")
                for r in select_in(conn, ENTRIES, cols, "record_id", chunk):
                    logged[bytes(r[0])] = (r[1], bytes(r[2]))
            state = TxState(conn)
            state.prefetch(r for r in records if r.record_id not in logged)
            hashes = TxHashes(conn, head.size)
            size, prev, root = head.size, head.last_leaf_hash, head.root
            outcomes: list[tuple[int, bytes, bool] | Rejected] = []
            entries: list[dict[str, Any]] = []
            for rec in records:
                rid = rec.record_id
                if rid in logged:
                    outcomes.append((*logged[rid], True))
                    continue
                try:
                    effect = evaluate(
                        rec,
                        index=size,
                        time_ms=now,
                        origin=self.origin,
                        view=state,
                        max_age_s=max_age_s,
                    )
                    data = Entry(size, prev, now, rec).encode()
                except (RuleError, FormatError) as e:
                    outcomes.append(rejected(e))
                    continue
                leaf = leaf_hash(data)
                hashes.append(size, leaf)
                state.apply(effect)
                entries.append({"idx": size, "data": data, "leaf_hash": leaf, "record_id": rid})
                logged[rid] = (size, leaf)
                outcomes.append((size, leaf, False))
                size, prev = size + 1, leaf
            if entries:
                insert_rows(conn, ENTRIES, entries)
                insert_rows(conn, HASHES, hashes.new)
                state.flush()
                root = tree_hash(size, hashes)
                self._cas_head(conn, head, size=size, root=root, last_leaf_hash=prev, time_ms=now)
        # Committed. A new entry's result carries its bytes and its inclusion proof, from
        # the hashes the batch holds (no further read).
        new_data = {e["idx"]: e["data"] for e in entries}
        held = _HeldHashes(hashes.cache)
        out: list[Logged | Rejected] = []
        for o in outcomes:
            if isinstance(o, Rejected):
                out.append(o)
            elif o[2]:
                out.append(Logged(o[0], o[1], True))
            else:
                proof = tuple(inclusion_proof(o[0], size, held))
                out.append(Logged(o[0], o[1], False, new_data[o[0]], proof))
        return BatchOutcome(size, root, out)

    def replace_checkpoint(
        self, size: int, root: bytes, checkpoint: bytes, *, time_ms: int | None = None
    ) -> LogHead:
        if not checkpoint:
            raise ValueError("no checkpoint to publish")
        with self._transaction(PUBLISHED) as (conn, row):
            current = _published(row)
            tree = _head(conn.execute(select(HEAD).where(HEAD.c.id == 1)).one())
            if (
                size > tree.size
                or (size == tree.size and root != tree.root)
                or (size == row.size and root != current.root)
            ):
                raise StorageError(
                    f"refusing to publish a checkpoint of size {size}: the committed tree "
                    f"has size {tree.size} and root {tree.root.hex()}"
                )
            if row.size >= size:  # as large or larger already: never go back
                return current
            now = max(_now_ms() if time_ms is None else time_ms, row.time_ms)
            result = conn.execute(
                update(PUBLISHED)
                .where(and_(PUBLISHED.c.id == 1, PUBLISHED.c.size == row.size))
                .values(size=size, root=root, checkpoint=checkpoint, time_ms=now)
            )
            if result.rowcount != 1:
                raise StorageError("the published checkpoint moved during a locked transaction")
            conn.execute(
                insert(CHECKPOINTS),
                {"size": size, "root": root, "checkpoint": checkpoint, "time_ms": now},
            )
        return LogHead(size, root, checkpoint)

    # --- the projection ------------------------------------------------------------

    def _statement_views(self, conn: Connection, rows: Sequence[Row[Any]]) -> list[StatementView]:
        ids = [bytes(r.id) for r in rows]
        authors: dict[bytes, list[tuple[int, bytes]]] = {i: [] for i in ids}
        tallies: dict[bytes, dict[str, int]] = {i: dict.fromkeys(KINDS, 0) for i in ids}
        for chunk in chunks(ids):
            for a in conn.execute(
                select(AUTHORS.c.statement, AUTHORS.c.position, AUTHORS.c.signatory).where(
                    AUTHORS.c.statement.in_(chunk)
                )
            ):
                authors[bytes(a.statement)].append((a.position, bytes(a.signatory)))
            for st, kind, count in conn.execute(
                select(TALLIES.c.statement, TALLIES.c.kind, TALLIES.c.count).where(
                    TALLIES.c.statement.in_(chunk)
                )
            ):
                tallies[bytes(st)][kind] = count
        return [
            StatementView(
                statement=bytes(r.id).hex(),
                title=r.title,
                text=r.text,
                authors=[a.hex() for _, a in sorted(authors[bytes(r.id)])],
                index=r.idx,
                signed_at=r.signed_at,
                tallies=tallies[bytes(r.id)],
            )
            for r in rows
        ]

    def statements(self, *, offset: int = 0, limit: int = 100) -> list[StatementView]:
        with self._read() as conn:
            rows = conn.execute(
                select(STATEMENTS).order_by(STATEMENTS.c.idx).offset(offset).limit(limit)
            ).all()
            return self._statement_views(conn, rows)

    def statement(self, statement_id: bytes) -> StatementView | None:
        with self._read() as conn:
            rows = conn.execute(select(STATEMENTS).where(STATEMENTS.c.id == statement_id)).all()
            views = self._statement_views(conn, rows)
        return views[0] if views else None

    def endorsements(
        self,
        statement_id: bytes,
        *,
        kind: str | None = None,
        country: str | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> list[EndorsementView]:
        e, s = PAIRS, SIGNATORIES
        q = (
            select(
                e.c.signatory,
                e.c.idx,
                e.c.last_signed_at,
                e.c.kind,
                e.c.country,
                e.c.comment,
                s.c.name,
                s.c.domain,
            )
            .join(s, s.c.id == e.c.signatory)
            .where(e.c.statement == statement_id, e.c.active.is_(True))
        )
        if kind is not None:
            q = q.where(e.c.kind == kind)
        if country is not None:
            q = q.where(e.c.country == country)
        q = q.order_by(e.c.idx).offset(offset).limit(limit)
        with self._read() as conn:
            rows = conn.execute(q).all()
        sid = statement_id.hex()
        return [
            EndorsementView(
                signatory=bytes(r.signatory).hex(),
                name=r.name,
                kind=r.kind,
                country=r.country,
                domain=r.domain,
                statement=sid,
                index=r.idx,
                signed_at=r.last_signed_at,
                comment=r.comment,
            )
            for r in rows
        ]

    def _signatory_views(self, conn: Connection, rows: Sequence[Row[Any]]) -> list[SignatoryView]:
        ids = [bytes(r.id) for r in rows]
        keys: dict[bytes, list[tuple[int, bytes]]] = {i: [] for i in ids}
        for chunk in chunks(ids):
            for k in conn.execute(
                select(KEYS.c.signatory, KEYS.c.idx, KEYS.c.key_hash).where(
                    KEYS.c.signatory.in_(chunk)
                )
            ):
                keys[bytes(k.signatory)].append((k.idx, bytes(k.key_hash)))
        return [
            SignatoryView(
                signatory=bytes(r.id).hex(),
                name=r.name,
                kind=r.kind,
                country=r.country,
                domain=r.domain,
                index=r.idx,
                current_key=b64encode(bytes(r.current_key)),
                active=r.active,
                keys=[h.hex() for _, h in sorted(keys[bytes(r.id)])],
            )
            for r in rows
        ]

    def signatory(self, key_hash: bytes) -> SignatoryView | None:
        with self._read() as conn:
            owner = select(KEYS.c.signatory).where(KEYS.c.key_hash == key_hash)
            rows = conn.execute(
                select(SIGNATORIES).where(SIGNATORIES.c.id.in_(owner.scalar_subquery()))
            ).all()
            views = self._signatory_views(conn, rows)
        return views[0] if views else None

    def search_signatories(self, query: str, *, limit: int = 50) -> list[SignatoryView]:
        q = query.strip()
        if not q:
            return []
        folded = q.casefold()
        escaped = folded.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        s = SIGNATORIES
        cond = or_(
            s.c.name_folded.like(f"%{escaped}%", escape="\\"),
            s.c.domain == q.lower(),
            s.c.domain.like(f"%.{escaped}", escape="\\"),
        )
        with self._read() as conn:
            rows = conn.execute(select(s).where(cond).order_by(s.c.idx).limit(limit)).all()
            return self._signatory_views(conn, rows)

    def signatory_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(KINDS, 0)
        with self._read() as conn:
            for kind, n in conn.execute(
                select(SIGNATORIES.c.kind, func.count()).group_by(SIGNATORIES.c.kind)
            ):
                counts[kind] = n
        return counts

    def rebuild_projection(self) -> int:
        """Replay every entry's record through the rules into empty projection tables.

        Runs in one transaction under the head lock, so no append interleaves. Rule 3
        (age) is not applied: the limit in force when an entry was sequenced is not
        recorded. Raises StorageError if an entry breaks a rule (the log is invalid).
        """
        with self._write() as (conn, head):
            for name in reversed(models.PROJECTION_TABLES):
                conn.execute(delete(models.metadata.tables[name]))
            state = TxState(conn)
            for start in range(0, head.size, _REBUILD_CHUNK):
                end = min(start + _REBUILD_CHUNK, head.size)
                rows = conn.execute(
                    select(ENTRIES.c.idx, ENTRIES.c.data)
                    .where(ENTRIES.c.idx >= start, ENTRIES.c.idx < end)
                    .order_by(ENTRIES.c.idx)
                ).all()
                if len(rows) != end - start:
                    raise StorageError(f"entries {start} to {end - 1} are not all in the database")
                parsed: list[Entry] = []
                for r in rows:
                    entry = parse_entry(bytes(r.data))
                    if entry.index != r.idx:
                        raise StorageError(f"entry stored at {r.idx} says it is {entry.index}")
                    parsed.append(entry)
                state.prefetch(e.record for e in parsed)
                for entry in parsed:
                    try:
                        effect = evaluate(
                            entry.record,
                            index=entry.index,
                            time_ms=entry.time_ms,
                            origin=self.origin,
                            view=state,
                            max_age_s=None,
                        )
                    except RuleError as e:
                        raise StorageError(f"the log breaks a rule: {e}") from e
                    state.apply(effect)
                state.flush()
        logger.info("rebuilt the projection from %d entries", head.size)
        return head.size

    # --- operations ----------------------------------------------------------------

    def durability(self) -> Durability:
        settings: dict[str, str] = {}
        warnings: list[str] = []
        with self._read() as conn:
            if self.dialect == "sqlite":
                mode = str(conn.exec_driver_sql("PRAGMA journal_mode").scalar())
                sync = int(conn.exec_driver_sql("PRAGMA synchronous").scalar() or 0)
                settings = {"journal_mode": mode, "synchronous": str(sync)}
                if mode.lower() != "wal":
                    warnings.append(f"SQLite journal_mode is {mode!r}, not WAL")
                if sync < 2:
                    warnings.append(
                        f"SQLite synchronous is {sync}, not FULL (2): a power loss may lose "
                        "committed entries"
                    )
            else:
                for name in ("fsync", "synchronous_commit", "full_page_writes"):
                    settings[name] = str(conn.execute(text(f"SHOW {name}")).scalar())
                if settings["fsync"] != "on":
                    warnings.append(
                        "PostgreSQL fsync is off: a crash may corrupt the database and lose "
                        "committed entries"
                    )
                if settings["synchronous_commit"] == "off":
                    warnings.append(
                        "PostgreSQL synchronous_commit is off: entries answered as committed "
                        "may be lost in a crash, and the log could then sign a fork"
                    )
                if settings["full_page_writes"] != "on":
                    warnings.append("PostgreSQL full_page_writes is off: a crash may corrupt pages")
        return Durability(settings, warnings)

    def close(self) -> None:
        self.engine.dispose()


class _HeldHashes:
    """A ``HashReader`` over the hashes a committed batch held in memory, and nothing else."""

    __slots__ = ("cache",)

    def __init__(self, cache: dict[int, bytes]) -> None:
        self.cache = cache

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        cache = self.cache
        return [cache[i] for i in indexes]  # KeyError: not held


def _head(row: Row[Any]) -> _Head:
    return _Head(
        row.origin,
        row.size,
        bytes(row.root),
        bytes(row.last_leaf_hash),
        row.last_time_ms,
    )


def _published(row: Row[Any]) -> LogHead:
    if row.size < 0:
        return LogHead(0, EMPTY_ROOT, b"")
    return LogHead(row.size, bytes(row.root), bytes(row.checkpoint))


def _stored_checkpoint(row: Row[Any]) -> StoredCheckpoint:
    return StoredCheckpoint(row.size, bytes(row.root), bytes(row.checkpoint), row.time_ms)


__all__ = ["SqlStorage", "make_engine"]
