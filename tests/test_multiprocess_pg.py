"""Several processes sequencing into one database make exactly one log.

Each process opens its own SqlStorage and runs its own Sequencer on the same
database (what ``--workers N`` or several ``ledger serve`` do), and submits, from two
threads: registrations and endorsements of its own signatories, in order, and a
shared set of records that every process submits. Then the test reads the database
back and checks that it holds one log: indices 0..n-1 exactly once, each entry linked
to its predecessor, times never decreasing, every record exactly once, the stored
tree equal to a recomputation from the entries, and every checkpoint ever signed
verifying and consistent with the final tree. It runs on PostgreSQL (the production
case) when LEDGER_TEST_DATABASE_URL is set, and on SQLite.
"""

from __future__ import annotations

import multiprocessing
import threading
from typing import Any

from conftest import ORIGIN, Maker, log_signer

from api.checkpoints import CheckpointPublisher
from api.sequencing.batch import Batch, InThreadAppender
from api.sequencing.queue import Sequencer
from api.storage.base import Appended
from api.storage.sql import SqlStorage
from keys.signer import NoteSigner
from ledger.core import merkle
from ledger.core.checkpoint import open_checkpoint
from ledger.core.entry import ZERO_HASH, parse_entry
from ledger.core.note import parse_vkey
from ledger.core.records import parse_record

PROCESSES = 4
PER_PROCESS = 40  # signatories per process, each registering then endorsing
SHARED = 20  # records every process submits


def _worker(url: str, own: list[bytes], shared: list[bytes], out: Any) -> None:
    """Runs in a child process: submit ``own`` (in order) and ``shared`` concurrently."""
    storage = SqlStorage(url, origin=ORIGIN)
    results: list[tuple[str, int, bool, str]] = []  # (record id, index, existing, leaf)
    lock = threading.Lock()
    try:
        appender = InThreadAppender(storage, CheckpointPublisher(storage, log_signer(), None))
        with Sequencer(appender, batch_max_records=8, batch_max_ms=1, max_age_s=None) as seq:

            def submit_own(records: list[bytes]) -> None:
                for data in records:
                    rec = parse_record(data)
                    (r,) = seq.submit_many_async([rec]).result(120)
                    assert isinstance(r, Appended), r
                    with lock:
                        results.append(
                            (rec.record_id.hex(), r.index, r.existing, r.leaf_hash.hex())
                        )

            def submit_shared() -> None:
                records = [parse_record(d) for d in shared]
                for i in range(0, len(records), 3):
                    chunk = records[i : i + 3]
                    for rec, r in zip(chunk, seq.submit_many_async(chunk).result(120), strict=True):
                        assert isinstance(r, Appended), r
                        with lock:
                            results.append(
                                (rec.record_id.hex(), r.index, r.existing, r.leaf_hash.hex())
                            )

            half = len(own) // 2  # own records come in (register, endorse) pairs
            threads = [
                threading.Thread(target=submit_own, args=(own[:half],)),
                threading.Thread(target=submit_own, args=(own[half:],)),
                threading.Thread(target=submit_shared),
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        out.put(("ok", results))
    except BaseException as e:  # reported to the parent
        out.put(("error", repr(e)))
    finally:
        storage.close()


def _check_one_log(storage: SqlStorage, signer: NoteSigner) -> list[bytes]:
    """Check the database holds one valid log; return its leaf hashes."""
    head = storage.head()
    data = storage.read_entries(0, head.size)
    assert len(data) == head.size
    prev, last_time = ZERO_HASH, 0
    leaves: list[bytes] = []
    record_ids: set[bytes] = set()
    tree = merkle.MemoryHashStore()
    for i, d in enumerate(data):
        entry = parse_entry(d)
        assert entry.index == i  # no gap, no duplicate index
        assert entry.prev == prev  # linked to its predecessor
        assert entry.time_ms >= last_time
        assert entry.record.record_id not in record_ids  # every record once
        record_ids.add(entry.record.record_id)
        prev, last_time = merkle.leaf_hash(d), entry.time_ms
        leaves.append(prev)
        tree.append(prev)
    assert merkle.root_from_leaf_hashes(leaves) == head.root
    count = merkle.stored_hash_count(head.size)
    assert storage.read_hashes(range(count)) == tree.read_hashes(range(count))

    verifier = parse_vkey(signer.vkey)
    history = storage.checkpoints(limit=1_000_000)
    assert history[-1].checkpoint == head.checkpoint
    sizes = [c.size for c in history]
    assert sizes == sorted(set(sizes))
    for c in history:
        cp, _ = open_checkpoint(c.checkpoint, [verifier], ORIGIN)
        assert (cp.size, cp.root) == (c.size, c.root)
        # Consistent with the final tree: its root is the final tree's prefix root.
        assert merkle.tree_hash(c.size, tree) == c.root
        proof = merkle.consistency_proof(c.size, head.size, storage)
        merkle.verify_consistency(c.size, head.size, c.root, head.root, proof)
    return leaves


def test_processes_sequencing_concurrently_make_one_log(
    database_url: str, signer: NoteSigner
) -> None:
    maker = Maker()
    author = maker.register("author")
    statement = maker.statement(["author"])
    own: list[list[bytes]] = []
    for k in range(PROCESSES):
        pairs: list[bytes] = []
        for i in range(PER_PROCESS):
            label = f"p{k}-{i}"
            pairs += [maker.register(label).encode(), b""]
        # Endorsements signed after every registration: signed_at order is irrelevant
        # across signatories, and each endorsement follows its registration in `own`.
        for i in range(PER_PROCESS):
            pairs[2 * i + 1] = maker.endorse(f"p{k}-{i}", statement.record_id).encode()
        own.append(pairs)
    shared = [maker.register(f"shared-{i}").encode() for i in range(SHARED)]

    storage = SqlStorage(database_url, origin=ORIGIN)
    try:
        storage.init_log()
        appender = InThreadAppender(storage, CheckpointPublisher(storage, signer, None))
        appender.submit(Batch([author, statement], None)).result()

        ctx = multiprocessing.get_context("spawn")
        out = ctx.Queue()
        procs = [
            ctx.Process(target=_worker, args=(database_url, own[k], shared, out))
            for k in range(PROCESSES)
        ]
        for p in procs:
            p.start()
        reports = [out.get(timeout=300) for _ in procs]
        for p in procs:
            p.join(60)
            assert p.exitcode == 0
        errors = [r[1] for r in reports if r[0] != "ok"]
        assert not errors, errors

        leaves = _check_one_log(storage, signer)
        expected = 2 + PROCESSES * PER_PROCESS * 2 + SHARED
        assert storage.head().size == expected

        # Every answer names the entry that holds the record.
        by_record: dict[str, set[int]] = {}
        appended_once: dict[str, int] = {}
        for _, results in reports:
            for rid, index, existing, leaf in results:
                assert leaves[index].hex() == leaf
                by_record.setdefault(rid, set()).add(index)
                if not existing:
                    appended_once[rid] = appended_once.get(rid, 0) + 1
        assert all(len(v) == 1 for v in by_record.values())  # one index per record
        assert all(n == 1 for n in appended_once.values())  # appended by one process only
        assert len(by_record) == expected - 2
        view = storage.statement(statement.record_id)
        assert view is not None and view.total == PROCESSES * PER_PROCESS
    finally:
        storage.close()
