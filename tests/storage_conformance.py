"""The storage conformance suite: what every storage backend must do.

It takes a factory, the ``make_storage`` fixture of the module that collects it
(``tests/test_storage.py``: SqlStorage on SQLite and, when LEDGER_TEST_DATABASE_URL
is set, on PostgreSQL): ``make_storage(origin=ORIGIN)`` opens a new handle on one
fresh database per test (the same database for every call of one test), closed at
the end of the test. The suite uses only the public seams of ``api.storage.base``
(``LogWriter``, ``LogReader``, ``ProjectionReader``), plus ``rebuild_projection``
and ``close``; the tests of SQL internals are in ``tests/test_storage_sql.py``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from conftest import ORIGIN, T0, Maker, log_signer
from logfactory import ORIGIN as FACTORY_ORIGIN
from logfactory import LogFactory

import ledger.core.entry
from api.checkpoints import CheckpointPublisher
from api.storage.base import Appended, OriginMismatchError, Rejected, StorageError
from keys.signer import NoteSigner
from ledger.core import merkle
from ledger.core.checkpoint import open_checkpoint
from ledger.core.entry import ZERO_HASH, parse_entry
from ledger.core.note import parse_vkey
from ledger.core.records import MAX_ENTRY_HEADER_SIZE, Kind, RecordSignature, SignedRecord
from ledger.core.state import MemoryState

# --- helpers -------------------------------------------------------------------------


#: ``make_storage(origin=ORIGIN)``: a new handle on the test's database.
MakeStorage = Callable[..., Any]


@pytest.fixture
def store(make_storage: MakeStorage) -> Iterator[Any]:
    """A handle on the test's database, claimed for ORIGIN, nothing published yet."""
    s = make_storage()
    s.init_log()
    yield s
    s.close()


def append(
    store: Any,
    signer: NoteSigner,
    records: Sequence[SignedRecord],
    time_ms: int,
    **options: Any,
) -> list[Appended | Rejected]:
    """Append a batch, then publish its checkpoint (as the sequencer does)."""
    outcome = store.append_batch(records, time_ms=time_ms, **options)
    return CheckpointPublisher(store, signer, None).publish_batch(outcome)


def appended(results: Sequence[Appended | Rejected]) -> list[Appended]:
    bad = [r for r in results if isinstance(r, Rejected)]
    assert not bad, bad
    return [r for r in results if isinstance(r, Appended)]


def verify_cp(data: bytes, signer: NoteSigner) -> tuple[int, bytes]:
    cp, _ = open_checkpoint(data, [parse_vkey(signer.vkey)], ORIGIN)
    return cp.size, cp.root


def memory_tree(store: Any) -> merkle.MemoryHashStore:
    """The tree recomputed from the stored entries alone."""
    tree = merkle.MemoryHashStore()
    for data in store.read_entries(0, store.head().size):
        tree.append(merkle.leaf_hash(data))
    return tree


def basic_log(maker: Maker) -> list[SignedRecord]:
    """Three signatories, a statement by two of them, an endorsement."""
    regs = [
        maker.register("alice", kind=Kind.STATE, country="FR", name="République"),
        maker.register("bob", kind=Kind.COMPANY, domain="bob.example.org"),
        maker.register("carol", kind=Kind.INDIVIDUAL, country="NL"),
    ]
    st = maker.statement(["alice", "bob"], title="On logs")
    return [*regs, st, maker.endorse("carol", st.record_id, comment="Yes.")]


def dump_projection(store: Any, signatories: Sequence[bytes] = ()) -> dict[str, list[object]]:
    """Everything the projection readers show, statement by statement, and the views
    of ``signatories`` (ids)."""
    statements = store.statements(limit=100_000)
    out: dict[str, list[object]] = {"statements": statements, "endorsements": []}
    for v in statements:
        out["endorsements"].append(store.endorsements(bytes.fromhex(v.statement), limit=100_000))
    out["counts"] = [store.signatory_counts()]
    out["signatories"] = [store.signatory(sid) for sid in signatories]
    return out


# --- the empty log and its checkpoint --------------------------------------------------


