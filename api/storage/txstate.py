"""The state of a sequencing transaction: what the rules read, and the growing tree.

:class:`TxState` is the ``ledger.core.rules.StateView`` of ``api.storage.sql`` over the
projection tables, read *inside* the transaction that appends, and the
``ledger.core.effects.ProjectionSink`` that ``ledger.core.effects.apply`` writes each
accepted record's effect to, so that a record sees the effects of the earlier records
of its batch. :class:`TxHashes` is the ``ledger.core.merkle.HashReader`` over the tree
inside that transaction. Both keep what they read and write in memory and write it all
at the end of the batch, one ``executemany`` per table, which keeps an append's cost
independent of the log's size.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table

from api.storage.base import StorageError
from api.storage.models import AUTHORS, HASHES, KEYS, PAIRS, SIGNATORIES, STATEMENTS, TALLIES
from ledger.core.ed25519 import key_hash
from ledger.core.effects import Effect, apply
from ledger.core.merkle import stored_hash_count, stored_hash_index, stored_hashes_for_append
from ledger.core.records import (
    Endorsement,
    Registration,
    Revocation,
    Rotation,
    SignedRecord,
    Statement,
    Withdrawal,
)
from ledger.core.rules import KeyInfo, PairInfo, SignatoryInfo
from ledger.core.state import KINDS

#: Largest IN list per query (SQLite's default limit on bound variables is 32,766).
CHUNK = 500
#: Largest OR list of endorsement pairs per query.
PAIR_CHUNK = 200


def chunks(items: Sequence[Any], n: int = CHUNK) -> Iterator[Sequence[Any]]:
    """``items`` in slices of at most ``n``."""
    for i in range(0, len(items), n):
        yield items[i : i + n]


def insert_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """``INSERT`` ``rows`` (dicts with the same keys) with one executemany of the driver.

    The same as ``conn.execute(insert(table), rows)``, without SQLAlchemy's per-value
    processing (which costs more than SQLite's own work for a batch of hashes): the
    values are the driver's native types already (bytes, int, str, bool, None).
    """
    if not rows:
        return
    columns = list(rows[0])
    # Names come from the table's own columns (a KeyError for any other): never from data.
    names = ", ".join(f'"{table.c[c].name}"' for c in columns)
    marks = ", ".join(["?"] * len(columns))
    sql = f'INSERT INTO "{table.name}" ({names}) VALUES ({marks})'  # noqa: S608
    conn.exec_driver_sql(_marks(conn, sql), [tuple(r[c] for c in columns) for r in rows])


def _marks(conn: Connection, sql: str) -> str:
    """``sql`` written with ``?`` placeholders, in the driver's own style."""
    return sql if conn.dialect.paramstyle == "qmark" else sql.replace("?", "%s")


@functools.lru_cache(maxsize=256)
def _select_in(table: Table, columns: tuple[str, ...], key: str, n: int) -> str:
    """``SELECT columns FROM table WHERE key IN (?, ... n times)`` (names from the table)."""
    cols = ", ".join(f'"{table.c[c].name}"' for c in columns)
    marks = ", ".join(["?"] * n)
    return f'SELECT {cols} FROM "{table.name}" WHERE "{table.c[key].name}" IN ({marks})'  # noqa: S608


def select_in(
    conn: Connection, table: Table, columns: tuple[str, ...], key: str, values: Sequence[Any]
) -> list[Any]:
    """The rows of ``table`` whose ``key`` is one of ``values`` (at most CHUNK of them).

    Through the driver, as :func:`insert_rows`: SQLAlchemy's expanding IN costs
    about 300 us a query of 47 values here, against 50 for the same statement sent
    as it is. The values are bound parameters, the names the table's own.
    """
    sql = _marks(conn, _select_in(table, columns, key, len(values)))
    return list(conn.exec_driver_sql(sql, tuple(values)).fetchall())


def execute_many(conn: Connection, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """``sql`` (``?`` placeholders, names from the models) once per row, one executemany."""
    if rows:
        conn.exec_driver_sql(_marks(conn, sql), list(rows))


def _update_sql(
    table: Table, columns: Sequence[str], where: Sequence[str], add: bool = False
) -> str:
    """``UPDATE table SET c = ? ... WHERE w = ? AND ...`` (``c = c + ?`` if ``add``),
    with the table's own names."""
    names = [f'"{table.c[c].name}"' for c in columns]
    sets = ", ".join(f"{n} = {n} + ?" if add else f"{n} = ?" for n in names)
    cond = " AND ".join(f'"{table.c[w].name}" = ?' for w in where)
    return f'UPDATE "{table.name}" SET {sets} WHERE {cond}'  # noqa: S608


_UPDATE_SIGNATORY = _update_sql(SIGNATORIES, ["current_key", "active"], ["id"])
_UPDATE_KEY = _update_sql(KEYS, ["revoked"], ["key_hash"])
_UPDATE_PAIR = _update_sql(
    PAIRS, ["active", "last_signed_at", "idx", "comment"], ["signatory", "statement"]
)
_ADD_TO_TALLY = _update_sql(TALLIES, ["count"], ["statement", "kind"], add=True)


@dataclass(slots=True)
class _Sig:
    kind: str
    country: str | None
    current_key: bytes
    active: bool
    new: bool = False
    dirty: bool = False
    row: dict[str, Any] | None = None  # the full row of a new signatory


@dataclass(slots=True)
class _Key:
    signatory: bytes
    public_key: bytes
    revoked: bool
    idx: int
    new: bool = False
    dirty: bool = False


@dataclass(slots=True)
class _Pair:
    active: bool
    last_signed_at: int
    idx: int
    kind: str
    country: str | None
    comment: str | None
    new: bool = False
    dirty: bool = False


@functools.lru_cache(maxsize=PAIR_CHUNK)
def _pairs_sql(n: int) -> str:
    """The endorsement pairs (s0, t0) ... (s<n-1>, t<n-1>), as bound parameters.

    An OR of (signatory = ? AND statement = ?): SQLite searches the primary key for
    each term, where a row-value IN list would scan the table. Built once per length
    and cached; n stays well under SQLite's expression depth limit (1,000).
    """
    t = PAIRS
    cols = ", ".join(
        f'"{t.c[c].name}"'
        for c in (
            "signatory",
            "statement",
            "active",
            "last_signed_at",
            "idx",
            "kind",
            "country",
            "comment",
        )
    )
    sig, st = t.c.signatory.name, t.c.statement.name
    terms = " OR ".join([f'("{sig}" = ? AND "{st}" = ?)'] * n)
    return f'SELECT {cols} FROM "{t.name}" WHERE {terms}'  # noqa: S608


class TxState:
    """A ``ledger.core.rules.StateView`` and ``ledger.core.effects.ProjectionSink`` over
    the projection tables, inside one transaction.

    It caches what it reads (absent rows too), applies each accepted record's effect
    to the cache, so that later records of the batch see it, and writes all changes
    with one ``executemany`` per table in :meth:`flush`. :meth:`prefetch` loads in a
    few queries the rows a batch of records will ask for; anything else is read on
    demand, so prefetching is only an optimisation.
    """

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.sigs: dict[bytes, _Sig | None] = {}
        self.keys: dict[bytes, _Key | None] = {}
        self.stmts: dict[bytes, bool] = {}
        self.pairs: dict[tuple[bytes, bytes], _Pair | None] = {}
        self.new_statements: list[dict[str, Any]] = []
        self.new_authors: list[dict[str, Any]] = []
        self.tally_delta: dict[tuple[bytes, str], int] = {}

    # --- loading ---------------------------------------------------------------------

    def _load_sigs(self, ids: Iterable[bytes]) -> None:
        todo = [i for i in set(ids) if i not in self.sigs]
        for chunk in chunks(todo):
            for i in chunk:
                self.sigs[i] = None
            cols = ("id", "kind", "country", "current_key", "active")
            for r in select_in(self.conn, SIGNATORIES, cols, "id", chunk):
                self.sigs[bytes(r[0])] = _Sig(r[1], r[2], bytes(r[3]), bool(r[4]))

    def _load_keys(self, hashes: Iterable[bytes]) -> None:
        todo = [h for h in set(hashes) if h not in self.keys]
        for chunk in chunks(todo):
            for h in chunk:
                self.keys[h] = None
            cols = ("key_hash", "signatory", "public_key", "revoked", "idx")
            for r in select_in(self.conn, KEYS, cols, "key_hash", chunk):
                self.keys[bytes(r[0])] = _Key(bytes(r[1]), bytes(r[2]), bool(r[3]), r[4])

    def _load_statements(self, ids: Iterable[bytes]) -> None:
        todo = [i for i in set(ids) if i not in self.stmts]
        for chunk in chunks(todo):
            for i in chunk:
                self.stmts[i] = False
            for r in select_in(self.conn, STATEMENTS, ("id",), "id", chunk):
                self.stmts[bytes(r[0])] = True

    def _load_pairs(self, pairs: Iterable[tuple[bytes, bytes]]) -> None:
        todo = [p for p in set(pairs) if p not in self.pairs]
        for chunk in chunks(todo, PAIR_CHUNK):
            params: list[bytes] = []
            for p in chunk:
                self.pairs[p] = None
                params.extend(p)
            sql = _marks(self.conn, _pairs_sql(len(chunk)))
            for r in self.conn.exec_driver_sql(sql, tuple(params)):
                self.pairs[(bytes(r[0]), bytes(r[1]))] = _Pair(
                    bool(r[2]), r[3], r[4], r[5], r[6], r[7]
                )

    def prefetch(self, records: Iterable[SignedRecord]) -> None:
        """Load the rows the rules will read for these records, in a few queries."""
        sigs: set[bytes] = set()
        keys: set[bytes] = set()
        stmts: set[bytes] = set()
        pairs: set[tuple[bytes, bytes]] = set()
        for rec in records:
            body = rec.body
            keys.update(key_hash(s.public_key) for s in rec.signatures)
            if isinstance(body, Registration):
                continue  # its key hash is among the signers'
            if isinstance(body, Statement):
                sigs.update(body.authors)
                stmts.add(rec.record_id)
                continue
            sigs.add(body.signatory)
            if isinstance(body, Endorsement | Withdrawal):
                stmts.add(body.statement)
                pairs.add((body.signatory, body.statement))
            elif isinstance(body, Rotation):
                keys.add(key_hash(body.new_key))
            else:
                assert isinstance(body, Revocation)
                keys.add(key_hash(body.key))
        self._load_sigs(sigs)
        self._load_keys(keys)
        self._load_statements(stmts)
        self._load_pairs(pairs)

    # --- ledger.core.rules.StateView ------------------------------------------------------

    def get_signatory(self, signatory: bytes) -> SignatoryInfo | None:
        if signatory not in self.sigs:
            self._load_sigs([signatory])
        s = self.sigs[signatory]
        return None if s is None else SignatoryInfo(signatory, s.kind, s.current_key, s.active)

    def get_key(self, key_hash: bytes) -> KeyInfo | None:
        if key_hash not in self.keys:
            self._load_keys([key_hash])
        k = self.keys[key_hash]
        return None if k is None else KeyInfo(k.signatory, k.public_key, k.revoked)

    def has_statement(self, statement: bytes) -> bool:
        if statement not in self.stmts:
            self._load_statements([statement])
        return self.stmts[statement]

    def get_pair(self, signatory: bytes, statement: bytes) -> PairInfo | None:
        p = (signatory, statement)
        if p not in self.pairs:
            self._load_pairs([p])
        pair = self.pairs[p]
        return None if pair is None else PairInfo(pair.active, pair.last_signed_at)

    # --- ledger.core.effects.ProjectionSink ---------------------------------------------

    def apply(self, effect: Effect) -> None:
        """Apply an accepted record's effect to the cache (``ledger.core.effects.apply``)."""
        apply(effect, self)

    def add_signatory(self, signatory: bytes, body: Registration, index: int) -> None:
        self.sigs[signatory] = _Sig(
            body.kind.value,
            body.country,
            body.key,
            True,
            new=True,
            row={
                "id": signatory,
                "name": body.name,
                "name_folded": body.name.casefold(),
                "kind": body.kind.value,
                "country": body.country,
                "domain": body.domain,
                "idx": index,
            },
        )

    def add_key(self, signatory: bytes, key: bytes, key_hash: bytes, index: int) -> None:
        self.keys[key_hash] = _Key(signatory, key, False, index, new=True)

    def _sig(self, signatory: bytes) -> _Sig:
        sig = self.sigs[signatory]
        assert sig is not None  # the rules read it
        return sig

    def set_current_key(self, signatory: bytes, key: bytes) -> None:
        sig = self._sig(signatory)
        sig.current_key = key
        sig.dirty = True

    def revoke_key(self, key_hash: bytes) -> None:
        k = self.keys[key_hash]
        assert k is not None  # the rules read it
        k.revoked = True
        k.dirty = True

    def deactivate(self, signatory: bytes) -> None:
        sig = self._sig(signatory)
        sig.active = False
        sig.dirty = True

    def add_statement(self, statement: bytes, body: Statement, index: int) -> None:
        self.stmts[statement] = True
        self.new_statements.append(
            {
                "id": statement,
                "title": body.title,
                "text": body.text,
                "idx": index,
                "signed_at": body.signed_at,
            }
        )
        self.new_authors.extend(
            {"statement": statement, "position": i, "signatory": a}
            for i, a in enumerate(body.authors)
        )

    def set_pair(
        self,
        signatory: bytes,
        statement: bytes,
        *,
        active: bool,
        signed_at: int,
        index: int,
        comment: str | None,
    ) -> None:
        key = (signatory, statement)
        pair = self.pairs.get(key)
        if pair is None:
            sig = self._sig(signatory)
            self.pairs[key] = _Pair(
                active, signed_at, index, sig.kind, sig.country, comment, new=True
            )
        else:
            pair.active = active
            pair.last_signed_at = signed_at
            pair.idx = index
            pair.comment = comment
            pair.dirty = True

    def add_to_tally(self, statement: bytes, kind: str, delta: int) -> None:
        tk = (statement, kind)
        self.tally_delta[tk] = self.tally_delta.get(tk, 0) + delta

    def flush(self) -> None:
        """Write every change of the batch: inserts first, then updates."""
        conn = self.conn
        new_sigs: list[dict[str, Any]] = []
        upd_sigs: list[dict[str, Any]] = []
        for sid, s in self.sigs.items():
            if s is None:
                continue
            if s.new:
                assert s.row is not None
                new_sigs.append({**s.row, "current_key": s.current_key, "active": s.active})
            elif s.dirty:
                upd_sigs.append({"b_id": sid, "b_key": s.current_key, "b_active": s.active})
        new_keys: list[dict[str, Any]] = []
        upd_keys: list[dict[str, Any]] = []
        for kh, k in self.keys.items():
            if k is None:
                continue
            if k.new:
                new_keys.append(
                    {
                        "key_hash": kh,
                        "signatory": k.signatory,
                        "public_key": k.public_key,
                        "revoked": k.revoked,
                        "idx": k.idx,
                    }
                )
            elif k.dirty:
                upd_keys.append({"b_hash": kh, "b_revoked": k.revoked})
        new_pairs: list[dict[str, Any]] = []
        upd_pairs: list[dict[str, Any]] = []
        for (sig_id, st), p in self.pairs.items():
            if p is None:
                continue
            if p.new:
                new_pairs.append(
                    {
                        "signatory": sig_id,
                        "statement": st,
                        "active": p.active,
                        "last_signed_at": p.last_signed_at,
                        "idx": p.idx,
                        "kind": p.kind,
                        "country": p.country,
                        "comment": p.comment,
                    }
                )
            elif p.dirty:
                upd_pairs.append(
                    {
                        "b_sig": sig_id,
                        "b_st": st,
                        "b_active": p.active,
                        "b_at": p.last_signed_at,
                        "b_idx": p.idx,
                        "b_comment": p.comment,
                    }
                )
        tallies = [
            {"statement": s["id"], "kind": k, "count": 0}
            for s in self.new_statements
            for k in KINDS
        ]
        for table, rows in (
            (SIGNATORIES, new_sigs),
            (KEYS, new_keys),
            (STATEMENTS, self.new_statements),
            (AUTHORS, self.new_authors),
            (TALLIES, tallies),
            (PAIRS, new_pairs),
        ):
            insert_rows(conn, table, rows)
        # Updates through the driver, one executemany each (as insert_rows).
        execute_many(
            conn,
            _UPDATE_SIGNATORY,
            [(u["b_key"], u["b_active"], u["b_id"]) for u in upd_sigs],
        )
        execute_many(conn, _UPDATE_KEY, [(u["b_revoked"], u["b_hash"]) for u in upd_keys])
        execute_many(
            conn,
            _UPDATE_PAIR,
            [
                (u["b_active"], u["b_at"], u["b_idx"], u["b_comment"], u["b_sig"], u["b_st"])
                for u in upd_pairs
            ],
        )
        execute_many(
            conn,
            _ADD_TO_TALLY,
            [(d, st, k) for (st, k), d in self.tally_delta.items() if d],
        )
        self.sigs.clear()
        self.keys.clear()
        self.stmts.clear()
        self.pairs.clear()
        self.new_statements.clear()
        self.new_authors.clear()
        self.tally_delta.clear()


class TxHashes:
    """A ``ledger.core.merkle.HashReader`` over the tree inside a sequencing transaction.

    It starts with the compact range of the committed tree (one query) and holds the
    hashes the batch stores; it reads anything else from the database.
    """

    def __init__(self, conn: Connection, size: int) -> None:
        self.conn = conn
        self.cache: dict[int, bytes] = {}
        self.new: list[dict[str, Any]] = []
        edge: list[int] = []
        lo = 0
        for level in range(size.bit_length() - 1, -1, -1):
            if size >> level & 1:
                edge.append(stored_hash_index(level, lo >> level))
                lo += 1 << level
        self._fetch(edge)

    def _fetch(self, indexes: Sequence[int]) -> None:
        for chunk in chunks(list(indexes)):
            for r in select_in(self.conn, HASHES, ("id", "hash"), "id", chunk):
                self.cache[r[0]] = bytes(r[1])

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        missing = [i for i in indexes if i not in self.cache]
        if missing:
            self._fetch(missing)
        try:
            return [self.cache[i] for i in indexes]
        except KeyError as e:
            raise StorageError(f"stored hash {e.args[0]} is missing from the database") from None

    def append(self, n: int, leaf_hash: bytes) -> None:
        """Store the hashes that appending leaf ``n`` makes."""
        first = stored_hash_count(n)
        for i, h in enumerate(stored_hashes_for_append(n, leaf_hash, self)):
            self.cache[first + i] = h
            self.new.append({"id": first + i, "hash": h})


__all__ = ["CHUNK", "TxHashes", "TxState", "chunks", "execute_many", "insert_rows", "select_in"]
