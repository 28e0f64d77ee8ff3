"""The storage conformance suite: what every Storage backend must do.

Each test takes the ``database_url`` (or ``storage``) fixture, so it runs on SQLite
and, when LEDGER_TEST_DATABASE_URL is set, on PostgreSQL. ``tests/test_storage.py``
collects the suite.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest
from conftest import ORIGIN, T0, Maker, log_signer
from logfactory import ORIGIN as FACTORY_ORIGIN
from logfactory import LogFactory
from sqlalchemy import insert, select, text
from sqlalchemy.exc import IntegrityError

import ledger.core.entry
from api.storage import models
from api.storage.base import Appended, OriginMismatchError, Rejected, StorageError
from api.storage.sql import SqlStorage
from keys.signer import NoteSigner
from ledger.core import merkle
from ledger.core.checkpoint import open_checkpoint
from ledger.core.entry import ZERO_HASH, parse_entry
from ledger.core.note import parse_vkey
from ledger.core.records import MAX_ENTRY_HEADER_SIZE, Kind, RecordSignature, SignedRecord
from ledger.core.state import MemoryState

# --- helpers -------------------------------------------------------------------------


def append(
    storage: SqlStorage, signer: NoteSigner, records: Sequence[SignedRecord], time_ms: int
) -> list[Appended | Rejected]:
    return storage.append_batch(records, signer=signer, time_ms=time_ms)


def appended(results: Sequence[Appended | Rejected]) -> list[Appended]:
    bad = [r for r in results if isinstance(r, Rejected)]
    assert not bad, bad
    return [r for r in results if isinstance(r, Appended)]


def verify_cp(data: bytes, signer: NoteSigner) -> tuple[int, bytes]:
    cp, _ = open_checkpoint(data, [parse_vkey(signer.vkey)], ORIGIN)
    return cp.size, cp.root


def memory_tree(storage: SqlStorage) -> merkle.MemoryHashStore:
    """The tree recomputed from the stored entries alone."""
    store = merkle.MemoryHashStore()
    for data in storage.read_entries(0, storage.head().size):
        store.append(merkle.leaf_hash(data))
    return store


def basic_log(maker: Maker) -> list[SignedRecord]:
    """Three signatories, a statement by two of them, an endorsement."""
    regs = [
        maker.register("alice", kind=Kind.STATE, country="FR", name="République"),
        maker.register("bob", kind=Kind.COMPANY, domain="bob.example.org"),
        maker.register("carol", kind=Kind.INDIVIDUAL, country="NL"),
    ]
    st = maker.statement(["alice", "bob"], title="On logs")
    return [*regs, st, maker.endorse("carol", st.record_id, comment="Yes.")]


def dump_projection(storage: SqlStorage) -> dict[str, list[tuple[object, ...]]]:
    out: dict[str, list[tuple[object, ...]]] = {}
    with storage.engine.connect() as conn:
        for name in models.PROJECTION_TABLES:
            table = models.metadata.tables[name]
            rows = conn.execute(select(table)).all()
            out[name] = sorted(
                tuple(bytes(v) if isinstance(v, bytes | memoryview) else v for v in r) for r in rows
            )
    return out


# --- the empty log and its checkpoint --------------------------------------------------


def test_empty_log_is_initialised_once(database_url: str, signer: NoteSigner) -> None:
    storage = SqlStorage(database_url, origin=ORIGIN)
    try:
        assert storage.head().checkpoint == b""
        head = storage.init_log(signer, time_ms=T0 * 1000)
        assert (head.size, head.root) == (0, merkle.EMPTY_ROOT)
        assert verify_cp(head.checkpoint, signer) == (0, merkle.EMPTY_ROOT)
        assert storage.init_log(signer) == head  # idempotent: no second checkpoint
        assert [c.size for c in storage.checkpoints()] == [0]
        assert storage.read_entries(0, 10) == []
    finally:
        storage.close()


def test_log_key_must_be_named_after_the_origin(storage: SqlStorage, maker: Maker) -> None:
    other = log_signer("ledger.example.org/other")
    with pytest.raises(StorageError, match="named after the origin"):
        append(storage, other, [maker.register("alice")], maker.time_ms)
    assert storage.head().size == 0


def test_database_of_another_origin_is_refused(database_url: str, signer: NoteSigner) -> None:
    first = SqlStorage(database_url, origin=ORIGIN)
    first.init_log(signer)
    first.close()
    with pytest.raises(OriginMismatchError, match=r"ledger\.example\.org/test"):
        SqlStorage(database_url, origin="ledger.example.org/other")


# --- appending -----------------------------------------------------------------------------


def test_append_assigns_consecutive_indices_and_links_entries(
    storage: SqlStorage, signer: NoteSigner, maker: Maker
) -> None:
    records = basic_log(maker)
    first = appended(append(storage, signer, records[:2], maker.time_ms))
    second = appended(append(storage, signer, records[2:], maker.time_ms + 5))
    results = first + second
    assert [r.index for r in results] == [0, 1, 2, 3, 4]
    assert not any(r.existing for r in results)
    assert {r.tree_size for r in first} == {2} and {r.tree_size for r in second} == {5}

    entries = [parse_entry(d) for d in storage.read_entries(0, 5)]
    prev = ZERO_HASH
    for i, (entry, data) in enumerate(zip(entries, storage.read_entries(0, 5), strict=True)):
        assert entry.index == i
        assert entry.prev == prev
        assert entry.record == records[i]
        assert merkle.leaf_hash(data) == results[i].leaf_hash
        assert storage.index_of_leaf(results[i].leaf_hash) == i
        assert storage.index_of_record(records[i].record_id) == i
        prev = results[i].leaf_hash
    # One time per batch, never going back.
    assert [e.time_ms for e in entries] == [maker.time_ms] * 2 + [maker.time_ms + 5] * 3

    head = storage.head()
    assert head.size == 5
    assert head.root == memory_tree(storage).root()
    assert verify_cp(head.checkpoint, signer) == (5, head.root)
    # The receipt checkpoint of each batch is the one committed with it.
    assert verify_cp(first[0].checkpoint, signer)[0] == 2
    assert storage.checkpoint_at(2) is not None
    assert [c.size for c in storage.checkpoints()] == [0, 2, 5]
    assert storage.index_of_leaf(bytes(32)) is None
    assert storage.index_of_record(bytes(32)) is None


def test_entry_time_never_decreases(storage: SqlStorage, signer: NoteSigner, maker: Maker) -> None:
    a = maker.register("alice")
    b = maker.register("bob")
    append(storage, signer, [a], maker.time_ms + 10_000)
    append(storage, signer, [b], maker.time_ms)  # a clock that went back
    times = [parse_entry(d).time_ms for d in storage.read_entries(0, 2)]
    assert times == [maker.time_ms + 10_000] * 2


def test_read_entries_clips_to_the_size(
    storage: SqlStorage, signer: NoteSigner, maker: Maker
) -> None:
    append(storage, signer, basic_log(maker), maker.time_ms)
    assert len(storage.read_entries(3, 100)) == 2
    assert storage.read_entries(5, 6) == []
    with pytest.raises(ValueError):
        storage.read_entries(3, 2)


def test_stored_hashes_and_proofs_match_the_memory_tree(
    storage: SqlStorage, signer: NoteSigner, maker: Maker
) -> None:
    # Batches of awkward sizes cross subtree boundaries at every level up to 2^6.
    sizes = [1, 2, 3, 1, 7, 16, 5, 31, 1, 33]
    n = 0
    reference = merkle.MemoryHashStore()
    checkpoints: list[tuple[int, bytes]] = []
    for k in sizes:
        batch = [maker.register(f"s{n + i}") for i in range(k)]
        for r in appended(append(storage, signer, batch, maker.time_ms)):
            reference.append(r.leaf_hash)
        n += k
        head = storage.head()
        assert head.root == reference.root()
        checkpoints.append((head.size, head.root))
    count = merkle.stored_hash_count(n)
    assert storage.read_hashes(range(count)) == reference.read_hashes(range(count))
    with pytest.raises(ValueError):
        storage.read_hashes([count])
    for size, root in checkpoints:
        assert merkle.tree_hash(size, storage) == root
        for index in {0, size // 2, size - 1}:
            proof = merkle.inclusion_proof(index, size, storage)
            assert proof == merkle.inclusion_proof(index, size, reference)
            leaf = reference.read_hashes([merkle.stored_hash_index(0, index)])[0]
            merkle.verify_inclusion(leaf, index, size, proof, root)
        proof = merkle.consistency_proof(size, n, storage)
        merkle.verify_consistency(size, n, root, reference.root(), proof)


# --- deduplication ------------------------------------------------------------------------


def test_resubmission_answers_the_existing_entry(
    storage: SqlStorage, signer: NoteSigner, maker: Maker
) -> None:
    records = basic_log(maker)
    first = appended(append(storage, signer, records, maker.time_ms))
    again = appended(append(storage, signer, [records[3], records[0]], maker.time_ms))
    assert [(r.index, r.leaf_hash, r.existing) for r in again] == [
        (3, first[3].leaf_hash, True),
        (0, first[0].leaf_hash, True),
    ]
    assert storage.head().size == 5
    assert [c.size for c in storage.checkpoints()] == [0, 5]  # nothing new was signed
    assert again[0].checkpoint == storage.head().checkpoint


def test_duplicates_within_a_batch_are_appended_once(
    storage: SqlStorage, signer: NoteSigner, maker: Maker
) -> None:
    a = maker.register("alice")
    results = appended(append(storage, signer, [a, a, a], maker.time_ms))
    assert [(r.index, r.existing) for r in results] == [(0, False), (0, True), (0, True)]
    assert storage.head().size == 1


def test_dedup_is_by_record_id_not_signature_bytes(
    storage: SqlStorage, signer: NoteSigner, maker: Maker
) -> None:
    a = maker.register("alice")
    append(storage, signer, [a], maker.time_ms)
    # Same body, other signature bytes (the storage does not verify signatures).
    other = SignedRecord(
        a.body, a.body_bytes, (RecordSignature(a.signatures[0].public_key, bytes(64)),)
    )
    assert other.record_id == a.record_id and other.encode() != a.encode()
    (r,) = appended(append(storage, signer, [other], maker.time_ms))
    assert (r.index, r.existing) == (0, True)
    assert storage.read_entries(0, 1)[0].endswith(a.encode())


def test_record_id_is_unique_by_constraint(
    storage: SqlStorage, signer: NoteSigner, maker: Maker
) -> None:
    appended(append(storage, signer, [maker.register("alice")], maker.time_ms))
    entries = models.metadata.tables["entries"]
    with storage.engine.connect() as conn, pytest.raises(IntegrityError), conn.begin():
        rid = conn.execute(select(entries.c.record_id)).scalar_one()
        conn.execute(insert(entries).values(idx=1, data=b"x", leaf_hash=bytes(32), record_id=rid))


# --- rules inside a batch -----------------------------------------------------------------


def test_rules_see_earlier_records_of_the_same_batch(
    storage: SqlStorage, signer: NoteSigner, maker: Maker
) -> None:
    alice = maker.register("alice")
    st = maker.statement(["alice"])
    bob = maker.register("bob")
    e1 = maker.endorse("bob", st.record_id)
    e2 = maker.endorse("bob", st.record_id)  # already endorsed, by the previous record
    unknown = maker.endorse("bob", bytes(32))
    stranger = maker.endorse("zoe", st.record_id)  # never registered
    w = maker.withdraw("bob", st.record_id)
    results = append(storage, signer, [alice, st, bob, e1, e2, unknown, stranger, w], maker.time_ms)
    kinds = [r.index if isinstance(r, Appended) else r.code for r in results]
    assert kinds == [0, 1, 2, 3, "already_endorsed", "unknown_statement", "unknown_signatory", 4]
    rejected = results[4]
    assert isinstance(rejected, Rejected)
    assert rejected.field == "statement" and "already endorses" in rejected.message
    assert storage.head().size == 5
    # The entries are contiguous: rejected records left no hole.
    assert [parse_entry(d).index for d in storage.read_entries(0, 5)] == [0, 1, 2, 3, 4]
    assert storage.statement(st.record_id).tallies["individual"] == 0  # type: ignore[union-attr]


def test_rejections_name_the_rule(storage: SqlStorage, signer: NoteSigner, maker: Maker) -> None:
    wrong_log = maker.register("alice", log="ledger.example.org/elsewhere")
    too_old = maker.register("bob", signed_at=T0 - 40 * 86400)
    future = maker.register("carol", signed_at=maker.t + 3600)
    results = storage.append_batch(
        [wrong_log, too_old, future], signer=signer, time_ms=maker.time_ms, max_age_s=86400
    )
    assert [getattr(r, "code", None) for r in results] == ["wrong_log", "too_old", "clock_skew"]
    assert storage.head().size == 0
    assert [c.size for c in storage.checkpoints()] == [0]
    # With no age limit, the old record is fine.
    (r,) = storage.append_batch([too_old], signer=signer, time_ms=maker.time_ms, max_age_s=None)
    assert isinstance(r, Appended) and r.index == 0


def test_keys_rotations_and_revocations(
    storage: SqlStorage, signer: NoteSigner, maker: Maker
) -> None:
    recs = [maker.register("alice"), maker.register("bob")]
    st = maker.statement(["bob"])
    rot = maker.rotate("alice", "alice-2")
    old_key = maker.endorse("alice", st.record_id, signer="alice")  # rotated away
    new_key = maker.endorse("alice", st.record_id)
    revoke_old = maker.revoke("alice", "alice", signer="alice")  # a key may revoke itself
    revoke_current = maker.revoke("alice", "alice-2")
    after = maker.withdraw("alice", st.record_id)  # the signatory is deactivated
    results = append(
        storage,
        signer,
        [*recs, st, rot, old_key, new_key, revoke_old, revoke_current, after],
        maker.time_ms,
    )
    codes = [r.index if isinstance(r, Appended) else r.code for r in results]
    assert codes == [0, 1, 2, 3, "key_rotated", 4, 5, 6, "key_revoked"]
    view = storage.signatory(maker.sid("alice"))
    assert view is not None and not view.active
    assert view.keys == [maker.sid("alice").hex(), maker.sid("alice-2").hex()]
    assert storage.signatory(maker.sid("alice-2")) == view  # found by any of its keys
    # Its endorsement, made before the revocation, still counts (spec rule 11).
    assert storage.statement(st.record_id).tallies["individual"] == 1  # type: ignore[union-attr]


# --- the projection -------------------------------------------------------------------------


def test_projection_queries(storage: SqlStorage, signer: NoteSigner, maker: Maker) -> None:
    records = basic_log(maker)
    extra = [
        maker.register("dave", kind=Kind.STATE, country="FR", name="Dave_100%"),
        maker.register("erin", kind=Kind.CIVIL_SOCIETY, domain="erin.org"),
    ]
    st = records[3]
    more = [maker.endorse(x, st.record_id) for x in ("alice", "dave", "erin")]
    append(storage, signer, [*records, *extra, *more], maker.time_ms)
    append(storage, signer, [maker.withdraw("alice", st.record_id)], maker.time_ms)

    (view,) = storage.statements()
    assert view == storage.statement(st.record_id)
    assert view.statement == st.record_id.hex() and view.title == "On logs"
    assert view.text == "We state this.\n" and view.index == 3
    assert view.authors == [maker.sid("alice").hex(), maker.sid("bob").hex()]
    assert view.tallies == {
        "state": 1,
        "company": 0,
        "civil-society": 1,
        "individual": 1,
        "other": 0,
    }
    assert view.total == 3
    assert storage.statement(bytes(32)) is None
    assert storage.statements(offset=1) == []

    names = [e.name for e in storage.endorsements(st.record_id)]
    assert names == ["Signatory carol", "Dave_100%", "Signatory erin"]  # log order; no alice
    assert [e.name for e in storage.endorsements(st.record_id, kind="state")] == ["Dave_100%"]
    assert [e.name for e in storage.endorsements(st.record_id, country="NL")] == ["Signatory carol"]
    page = storage.endorsements(st.record_id, offset=1, limit=1)
    assert [e.name for e in page] == ["Dave_100%"]
    (carol,) = storage.endorsements(st.record_id, limit=1)
    assert carol.comment == "Yes." and carol.index == 4 and carol.country == "NL"
    assert carol.signatory == maker.sid("carol").hex() and carol.statement == st.record_id.hex()

    alice = storage.signatory(maker.sid("alice"))
    assert alice is not None
    assert (alice.name, alice.kind, alice.country, alice.index) == ("République", "state", "FR", 0)
    assert alice.active and alice.keys == [maker.sid("alice").hex()]
    assert storage.signatory(bytes(32)) is None

    def search(q: str) -> list[str]:
        return [s.name for s in storage.search_signatories(q)]

    assert search("RÉPUB") == ["République"]
    assert search("signatory") == ["Signatory bob", "Signatory carol", "Signatory erin"]
    assert search("100%") == ["Dave_100%"]
    assert search("%") == ["Dave_100%"]  # wildcards are literal
    assert search("erin.org") == ["Signatory erin"]
    assert search("example.org") == ["Signatory bob"]  # a parent domain
    assert search("  ") == []
    assert storage.signatory_counts() == {
        "state": 2,
        "company": 1,
        "civil-society": 1,
        "individual": 1,
        "other": 0,
    }


def test_projection_equals_a_replay_and_rebuilds_identically(
    storage: SqlStorage, signer: NoteSigner
) -> None:
    assert FACTORY_ORIGIN == ORIGIN
    factory = LogFactory(seed="conformance")
    factory.grow(700)
    entries = [parse_entry(e) for e in factory.entries]
    for i in range(0, len(entries), 97):
        batch = entries[i : i + 97]
        results = storage.append_batch(
            [e.record for e in batch], signer=signer, time_ms=batch[-1].time_ms, max_age_s=None
        )
        appended(results)

    # Replaying the stored entries with the verifier's state gives the same tallies.
    state = MemoryState(ORIGIN, max_age_s=None)
    for data in storage.read_entries(0, storage.head().size):
        state.append(parse_entry(data), merkle.leaf_hash(data))
    summary = state.summary()
    assert storage.signatory_counts() == summary["signatories_by_kind"]
    views = storage.statements(limit=1000)
    assert [(v.statement, v.index, v.title, v.total, v.tallies) for v in views] == [
        (s["id"], s["index"], s["title"], s["endorsements"], s["endorsements_by_kind"])
        for s in summary["statements"]  # type: ignore[attr-defined]
    ]
    for sig in state.signatories.values():
        view = storage.signatory(sig.signatory)
        assert view is not None
        assert (view.active, view.kind, view.index) == (sig.active, sig.kind, sig.index)

    before = dump_projection(storage)
    assert storage.rebuild_projection() == len(entries)
    assert dump_projection(storage) == before


# --- concurrency, compare-and-swap, restart -------------------------------------------------


def test_head_compare_and_swap_refuses_a_moved_head(
    storage: SqlStorage, signer: NoteSigner, maker: Maker
) -> None:
    append(storage, signer, [maker.register("alice")], maker.time_ms)
    with pytest.raises(StorageError, match="head moved"), storage._write() as (conn, head):
        # Another writer (that ignored the lock) moved the head under us.
        conn.execute(text("UPDATE log_head SET size = size + 1"))
        storage._cas_head(
            conn,
            head,
            size=head.size + 1,
            root=head.root,
            checkpoint=b"x",
            last_leaf_hash=head.last_leaf_hash,
            time_ms=head.last_time_ms,
        )
    assert storage.head().size == 1  # rolled back


def test_two_storages_on_one_database_make_one_log(
    database_url: str, signer: NoteSigner, storage: SqlStorage
) -> None:
    other = SqlStorage(database_url, origin=ORIGIN)
    makers = [Maker(start=T0 + 100_000 * k) for k in range(2)]
    errors: list[BaseException] = []

    def work(s: SqlStorage, m: Maker, k: int) -> None:
        try:
            for i in range(15):
                recs = [m.register(f"w{k}-{i}-{j}") for j in range(1 + i % 4)]
                appended(s.append_batch(recs, signer=signer, time_ms=(T0 + 300_000) * 1000))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [
        threading.Thread(target=work, args=(s, m, k))
        for k, (s, m) in enumerate(zip((storage, other), makers, strict=True))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    other.close()
    assert not errors
    head = storage.head()
    assert head.size == 2 * sum(1 + i % 4 for i in range(15))
    entries = [parse_entry(d) for d in storage.read_entries(0, head.size)]
    assert [e.index for e in entries] == list(range(head.size))
    assert head.root == memory_tree(storage).root()
    for c in storage.checkpoints(limit=10_000):
        assert merkle.tree_hash(c.size, storage) == c.root
        assert verify_cp(c.checkpoint, signer) == (c.size, c.root)


def test_state_survives_a_restart(database_url: str, signer: NoteSigner, maker: Maker) -> None:
    s1 = SqlStorage(database_url, origin=ORIGIN)
    s1.init_log(signer, time_ms=T0 * 1000)
    records = basic_log(maker)
    append(s1, signer, records, maker.time_ms)
    old = s1.head()
    s1.close()

    s2 = SqlStorage(database_url, origin=ORIGIN)
    try:
        assert s2.head() == old
        assert s2.init_log(signer) == old
        # The projection survived too: the rules still know alice and the statement.
        again = append(s2, signer, [records[4]], maker.time_ms)
        assert isinstance(again[0], Appended) and again[0].existing
        more = appended(
            append(s2, signer, [maker.endorse("alice", records[3].record_id)], maker.time_ms)
        )
        assert more[0].index == 5
        new = s2.head()
        proof = merkle.consistency_proof(old.size, new.size, s2)
        merkle.verify_consistency(old.size, new.size, old.root, new.root, proof)
        assert verify_cp(new.checkpoint, signer) == (6, new.root)
    finally:
        s2.close()


def test_durability_settings(storage: SqlStorage) -> None:
    d = storage.durability()
    if storage.dialect == "sqlite":
        assert d.settings == {"journal_mode": "wal", "synchronous": "2"}
        assert d.warnings == []
    else:
        assert set(d.settings) == {"fsync", "synchronous_commit", "full_page_writes"}
        assert all(isinstance(w, str) for w in d.warnings)


def test_a_record_whose_entry_is_too_large_is_rejected(
    storage: SqlStorage, signer: NoteSigner, maker: Maker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Records are limited so that every entry fits; check the storage's own guard
    # by making the entry limit smaller than a registration's entry.
    big = maker.register("alice", name="A" * 150)
    small = maker.register("b")
    monkeypatch.setattr(
        ledger.core.entry, "MAX_ENTRY_SIZE", MAX_ENTRY_HEADER_SIZE + len(small.encode())
    )
    results = append(storage, signer, [big, small], maker.time_ms)
    assert isinstance(results[0], Rejected) and results[0].code == "entry_too_large"
    assert isinstance(results[1], Appended) and results[1].index == 0