def test_empty_log_is_claimed_then_published_once(
    make_storage: MakeStorage, signer: NoteSigner
) -> None:
    storage = make_storage()
    try:
        assert storage.head().checkpoint == b""
        tree = storage.init_log()  # claims the database; signs nothing
        assert (tree.size, tree.root) == (0, merkle.EMPTY_ROOT)
        assert storage.head().checkpoint == b"" and storage.checkpoints() == []
        publisher = CheckpointPublisher(storage, signer, None)
        head = publisher.publish_head()
        assert (head.size, head.root) == (0, merkle.EMPTY_ROOT)
        assert verify_cp(head.checkpoint, signer) == (0, merkle.EMPTY_ROOT)
        assert storage.head() == head
        # Idempotent, also from another publisher: no second checkpoint.
        assert CheckpointPublisher(storage, signer, None).publish_head() == head
        assert [c.size for c in storage.checkpoints()] == [0]
        assert storage.read_entries(0, 10) == []
    finally:
        storage.close()


def test_log_key_must_be_named_after_the_origin(store: Any, maker: Maker) -> None:
    other = log_signer("ledger.example.org/other")
    with pytest.raises(StorageError, match="named after the origin"):
        CheckpointPublisher(store, other, None)


def test_database_of_another_origin_is_refused(make_storage: MakeStorage) -> None:
    first = make_storage()
    first.init_log()
    first.close()
    with pytest.raises(OriginMismatchError, match=r"ledger\.example\.org/test"):
        make_storage(origin="ledger.example.org/other")


def test_the_published_checkpoint_never_goes_back(
    store: Any, signer: NoteSigner, maker: Maker
) -> None:
    publisher = CheckpointPublisher(store, signer, None)
    small = store.append_batch([maker.register("alice")], time_ms=maker.time_ms)
    large = store.append_batch([maker.register("bob")], time_ms=maker.time_ms)
    assert publisher.publish(large.size, large.root).size == 2
    # A publisher that lags (another process's) gets the larger checkpoint back.
    late = CheckpointPublisher(store, signer, None)
    assert late.publish(small.size, small.root) == store.head()
    assert store.head().size == 2
    (result,) = late.publish_batch(small)
    assert isinstance(result, Appended) and result.published.size == 2
    assert result.proof is None  # its proof was for size 1: the answer reads
    # Only committed trees are published.
    with pytest.raises(StorageError, match="committed tree"):
        store.replace_checkpoint(3, bytes(32), b"x")
    with pytest.raises(StorageError, match="committed tree"):
        CheckpointPublisher(store, signer, None).publish(2, bytes(32))
    assert [c.size for c in store.checkpoints()] == [2]


# --- appending -----------------------------------------------------------------------------


def test_append_assigns_consecutive_indices_and_links_entries(
    store: Any, signer: NoteSigner, maker: Maker
) -> None:
    records = basic_log(maker)
    first = appended(append(store, signer, records[:2], maker.time_ms))
    second = appended(append(store, signer, records[2:], maker.time_ms + 5))
    results = first + second
    assert [r.index for r in results] == [0, 1, 2, 3, 4]
    assert not any(r.existing for r in results)
    assert {r.published.size for r in first} == {2} and {r.published.size for r in second} == {5}

    entries = [parse_entry(d) for d in store.read_entries(0, 5)]
    prev = ZERO_HASH
    for i, (entry, data) in enumerate(zip(entries, store.read_entries(0, 5), strict=True)):
        assert entry.index == i
        assert entry.prev == prev
        assert entry.record == records[i]
        assert merkle.leaf_hash(data) == results[i].leaf_hash
        assert store.index_of_leaf(results[i].leaf_hash) == i
        assert store.index_of_record(records[i].record_id) == i
        prev = results[i].leaf_hash
    # One time per batch, never going back.
    assert [e.time_ms for e in entries] == [maker.time_ms] * 2 + [maker.time_ms + 5] * 3

    head = store.head()
    assert head.size == 5
    assert head.root == memory_tree(store).root()
    assert verify_cp(head.checkpoint, signer) == (5, head.root)
    # The receipt checkpoint of each batch is the one published after it.
    assert verify_cp(first[0].published.checkpoint, signer)[0] == 2
    assert store.checkpoint_at(2) is not None
    assert [c.size for c in store.checkpoints()] == [2, 5]
    assert store.index_of_leaf(bytes(32)) is None
    assert store.index_of_record(bytes(32)) is None


def test_entry_time_never_decreases(store: Any, signer: NoteSigner, maker: Maker) -> None:
    a = maker.register("alice")
    b = maker.register("bob")
    append(store, signer, [a], maker.time_ms + 10_000)
    append(store, signer, [b], maker.time_ms)  # a clock that went back
    times = [parse_entry(d).time_ms for d in store.read_entries(0, 2)]
    assert times == [maker.time_ms + 10_000] * 2


