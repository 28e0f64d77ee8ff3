"""The sequencer: batching, answers after commit, overload, shutdown, failures."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest
from conftest import T0, Maker

from api.checkpoints import CheckpointPublisher
from api.sequencer import (
    BatchReport,
    OverloadedError,
    PublishingAppender,
    Sequencer,
    SequencerStoppedError,
)
from api.storage.base import Appended, LogHead, Rejected, StorageError
from api.storage.sql import SqlStorage
from keys.signer import NoteSigner
from ledger.core.entry import parse_entry
from ledger.core.records import SignedRecord


class FakeStorage:
    """Records the batches it is given; can block, fail, or answer Rejected."""

    def __init__(self) -> None:
        self.batches: list[list[SignedRecord]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.fail: Exception | None = None
        self.size = 0

    def append_batch(
        self,
        records: Sequence[SignedRecord],
        *,
        max_age_s: int | None = None,
    ) -> list[Appended | Rejected]:
        self.entered.set()
        self.gate.wait()
        if self.fail is not None:
            raise self.fail
        self.batches.append(list(records))
        out: list[tuple[int, bytes] | Rejected] = []
        for r in records:
            if r.body.TYPE == "withdraw":
                out.append(Rejected("not_endorsed", "no"))
            else:
                out.append((self.size, r.record_id))
                self.size += 1
        head = LogHead(self.size, bytes(32), b"cp %d" % self.size)
        return [o if isinstance(o, Rejected) else Appended(*o, False, head) for o in out]


def make_sequencer(storage: object, signer: NoteSigner, **kw: object) -> Sequencer:
    return Sequencer(storage, **kw)  # type: ignore[arg-type]


def test_results_come_in_order_in_batches_of_at_most_n(signer: NoteSigner, maker: Maker) -> None:
    fake = FakeStorage()
    reports: list[BatchReport] = []
    records = [maker.register(f"s{i}") for i in range(10)]
    with make_sequencer(fake, signer, batch_max_records=4, on_batch=reports.append) as seq:
        results = seq.submit_many(records)
    assert [r.index for r in results if isinstance(r, Appended)] == list(range(10))
    assert [len(b) for b in fake.batches] == [4, 4, 2]
    assert [b for batch in fake.batches for b in batch] == records
    assert [(r.records, r.appended, r.tree_size) for r in reports] == [
        (4, 4, 4),
        (4, 4, 8),
        (2, 2, 10),
    ]


def test_waiting_records_are_sequenced_together(signer: NoteSigner, maker: Maker) -> None:
    fake = FakeStorage()
    fake.gate.clear()  # hold the first batch while more records arrive
    seq = make_sequencer(fake, signer, batch_max_records=100, batch_max_ms=0).start()
    try:
        first = seq.submit_async(maker.register("first"))
        assert fake.entered.wait(5)
        later = [seq.submit_async(maker.register(f"s{i}")) for i in range(20)]
        assert seq.queued == 20
        fake.gate.set()
        first.result(5)
        assert all(isinstance(f.result(5), Appended) for f in later)
    finally:
        seq.stop()
    assert [len(b) for b in fake.batches] == [1, 20]


def test_answers_come_after_the_checkpoint_is_published(
    storage: SqlStorage, signer: NoteSigner, maker: Maker
) -> None:
    events: list[str] = []
    publisher = CheckpointPublisher(storage, signer, None)
    publish = publisher.publish

    def spy(size: int, root: bytes) -> LogHead:
        head = publish(size, root)
        events.append(f"published {head.size}")
        return head

    publisher.publish = spy  # type: ignore[method-assign]
    with Sequencer(PublishingAppender(storage, publisher), max_age_s=None) as seq:
        result = seq.submit(maker.register("a"))
        events.append("answered")
    assert isinstance(result, Appended) and result.published == storage.head()
    assert result.published.size == 1 and result.proof is not None
    assert events == ["published 1", "answered"]


def test_a_failed_publication_fails_the_submission(
    storage: SqlStorage, signer: NoteSigner, maker: Maker
) -> None:
    publisher = CheckpointPublisher(storage, signer, None)

    def fail(size: int, root: bytes) -> LogHead:
        raise OSError("disk full")

    publisher.publish = fail  # type: ignore[method-assign]
    record = maker.register("a")
    seq = Sequencer(PublishingAppender(storage, publisher), max_age_s=None)
    with seq, pytest.raises(OSError, match="disk full"):
        seq.submit(record)
    # Committed, not published: a retry with a working publisher answers the entry.
    good = PublishingAppender(storage, CheckpointPublisher(storage, signer, None))
    with Sequencer(good, max_age_s=None) as seq:
        again = seq.submit(record)
    assert isinstance(again, Appended) and again.existing and again.published.size == 1


def test_rejections_are_answers(signer: NoteSigner, maker: Maker) -> None:
    with make_sequencer(FakeStorage(), signer) as seq:
        r = seq.submit(maker.withdraw("a", bytes(32)))
    assert isinstance(r, Rejected) and r.code == "not_endorsed"


def test_full_queue_is_overloaded(signer: NoteSigner, maker: Maker) -> None:
    fake = FakeStorage()
    fake.gate.clear()
    seq = make_sequencer(fake, signer, batch_max_records=2, queue_size=3).start()
    try:
        held = seq.submit_async(maker.register("held"))
        assert fake.entered.wait(5)
        queued = [seq.submit_async(maker.register(f"q{i}")) for i in range(3)]
        with pytest.raises(OverloadedError) as e:
            seq.submit_async(maker.register("one too many"))
        assert e.value.retry_after_s >= 1
        with pytest.raises(OverloadedError):
            seq.submit_many_async([maker.register(f"m{i}") for i in range(4)])
        fake.gate.set()
        assert isinstance(held.result(5), Appended)
        assert all(isinstance(f.result(5), Appended) for f in queued)
    finally:
        seq.stop()


def test_stopped_sequencer_refuses_and_stop_drains_the_queue(
    signer: NoteSigner, maker: Maker
) -> None:
    fake = FakeStorage()
    seq = make_sequencer(fake, signer, batch_max_records=1)
    with pytest.raises(SequencerStoppedError):
        seq.submit(maker.register("early"))
    seq.start()
    fake.gate.clear()
    futures = [seq.submit_async(maker.register(f"s{i}")) for i in range(5)]
    assert fake.entered.wait(5)
    fake.gate.set()
    seq.stop()
    assert all(isinstance(f.result(0), Appended) for f in futures)
    assert not seq.running
    with pytest.raises(SequencerStoppedError):
        seq.submit(maker.register("late"))


def test_storage_failure(signer: NoteSigner, maker: Maker) -> None:
    fake = FakeStorage()
    fake.fail = StorageError("database is gone")
    with make_sequencer(fake, signer, batch_max_records=2) as seq:
        with pytest.raises(StorageError, match="gone"):
            seq.submit(maker.register("a"))
        # A bulk import answers each record of a failed batch, so that it can be retried.
        results = seq.submit_many([maker.register(f"b{i}") for i in range(3)])
        assert [getattr(r, "code", None) for r in results] == ["unavailable"] * 3
        fake.fail = None
        assert isinstance(seq.submit(maker.register("c")), Appended)


def test_async_submission(signer: NoteSigner, maker: Maker) -> None:
    async def go(seq: Sequencer) -> list[Appended | Rejected]:
        futures = [asyncio.wrap_future(seq.submit_async(maker.register(f"s{i}"))) for i in range(5)]
        return list(await asyncio.gather(*futures))

    with make_sequencer(FakeStorage(), signer) as seq:
        results = asyncio.run(go(seq))
    assert sorted(r.index for r in results if isinstance(r, Appended)) == list(range(5))


def test_many_threads_one_log(storage: SqlStorage, signer: NoteSigner) -> None:
    """Real storage: concurrent submitters, duplicates and rule failures, one log."""
    makers = [Maker(start=T0 + 10_000 * (k + 1)) for k in range(8)]
    statement_maker = Maker()
    base = [statement_maker.register("author"), statement_maker.statement(["author"])]
    statement = base[1].record_id
    results: dict[int, list[Appended | Rejected]] = {}
    # Signed in 2026, sequenced now: no age limit (max_age_s=None).
    appender = PublishingAppender(storage, CheckpointPublisher(storage, signer, None))
    with Sequencer(appender, batch_max_records=16, batch_max_ms=2, max_age_s=None) as seq:
        assert all(isinstance(r, Appended) for r in seq.submit_many(base))

        def work(k: int) -> None:
            m = makers[k]
            out = []
            for i in range(10):
                reg = m.register(f"t{k}-{i}")
                out.append(seq.submit(reg))
                out.append(seq.submit(reg))  # a resubmission
                out.append(seq.submit(m.endorse(f"t{k}-{i}", statement)))
                out.append(seq.submit(m.withdraw(f"t{k}-{i}", bytes(32))))  # unknown statement
            results[k] = out

        threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    indices: list[int] = []
    for out in results.values():
        for i in range(0, len(out), 4):
            reg, again, endorse, bad = out[i : i + 4]
            assert isinstance(reg, Appended) and not reg.existing
            assert isinstance(again, Appended) and again.existing and again.index == reg.index
            assert isinstance(endorse, Appended) and endorse.index > reg.index
            assert isinstance(bad, Rejected) and bad.code == "unknown_statement"
            indices += [reg.index, endorse.index]
    size = storage.head().size
    assert sorted(indices) == list(range(2, size))
    entries = [parse_entry(d) for d in storage.read_entries(0, size)]
    assert [e.index for e in entries] == list(range(size))
    view = storage.statement(statement)
    assert view is not None and view.total == 80
