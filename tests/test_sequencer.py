"""The sequencer: batching, answers after commit and publication, overload, shutdown,
failures (api.sequencing.queue), with fake and real appenders."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future

import pytest
from conftest import T0, Maker

from api.checkpoints import CheckpointPublisher
from api.sequencing.batch import Batch, InThreadAppender, Outcome
from api.sequencing.queue import (
    PIPELINE_DEPTH,
    BatchReport,
    OverloadedError,
    Sequencer,
    SequencerStoppedError,
)
from api.storage.base import Appended, LogHead, Rejected, StorageError
from api.storage.sql import SqlStorage
from keys.signer import NoteSigner
from ledger.core.entry import parse_entry
from ledger.core.records import SignedRecord


class FakeAppender:
    """Records the batches it is given; can hold them (pending futures), fail, or
    answer Rejected."""

    def __init__(self) -> None:
        self.batches: list[list[SignedRecord]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.fail: Exception | None = None
        self.size = 0
        self._held: list[tuple[Future[list[Outcome]], list[Outcome] | Exception]] = []
        self._lock = threading.Lock()

    def _outcomes(self, batch: Batch) -> list[Outcome] | Exception:
        if self.fail is not None:
            return self.fail
        self.batches.append(list(batch.records))
        out: list[tuple[int, bytes] | Rejected] = []
        for r in batch.records:
            if r.body.TYPE == "withdraw":
                out.append(Rejected("not_endorsed", "no"))
            else:
                out.append((self.size, r.record_id))
                self.size += 1
        head = LogHead(self.size, bytes(32), b"cp %d" % self.size)
        return [o if isinstance(o, Rejected) else Appended(*o, False, head) for o in out]

    def submit(self, batch: Batch) -> Future[list[Outcome]]:
        self.entered.set()
        future: Future[list[Outcome]] = Future()
        with self._lock:
            self._held.append((future, self._outcomes(batch)))
        if self.gate.is_set():
            self.release()
        return future

    def release(self) -> None:
        with self._lock:
            held, self._held = self._held, []
        for future, result in held:
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

    def open(self) -> None:
        self.gate.set()
        self.release()

    def close(self) -> None:
        pass


def submit(seq: Sequencer, record: SignedRecord) -> Outcome:
    """One record, as the route submits it (on an event loop)."""

    async def go() -> Outcome:
        return (await seq.submit_on_loop(record))[0]

    return asyncio.run(go())


def real(storage: SqlStorage, signer: NoteSigner) -> InThreadAppender:
    return InThreadAppender(storage, CheckpointPublisher(storage, signer, None))


def test_results_come_in_order_in_batches_of_at_most_n(maker: Maker) -> None:
    fake = FakeAppender()
    reports: list[BatchReport] = []
    records = [maker.register(f"s{i}") for i in range(10)]
    with Sequencer(fake, batch_max_records=4, on_batch=reports.append) as seq:
        results = seq.submit_many_async(records).result(5)
    assert [r.index for r in results if isinstance(r, Appended)] == list(range(10))
    assert [len(b) for b in fake.batches] == [4, 4, 2]
    assert [b for batch in fake.batches for b in batch] == records
    assert [(r.records, r.appended, r.tree_size) for r in reports] == [
        (4, 4, 4),
        (4, 4, 8),
        (2, 2, 10),
    ]


def test_batches_are_sent_before_earlier_ones_are_answered(maker: Maker) -> None:
    """With a pending appender, the sequencer forms and submits the next batches (up
    to PIPELINE_DEPTH) while the first waits; answers come when the futures do."""
    fake = FakeAppender()
    fake.gate.clear()
    seq = Sequencer(fake, batch_max_records=2, batch_max_ms=0).start()
    try:
        futures = [seq.submit_many_async([maker.register(f"s{i}")]) for i in range(3)]
        assert fake.entered.wait(5)
        for _ in range(100):
            if len(fake.batches) == 3:
                break
            threading.Event().wait(0.01)
        assert len(fake.batches) >= 2 and not any(f.done() for f in futures)
        fake.open()
        assert [f.result(5)[0].index for f in futures] == [0, 1, 2]  # type: ignore[union-attr]
    finally:
        seq.stop()


def test_rejections_are_answers(maker: Maker) -> None:
    with Sequencer(FakeAppender()) as seq:
        r = submit(seq, maker.withdraw("a", bytes(32)))
    assert isinstance(r, Rejected) and r.code == "not_endorsed"


def test_full_queue_is_overloaded(maker: Maker) -> None:
    fake = FakeAppender()
    fake.gate.clear()
    seq = Sequencer(fake, batch_max_records=2, queue_size=3).start()
    try:
        # Every slot of the pipeline held: then the queue fills.
        held = []
        for i in range(PIPELINE_DEPTH):
            held.append(seq.submit_many_async([maker.register(f"h{i}")]))
            for _ in range(500):
                if len(fake.batches) == i + 1:
                    break
                threading.Event().wait(0.01)
        assert len(fake.batches) == PIPELINE_DEPTH
        queued = [seq.submit_many_async([maker.register(f"q{i}")]) for i in range(3)]
        with pytest.raises(OverloadedError) as e:
            seq.submit_many_async([maker.register("one too many")])
        assert e.value.retry_after_s >= 1
        with pytest.raises(OverloadedError):
            seq.submit_many_async([maker.register(f"m{i}") for i in range(4)])
        fake.open()
        assert all(isinstance(f.result(5)[0], Appended) for f in held + queued)
    finally:
        seq.stop()


def test_stopped_sequencer_refuses_and_stop_drains_the_queue(maker: Maker) -> None:
    fake = FakeAppender()
    seq = Sequencer(fake, batch_max_records=1)
    with pytest.raises(SequencerStoppedError):
        seq.submit_many_async([maker.register("early")])
    seq.start()
    fake.gate.clear()
    futures = [seq.submit_many_async([maker.register(f"s{i}")]) for i in range(5)]
    assert fake.entered.wait(5)
    threading.Timer(0.2, fake.open).start()
    seq.stop()
    assert all(isinstance(f.result(0)[0], Appended) for f in futures)
    assert not seq.running
    with pytest.raises(SequencerStoppedError):
        seq.submit_many_async([maker.register("late")])


def test_appender_failure(maker: Maker) -> None:
    fake = FakeAppender()
    fake.fail = StorageError("database is gone: host db.internal port 5432 in recovery")
    with Sequencer(fake, batch_max_records=2) as seq:
        with pytest.raises(StorageError, match="gone"):
            submit(seq, maker.register("a"))
        # A bulk import answers each record of a failed batch, so that it can be retried,
        # and tells the client nothing of the driver's message (issue 14).
        results = seq.submit_many_async([maker.register(f"b{i}") for i in range(3)]).result(5)
        assert [getattr(r, "code", None) for r in results] == ["unavailable"] * 3
        for r in results:
            assert isinstance(r, Rejected)
            assert "db.internal" not in r.message and "5432" not in r.message
        fake.fail = None
        assert isinstance(submit(seq, maker.register("c")), Appended)


def test_answers_to_one_loop_come_together(maker: Maker) -> None:
    async def go(seq: Sequencer) -> list[Outcome]:
        futures = [seq.submit_on_loop(maker.register(f"s{i}")) for i in range(5)]
        return [r[0] for r in await asyncio.gather(*futures)]

    with Sequencer(FakeAppender()) as seq:
        results = asyncio.run(go(seq))
    assert sorted(r.index for r in results if isinstance(r, Appended)) == list(range(5))


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
    with Sequencer(InThreadAppender(storage, publisher), max_age_s=None) as seq:
        result = submit(seq, maker.register("a"))
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
    seq = Sequencer(InThreadAppender(storage, publisher), max_age_s=None)
    with seq, pytest.raises(OSError, match="disk full"):
        submit(seq, record)
    # Committed, not published: a retry with a working publisher answers the entry.
    with Sequencer(real(storage, signer), max_age_s=None) as seq:
        again = submit(seq, record)
    assert isinstance(again, Appended) and again.existing and again.published.size == 1


def test_the_appender_verifies_signatures(
    storage: SqlStorage, signer: NoteSigner, maker: Maker
) -> None:
    good = maker.register("a")
    sig = good.signatures[0]
    forged = SignedRecord(good.body, good.body_bytes, (type(sig)(sig.public_key, bytes(64)),))
    with Sequencer(real(storage, signer), max_age_s=None) as seq:
        results = seq.submit_many_async([forged, good]).result(5)
    assert isinstance(results[0], Rejected) and results[0].code == "bad_signature"
    assert isinstance(results[1], Appended) and results[1].index == 0


def test_many_threads_one_log(storage: SqlStorage, signer: NoteSigner) -> None:
    """Real storage: concurrent submitters, duplicates and rule failures, one log."""
    makers = [Maker(start=T0 + 10_000 * (k + 1)) for k in range(8)]
    statement_maker = Maker()
    base = [statement_maker.register("author"), statement_maker.statement(["author"])]
    statement = base[1].record_id
    results: dict[int, list[Outcome]] = {}
    # Signed in 2026, sequenced now: no age limit (max_age_s=None).
    appender = real(storage, signer)
    with Sequencer(appender, batch_max_records=16, batch_max_ms=2, max_age_s=None) as seq:
        assert all(isinstance(r, Appended) for r in seq.submit_many_async(base).result(5))

        def work(k: int) -> None:
            m = makers[k]
            out = []
            for i in range(10):
                reg = m.register(f"t{k}-{i}")
                out.append(submit(seq, reg))
                out.append(submit(seq, reg))  # a resubmission
                out.append(submit(seq, m.endorse(f"t{k}-{i}", statement)))
                out.append(submit(seq, m.withdraw(f"t{k}-{i}", bytes(32))))  # unknown statement
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