def test_read_entries_clips_to_the_size(store: Any, signer: NoteSigner, maker: Maker) -> None:
    append(store, signer, basic_log(maker), maker.time_ms)
    assert len(store.read_entries(3, 100)) == 2
    assert store.read_entries(5, 6) == []
    with pytest.raises(ValueError):
        store.read_entries(3, 2)


def test_stored_hashes_and_proofs_match_the_memory_tree(
    store: Any, signer: NoteSigner, maker: Maker
) -> None:
    # Batches of awkward sizes cross subtree boundaries at every level up to 2^6.
    sizes = [1, 2, 3, 1, 7, 16, 5, 31, 1, 33]
    n = 0
    reference = merkle.MemoryHashStore()
    checkpoints: list[tuple[int, bytes]] = []
    for k in sizes:
        batch = [maker.register(f"s{n + i}") for i in range(k)]
        for r in appended(append(store, signer, batch, maker.time_ms)):
            reference.append(r.leaf_hash)
        n += k
        head = store.head()
        assert head.root == reference.root()
        checkpoints.append((head.size, head.root))
    count = merkle.stored_hash_count(n)
    assert store.read_hashes(range(count)) == reference.read_hashes(range(count))
    with pytest.raises(ValueError):
        store.read_hashes([count])
    for size, root in checkpoints:
        assert merkle.tree_hash(size, store) == root
        for index in {0, size // 2, size - 1}:
            proof = merkle.inclusion_proof(index, size, store)
            assert proof == merkle.inclusion_proof(index, size, reference)
            leaf = reference.read_hashes([merkle.stored_hash_index(0, index)])[0]
            merkle.verify_inclusion(leaf, index, size, proof, root)
        proof = merkle.consistency_proof(size, n, store)
        merkle.verify_consistency(size, n, root, reference.root(), proof)


# --- deduplication ------------------------------------------------------------------------


def test_resubmission_answers_the_existing_entry(
    store: Any, signer: NoteSigner, maker: Maker
) -> None:
    records = basic_log(maker)
    first = appended(append(store, signer, records, maker.time_ms))
    again = appended(append(store, signer, [records[3], records[0]], maker.time_ms))
    assert [(r.index, r.leaf_hash, r.existing) for r in again] == [
        (3, first[3].leaf_hash, True),
        (0, first[0].leaf_hash, True),
    ]
    assert store.head().size == 5
    assert [c.size for c in store.checkpoints()] == [5]  # nothing new was published
    assert again[0].published == store.head()


def test_duplicates_within_a_batch_are_appended_once(
    store: Any, signer: NoteSigner, maker: Maker
) -> None:
    a = maker.register("alice")
    results = appended(append(store, signer, [a, a, a], maker.time_ms))
    assert [(r.index, r.existing) for r in results] == [(0, False), (0, True), (0, True)]
    assert store.head().size == 1


def test_dedup_is_by_record_id_not_signature_bytes(
    store: Any, signer: NoteSigner, maker: Maker
) -> None:
    a = maker.register("alice")
    append(store, signer, [a], maker.time_ms)
    # Same body, other signature bytes (the storage does not verify signatures).
    other = SignedRecord(
        a.body, a.body_bytes, (RecordSignature(a.signatures[0].public_key, bytes(64)),)
    )
    assert other.record_id == a.record_id and other.encode() != a.encode()
    (r,) = appended(append(store, signer, [other], maker.time_ms))
    assert (r.index, r.existing) == (0, True)
    assert store.read_entries(0, 1)[0].endswith(a.encode())


# --- rules inside a batch -----------------------------------------------------------------


def test_rules_see_earlier_records_of_the_same_batch(
    store: Any, signer: NoteSigner, maker: Maker
) -> None:
    alice = maker.register("alice")
    st = maker.statement(["alice"])
    bob = maker.register("bob")
    e1 = maker.endorse("bob", st.record_id)
    e2 = maker.endorse("bob", st.record_id)  # already endorsed, by the previous record
    unknown = maker.endorse("bob", bytes(32))
    stranger = maker.endorse("zoe", st.record_id)  # never registered
    w = maker.withdraw("bob", st.record_id)
    results = append(store, signer, [alice, st, bob, e1, e2, unknown, stranger, w], maker.time_ms)
    kinds = [r.index if isinstance(r, Appended) else r.code for r in results]
    assert kinds == [0, 1, 2, 3, "already_endorsed", "unknown_statement", "unknown_signatory", 4]
    rejected = results[4]
    assert isinstance(rejected, Rejected)
    assert rejected.field == "statement" and "already endorses" in rejected.message
    assert store.head().size == 5
    # The entries are contiguous: rejected records left no hole.
    assert [parse_entry(d).index for d in store.read_entries(0, 5)] == [0, 1, 2, 3, 4]
    assert store.statement(st.record_id).tallies["individual"] == 0  # type: ignore[union-attr]


def test_rejections_name_the_rule(store: Any, signer: NoteSigner, maker: Maker) -> None:
    wrong_log = maker.register("alice", log="ledger.example.org/elsewhere")
    too_old = maker.register("bob", signed_at=T0 - 40 * 86400)
    future = maker.register("carol", signed_at=maker.t + 3600)
    outcome = store.append_batch(
        [wrong_log, too_old, future], time_ms=maker.time_ms, max_age_s=86400
    )
    codes = [getattr(r, "code", None) for r in outcome.results]
    assert codes == ["wrong_log", "too_old", "clock_skew"]
    assert (outcome.size, store.init_log().size) == (0, 0)
    # With no age limit, the old record is fine.
    (r,) = append(store, signer, [too_old], maker.time_ms, max_age_s=None)
    assert isinstance(r, Appended) and r.index == 0


def test_keys_rotations_and_revocations(store: Any, signer: NoteSigner, maker: Maker) -> None:
    recs = [maker.register("alice"), maker.register("bob")]
    st = maker.statement(["bob"])
    rot = maker.rotate("alice", "alice-2")
    old_key = maker.endorse("alice", st.record_id, signer="alice")  # rotated away
    new_key = maker.endorse("alice", st.record_id)
    revoke_old = maker.revoke("alice", "alice", signer="alice")  # a key may revoke itself
    revoke_current = maker.revoke("alice", "alice-2")
    after = maker.withdraw("alice", st.record_id)  # the signatory is deactivated
    results = append(
        store,
        signer,
        [*recs, st, rot, old_key, new_key, revoke_old, revoke_current, after],
        maker.time_ms,
    )
    codes = [r.index if isinstance(r, Appended) else r.code for r in results]
    assert codes == [0, 1, 2, 3, "key_rotated", 4, 5, 6, "key_revoked"]
    view = store.signatory(maker.sid("alice"))
    assert view is not None and not view.active
    assert view.keys == [maker.sid("alice").hex(), maker.sid("alice-2").hex()]
    assert store.signatory(maker.sid("alice-2")) == view  # found by any of its keys
    # Its endorsement, made before the revocation, still counts (spec rule 11).
    assert store.statement(st.record_id).tallies["individual"] == 1  # type: ignore[union-attr]


# --- the projection -------------------------------------------------------------------------


def test_projection_queries(store: Any, signer: NoteSigner, maker: Maker) -> None:
    records = basic_log(maker)
    extra = [
        maker.register("dave", kind=Kind.STATE, country="FR", name="Dave_100%"),
        maker.register("erin", kind=Kind.CIVIL_SOCIETY, domain="erin.org"),
    ]
    st = records[3]
    more = [maker.endorse(x, st.record_id) for x in ("alice", "dave", "erin")]
    append(store, signer, [*records, *extra, *more], maker.time_ms)
    append(store, signer, [maker.withdraw("alice", st.record_id)], maker.time_ms)

    (view,) = store.statements()
    assert view == store.statement(st.record_id)
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
    assert store.statement(bytes(32)) is None
    assert store.statements(offset=1) == []

    names = [e.name for e in store.endorsements(st.record_id)]
    assert names == ["Signatory carol", "Dave_100%", "Signatory erin"]  # log order; no alice
    assert [e.name for e in store.endorsements(st.record_id, kind="state")] == ["Dave_100%"]
    assert [e.name for e in store.endorsements(st.record_id, country="NL")] == ["Signatory carol"]
    page = store.endorsements(st.record_id, offset=1, limit=1)
    assert [e.name for e in page] == ["Dave_100%"]
    (carol,) = store.endorsements(st.record_id, limit=1)
    assert carol.comment == "Yes." and carol.index == 4 and carol.country == "NL"
    assert carol.signatory == maker.sid("carol").hex() and carol.statement == st.record_id.hex()

    alice = store.signatory(maker.sid("alice"))
    assert alice is not None
    assert (alice.name, alice.kind, alice.country, alice.index) == ("République", "state", "FR", 0)
    assert alice.active and alice.keys == [maker.sid("alice").hex()]
    assert store.signatory(bytes(32)) is None

    def search(q: str) -> list[str]:
        return [s.name for s in store.search_signatories(q)]

    assert search("RÉPUB") == ["République"]
    assert search("signatory") == ["Signatory bob", "Signatory carol", "Signatory erin"]
    assert search("100%") == ["Dave_100%"]
    assert search("%") == ["Dave_100%"]  # wildcards are literal
    assert search("erin.org") == ["Signatory erin"]
    assert search("example.org") == ["Signatory bob"]  # a parent domain
    assert search("  ") == []
    assert store.signatory_counts() == {
        "state": 2,
        "company": 1,
        "civil-society": 1,
        "individual": 1,
        "other": 0,
    }


def test_projection_equals_a_replay_and_rebuilds_identically(
    store: Any, signer: NoteSigner
) -> None:
    assert FACTORY_ORIGIN == ORIGIN
    factory = LogFactory(seed="conformance")
    factory.grow(700)
    entries = [parse_entry(e) for e in factory.entries]
    for i in range(0, len(entries), 97):
        batch = entries[i : i + 97]
        outcome = store.append_batch(
            [e.record for e in batch], time_ms=batch[-1].time_ms, max_age_s=None
        )
        assert not [r for r in outcome.results if isinstance(r, Rejected)]
    CheckpointPublisher(store, signer, None).publish_head()

    # Replaying the stored entries with the verifier's state gives the same tallies.
    state = MemoryState(ORIGIN, max_age_s=None)
    for data in store.read_entries(0, store.head().size):
        state.append(parse_entry(data), merkle.leaf_hash(data))
    summary = state.summary()
    assert store.signatory_counts() == summary["signatories_by_kind"]
    views = store.statements(limit=1000)
    assert [(v.statement, v.index, v.title, v.total, v.tallies) for v in views] == [
        (s["id"], s["index"], s["title"], s["endorsements"], s["endorsements_by_kind"])
        for s in summary["statements"]  # type: ignore[attr-defined]
    ]
    for sig in state.signatories.values():
        view = store.signatory(sig.signatory)
        assert view is not None
        assert (view.active, view.kind, view.index) == (sig.active, sig.kind, sig.index)

    ids = list(state.signatories)
    before = dump_projection(store, ids)
    assert len(before["signatories"]) == len(ids) and None not in before["signatories"]
    assert store.rebuild_projection() == len(entries)
    assert dump_projection(store, ids) == before


# --- concurrency, compare-and-swap, restart -------------------------------------------------


def test_two_storages_on_one_database_make_one_log(
    make_storage: MakeStorage, signer: NoteSigner, store: Any
) -> None:
    other = make_storage()
    makers = [Maker(start=T0 + 100_000 * k) for k in range(2)]
    errors: list[BaseException] = []

    def work(s: Any, m: Maker, k: int) -> None:
        try:
            for i in range(15):
                recs = [m.register(f"w{k}-{i}-{j}") for j in range(1 + i % 4)]
                for r in appended(append(s, signer, recs, (T0 + 300_000) * 1000)):
                    assert r.index < r.published.size
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [
        threading.Thread(target=work, args=(s, m, k))
        for k, (s, m) in enumerate(zip((store, other), makers, strict=True))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    other.close()
    assert not errors
    head = store.head()
    assert head.size == 2 * sum(1 + i % 4 for i in range(15))
    entries = [parse_entry(d) for d in store.read_entries(0, head.size)]
    assert [e.index for e in entries] == list(range(head.size))
    assert head.root == memory_tree(store).root()
    for c in store.checkpoints(limit=10_000):
        assert merkle.tree_hash(c.size, store) == c.root
        assert verify_cp(c.checkpoint, signer) == (c.size, c.root)


def test_state_survives_a_restart(
    make_storage: MakeStorage, signer: NoteSigner, maker: Maker
) -> None:
    s1 = make_storage()
    s1.init_log()
    records = basic_log(maker)
    append(s1, signer, records, maker.time_ms)
    old = s1.head()
    s1.close()

    s2 = make_storage()
    try:
        assert s2.head() == old
        assert CheckpointPublisher(s2, signer, None).publish_head() == old
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


def test_a_record_whose_entry_is_too_large_is_rejected(
    store: Any, signer: NoteSigner, maker: Maker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Records are limited so that every entry fits; check the storage's own guard
    # by making the entry limit smaller than a registration's entry.
    big = maker.register("alice", name="A" * 150)
    small = maker.register("b")
    monkeypatch.setattr(
        ledger.core.entry, "MAX_ENTRY_SIZE", MAX_ENTRY_HEADER_SIZE + len(small.encode())
    )
    results = append(store, signer, [big, small], maker.time_ms)
    assert isinstance(results[0], Rejected) and results[0].code == "entry_too_large"
    assert isinstance(results[1], Appended) and results[1].index == 0
