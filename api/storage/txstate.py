"""The state of a sequencing transaction: what the rules read, and the growing tree.

:class:`TxState` is the ``ledger.rules.StateView`` of ``api.storage.sql`` over the
projection tables, read *inside* the transaction that appends, so that a record
sees the effects of the earlier records of its batch. :class:`TxHashes` is the
``ledger.merkle.HashReader`` over the tree inside that transaction. Both keep what
they read and write in memory and write it all at the end of the batch, one
``executemany`` per table, which keeps an append's cost independent of the log's
size.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Select, Table, and_, bindparam, or_, select, update

from api.storage.base import StorageError
from api.storage.models import AUTHORS, HASHES, KEYS, PAIRS, SIGNATORIES, STATEMENTS, TALLIES
from ledger.ed25519 import key_hash
from ledger.merkle import stored_hash_count, stored_hash_index, stored_hashes_for_append
from ledger.records import Endorsement, Registration, SignedRecord, Statement
from ledger.rules import Effect, KeyInfo, PairInfo, SignatoryInfo
from ledger.state import KINDS

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
    marks = ", ".join(["?" if conn.dialect.paramstyle == "qmark" else "%s"] * len(columns))
    sql = f'INSERT INTO "{table.name}" ({names}) VALUES ({marks})'  # noqa: S608
    conn.exec_driver_sql(sql, [tuple(r[c] for c in columns) for r in rows])


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
def _pairs_query(n: int) -> Select[Any]:
    """The endorsement pairs (s0, t0) ... (s<n-1>, t<n-1>), as bound parameters.

    An OR of (signatory = ? AND statement = ?): SQLite searches the primary key for
    each term, where a row-value IN list would scan the table. Built once per length
    (building it is costly) and cached; n stays well under SQLite's expression depth
    limit (1,000).
    """
    t = PAIRS
    return select(
        t.c.signatory,
        t.c.statement,
        t.c.active,
        t.c.last_signed_at,
        t.c.idx,
        t.c.kind,
        t.c.country,
        t.c.comment,
    ).where(
        or_(
            *(
                and_(t.c.signatory == bindparam(f"s{i}"), t.c.statement == bindparam(f"t{i}"))
                for i in range(n)
            )
        )
    )


class TxState:
    """A ``ledger.rules.StateView`` over the projection tables, inside one transaction.

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
            t = SIGNATORIES
            rows = self.conn.execute(
                select(t.c.id, t.c.kind, t.c.country, t.c.current_key, t.c.active).where(
                    t.c.id.in_(chunk)
                )
            )
            for r in rows:
                self.sigs[bytes(r.id)] = _Sig(r.kind, r.country, bytes(r.current_key), r.active)

    def _load_keys(self, hashes: Iterable[bytes]) -> None:
        todo = [h for h in set(hashes) if h not in self.keys]
        for chunk in chunks(todo):
            for h in chunk:
                self.keys[h] = None
            t = KEYS
            rows = self.conn.execute(
                select(t.c.key_hash, t.c.signatory, t.c.public_key, t.c.revoked, t.c.idx).where(
                    t.c.key_hash.in_(chunk)
                )
            )
            for r in rows:
                self.keys[bytes(r.key_hash)] = _Key(
                    bytes(r.signatory), bytes(r.public_key), r.revoked, r.idx
                )

    def _load_statements(self, ids: Iterable[bytes]) -> None:
        todo = [i for i in set(ids) if i not in self.stmts]
        for chunk in chunks(todo):
            for i in chunk:
                self.stmts[i] = False
            rows = self.conn.execute(select(STATEMENTS.c.id).where(STATEMENTS.c.id.in_(chunk)))
            for r in rows:
                self.stmts[bytes(r.id)] = True

    def _load_pairs(self, pairs: Iterable[tuple[bytes, bytes]]) -> None:
        todo = [p for p in set(pairs) if p not in self.pairs]
        for chunk in chunks(todo, PAIR_CHUNK):
            params: dict[str, bytes] = {}
            for i, p in enumerate(chunk):
                self.pairs[p] = None
                params[f"s{i}"], params[f"t{i}"] = p
            for r in self.conn.execute(_pairs_query(len(chunk)), params):
                self.pairs[(bytes(r.signatory), bytes(r.statement))] = _Pair(
                    r.active, r.last_signed_at, r.idx, r.kind, r.country, r.comment
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
            if isinstance(body, Endorsement) or body.TYPE == "withdraw":
                st = body.statement  # type: ignore[union-attr]
                stmts.add(st)
                pairs.add((body.signatory, st))
            elif body.TYPE == "rotate":
                keys.add(key_hash(body.new_key))  # type: ignore[union-attr]
            else:  # revoke
                keys.add(key_hash(body.key))  # type: ignore[union-attr]
        self._load_sigs(sigs)
        self._load_keys(keys)
        self._load_statements(stmts)
        self._load_pairs(pairs)

    # --- ledger.rules.StateView ------------------------------------------------------

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

    # --- applying effects --------------------------------------------------------------

    def apply(self, effect: Effect) -> None:
        kind, idx = effect.kind, effect.index
        if kind == "register":
            assert effect.record is not None
            body = effect.record.body
            assert isinstance(body, Registration)
            sid = effect.signatory
            self.sigs[sid] = _Sig(
                body.kind.value,
                body.country,
                body.key,
                True,
                new=True,
                row={
                    "id": sid,
                    "name": body.name,
                    "name_folded": body.name.casefold(),
                    "kind": body.kind.value,
                    "country": body.country,
                    "domain": body.domain,
                    "idx": idx,
                },
            )
            self.keys[sid] = _Key(sid, body.key, False, idx, new=True)
        elif kind == "statement":
            assert effect.record is not None
            body = effect.record.body
            assert isinstance(body, Statement)
            sid = effect.statement
            self.stmts[sid] = True
            self.new_statements.append(
                {
                    "id": sid,
                    "title": body.title,
                    "text": body.text,
                    "idx": idx,
                    "signed_at": body.signed_at,
                }
            )
            self.new_authors.extend(
                {"statement": sid, "position": i, "signatory": a}
                for i, a in enumerate(body.authors)
            )
        elif kind in ("endorse", "withdraw"):
            active = kind == "endorse"
            key = (effect.signatory, effect.statement)
            pair = self.pairs.get(key)
            comment = None
            if active:
                assert effect.record is not None and isinstance(effect.record.body, Endorsement)
                comment = effect.record.body.comment
            if pair is None:
                sig = self.sigs.get(effect.signatory)
                assert sig is not None  # the rules read it
                pair = _Pair(
                    active, effect.signed_at, idx, sig.kind, sig.country, comment, new=True
                )
                self.pairs[key] = pair
            else:
                pair.active = active
                pair.last_signed_at = effect.signed_at
                pair.idx = idx
                pair.comment = comment
                pair.dirty = True
            tk = (effect.statement, effect.signatory_kind)
            self.tally_delta[tk] = self.tally_delta.get(tk, 0) + (1 if active else -1)
        elif kind == "rotate":
            sig = self.sigs[effect.signatory]
            assert sig is not None
            sig.current_key = effect.new_key
            sig.dirty = True
            self.keys[key_hash(effect.new_key)] = _Key(
                effect.signatory, effect.new_key, False, idx, new=True
            )
        elif kind == "revoke":
            k = self.keys[key_hash(effect.old_key)]
            assert k is not None
            k.revoked = True
            k.dirty = True
            if effect.deactivates:
                sig = self.sigs[effect.signatory]
                assert sig is not None
                sig.active = False
                sig.dirty = True
        else:  # pragma: no cover - evaluate() makes no other kind
            raise AssertionError(kind)

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
        if upd_sigs:
            t = SIGNATORIES
            conn.execute(
                update(t)
                .where(t.c.id == bindparam("b_id"))
                .values(current_key=bindparam("b_key"), active=bindparam("b_active")),
                upd_sigs,
            )
        if upd_keys:
            t = KEYS
            conn.execute(
                update(t)
                .where(t.c.key_hash == bindparam("b_hash"))
                .values(revoked=bindparam("b_revoked")),
                upd_keys,
            )
        if upd_pairs:
            t = PAIRS
            conn.execute(
                update(t)
                .where(
                    and_(t.c.signatory == bindparam("b_sig"), t.c.statement == bindparam("b_st"))
                )
                .values(
                    active=bindparam("b_active"),
                    last_signed_at=bindparam("b_at"),
                    idx=bindparam("b_idx"),
                    comment=bindparam("b_comment"),
                ),
                upd_pairs,
            )
        deltas = [
            {"b_st": st, "b_kind": k, "b_delta": d} for (st, k), d in self.tally_delta.items() if d
        ]
        if deltas:
            t = TALLIES
            conn.execute(
                update(t)
                .where(and_(t.c.statement == bindparam("b_st"), t.c.kind == bindparam("b_kind")))
                .values(count=t.c.count + bindparam("b_delta")),
                deltas,
            )
        self.sigs.clear()
        self.keys.clear()
        self.stmts.clear()
        self.pairs.clear()
        self.new_statements.clear()
        self.new_authors.clear()
        self.tally_delta.clear()


class TxHashes:
    """A ``ledger.merkle.HashReader`` over the tree inside a sequencing transaction.

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
            rows = self.conn.execute(
                select(HASHES.c.id, HASHES.c.hash).where(HASHES.c.id.in_(chunk))
            )
            for r in rows:
                self.cache[r.id] = bytes(r.hash)

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


__all__ = ["CHUNK", "TxHashes", "TxState", "chunks", "insert_rows"]
