"""The sequencer: submitted records are queued, then sequenced in batches.

The route parses a record strictly and checks its signatures
(``ledger.core.records.verify_signatures``), then hands it to :meth:`Sequencer.submit`
(or :meth:`Sequencer.submit_async` from async code). One background thread takes
records from a bounded queue (with a pipelined storage, ``api.appender``, it sends
each batch as it forms and a second thread reads the answers in order) and
sequences them in batches of up to
``batch_max_records`` records, waiting at most ``batch_max_ms`` for a batch to fill
after its first record arrived; while a batch is being committed the next one fills
up by itself, so batches grow with the load. Each batch is one storage transaction
(``LogWriter.append_batch``: head lock, rules, entries, hashes, head by
compare-and-swap, commit), then its checkpoint is signed and published
(``api.checkpoints``); a submitter gets its answer only after both.

Answers, per record:

* :class:`~api.storage.base.Appended`: in the log at ``index``; ``existing`` is True
  for an identical resubmission (same record id), which never appends twice;
* :class:`~api.storage.base.Rejected`: a semantic rule refused it (``code`` as in
  docs/spec.md).

A full queue raises :class:`Overloaded` at once (HTTP 503 with ``Retry-After``); a
stopped sequencer raises :class:`SequencerStopped` (503 too). When the database
fails, :meth:`submit` raises the :class:`~api.storage.base.StorageError`; a bulk
import (:meth:`submit_many`) instead answers each record of a failed batch with
``Rejected("unavailable", ...)``, since other batches of the import may have
committed: resubmitting them all is safe, duplicates answer their existing entry.

Several processes, each with its own Sequencer, may share one PostgreSQL (or SQLite)
database: the storage's head lock serialises their batches into one log.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from api.checkpoints import CheckpointPublisher
from api.storage.base import Appended, LogWriter, Rejected, StorageError
from ledger.core.records import SignedRecord
from ledger.core.rules import DEFAULT_MAX_AGE_S

logger = logging.getLogger("api.sequencer")

Result = Appended | Rejected


class BatchAppender(Protocol):
    """What the sequencer needs: append a batch and publish its checkpoint
    (:class:`PublishingAppender`, or :class:`api.appender.ProcessAppender`)."""

    def append_batch(
        self,
        records: Sequence[SignedRecord],
        *,
        max_age_s: int | None = DEFAULT_MAX_AGE_S,
    ) -> list[Appended | Rejected]: ...


class PublishingAppender:
    """In this thread: the log writer appends, then the publisher publishes."""

    def __init__(self, writer: LogWriter, publisher: CheckpointPublisher) -> None:
        self.writer = writer
        self.publisher = publisher

    def append_batch(
        self,
        records: Sequence[SignedRecord],
        *,
        max_age_s: int | None = DEFAULT_MAX_AGE_S,
    ) -> list[Appended | Rejected]:
        outcome = self.writer.append_batch(records, max_age_s=max_age_s)
        return self.publisher.publish_batch(outcome)


@runtime_checkable
class CheckingAppender(BatchAppender, Protocol):
    """A :class:`BatchAppender` that checks each record's Ed25519 signatures itself
    before appending (:class:`api.appender.ProcessAppender`), except those the
    submitter marked verified: then single submitters need not check them."""

    verifies_signatures: bool

    def append_checked(
        self,
        records: Sequence[SignedRecord],
        verified: Sequence[bool],
        *,
        max_age_s: int | None = DEFAULT_MAX_AGE_S,
    ) -> list[Appended | Rejected]: ...


@runtime_checkable
class PipelinedAppender(CheckingAppender, Protocol):
    """A :class:`CheckingAppender` that takes a batch before the previous one is
    answered (:class:`api.appender.ProcessAppender`): ``send`` returns a ticket,
    ``receive(ticket)`` the results after the commit; batches are sequenced in the
    order sent."""

    pipelined: bool

    def send(
        self,
        records: Sequence[SignedRecord],
        verified: Sequence[bool],
        *,
        max_age_s: int | None = DEFAULT_MAX_AGE_S,
    ) -> int: ...

    def receive(self, ticket: int) -> list[Appended | Rejected]: ...


#: Batches a pipelined appender may hold at once (sent, not yet answered).
PIPELINE_DEPTH = 4


class OverloadedError(Exception):
    """The queue is full: the client should retry after ``retry_after_s`` seconds."""

    def __init__(self, message: str, *, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class SequencerStoppedError(Exception):
    """The sequencer is not running (not started yet, or shutting down)."""


#: Short names.
Overloaded = OverloadedError
SequencerStopped = SequencerStoppedError


@dataclass(frozen=True)
class BatchReport:
    """What one committed batch did (passed to ``on_batch``, e.g. for metrics)."""

    records: int
    appended: int
    duplicates: int
    rejected: tuple[str, ...]  # the codes of the rejected records
    tree_size: int
    seconds: float


#: Wake-ups owed to event loops after a batch: loop -> [(future, results, error)].
_Wakes = dict[asyncio.AbstractEventLoop, list[tuple["asyncio.Future[list[Result]]", Any, Any]]]


class _Job:
    """One submission (one record, or a bulk import) and its future.

    A job from :meth:`Sequencer.submit_on_loop` has an asyncio future instead, set on
    its loop: all the answers of a batch to one loop are set in one wake-up
    (``call_soon_threadsafe``), rather than one per record, each of which would make
    this thread wait for the GIL again while the loop is busy.
    """

    __slots__ = ("afuture", "future", "loop", "many", "remaining", "results")

    def __init__(self, n: int, many: bool, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.loop = loop
        self.afuture: asyncio.Future[list[Result]] | None = None
        self.future: Future[list[Result]] | None = None
        if loop is None:
            self.future = Future()
        else:
            self.afuture = loop.create_future()
        self.results: list[Result | None] = [None] * n
        self.remaining = n
        self.many = many

    def finish(
        self, results: list[Result] | None, error: BaseException | None, wakes: _Wakes | None
    ) -> None:
        """Answer the job (``results``, or ``error``); loop jobs are added to ``wakes``
        (woken at once when it is None)."""
        if self.future is not None:
            if not self.future.done():
                if error is not None:
                    self.future.set_exception(error)
                else:
                    self.future.set_result(results or [])
            return
        assert self.loop is not None and self.afuture is not None
        item = (self.afuture, results, error)
        if wakes is not None:
            wakes.setdefault(self.loop, []).append(item)
        else:
            _wake(self.loop, [item])


def _settle(items: list[tuple[asyncio.Future[list[Result]], Any, Any]]) -> None:
    """On the loop: set each future (unless cancelled, e.g. the client went away)."""
    for fut, results, error in items:
        if fut.done():
            continue
        if error is not None:
            fut.set_exception(error)
        else:
            fut.set_result(results)


def _wake(loop: asyncio.AbstractEventLoop, items: list[Any]) -> None:
    try:
        loop.call_soon_threadsafe(_settle, items)
    except RuntimeError:  # the loop is closed: nobody is waiting any more
        logger.debug("dropped %d answers for a closed event loop", len(items))


@dataclass(slots=True)
class _Part:
    """Up to batch_max_records consecutive records of one job."""

    job: _Job
    offset: int
    records: Sequence[SignedRecord]
    queued_at: float  # time.monotonic() when it was queued
    verified: bool = False  # the submitter checked the records' signatures


class Sequencer:
    """Queues submitted records and sequences them in batches on a background thread.

    ``storage`` appends a batch and publishes its checkpoint before it returns; if
    either fails, the batch's submitters get the error. ``on_batch`` receives a
    :class:`BatchReport` per batch (metrics); its errors are logged and ignored.
    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        storage: BatchAppender,
        *,
        batch_max_records: int = 1000,
        batch_max_ms: int = 5,
        queue_size: int = 10_000,
        max_age_s: int | None = DEFAULT_MAX_AGE_S,
        on_batch: Callable[[BatchReport], None] | None = None,
    ) -> None:
        if batch_max_records < 1 or batch_max_ms < 0 or queue_size < batch_max_records:
            raise ValueError("need batch_max_records >= 1, batch_max_ms >= 0, queue_size >= batch")
        self.storage = storage
        self.batch_max_records = batch_max_records
        self.batch_max_ms = batch_max_ms
        self.queue_size = queue_size
        self.max_age_s = max_age_s
        self.on_batch = on_batch
        self._parts: deque[_Part] = deque()
        self._queued = 0  # records in self._parts
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._batch_seconds = 0.01  # moving average, for Retry-After
        # Once: isinstance with a runtime-checkable Protocol costs ~17 us, and the
        # route asks for every record.
        self._checker = storage if isinstance(storage, CheckingAppender) else None
        self._pipe = (
            storage if isinstance(storage, PipelinedAppender) and storage.pipelined else None
        )
        self._receiver: threading.Thread | None = None
        self._in_flight: deque[tuple[list[_Part], int, float] | None] = deque()
        self._in_flight_cond = threading.Condition()
        self._slots = threading.BoundedSemaphore(PIPELINE_DEPTH)

    # --- life cycle ---------------------------------------------------------------

    def start(self) -> Sequencer:
        with self._cond:
            if self._thread is not None:
                raise RuntimeError("the sequencer is already running")
            self._stopping = False
            if self._pipe is not None:
                self._thread = threading.Thread(
                    target=self._run_sender, name="ledger-sequencer", daemon=True
                )
                self._receiver = threading.Thread(
                    target=self._run_receiver, name="ledger-sequencer-answers", daemon=True
                )
                self._receiver.start()
            else:
                self._thread = threading.Thread(
                    target=self._run, name="ledger-sequencer", daemon=True
                )
            self._thread.start()
        return self

    def stop(self, timeout: float | None = 30.0) -> None:
        """Sequence what is queued, then stop the thread. New submissions are refused."""
        with self._cond:
            thread = self._thread
            self._stopping = True
            self._cond.notify_all()
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                logger.error("the sequencer did not finish its queue within %s s", timeout)
        receiver = self._receiver
        if receiver is not None:  # the sender told it to stop after the last answer
            receiver.join(timeout)
            if receiver.is_alive():
                logger.error("the sequencer's answers did not all come within %s s", timeout)
            self._receiver = None
        with self._cond:
            self._thread = None
            left = list(self._parts)
            self._parts.clear()
            self._queued = 0
        for part in left:  # only if the thread did not finish in time
            part.job.finish(None, SequencerStopped("the service is shutting down"), None)

    def __enter__(self) -> Sequencer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and not self._stopping

    @property
    def verifies_signatures(self) -> bool:
        """True when the storage checks each record's Ed25519 signatures itself, before
        appending (``api.appender.ProcessAppender``): then submitters need not."""
        return self._checker is not None and self._checker.verifies_signatures

    @property
    def queued(self) -> int:
        """Records waiting for a batch."""
        return self._queued

    # --- submitting ---------------------------------------------------------------

    def submit_async(self, record: SignedRecord) -> Future[Result]:
        """Queue one record; the future resolves after its batch committed.

        Raises Overloaded (queue full) or SequencerStopped at once. From async code:
        ``await asyncio.wrap_future(sequencer.submit_async(record))``.
        """
        job = self._enqueue([record], many=False)
        out: Future[Result] = Future()

        def done(f: Future[list[Result]]) -> None:
            e = f.exception()
            if e is not None:
                out.set_exception(e)
            else:
                out.set_result(f.result()[0])

        assert job.future is not None
        job.future.add_done_callback(done)
        return out

    def submit_on_loop(self, record: SignedRecord) -> asyncio.Future[list[Result]]:
        """From a coroutine: queue one record; ``(await future)[0]`` is its answer.

        The future belongs to the running loop and is set there after the batch
        committed, with the other answers of the batch to that loop in one wake-up.
        Raises Overloaded or SequencerStopped at once.
        """
        job = self._enqueue([record], many=False, loop=asyncio.get_running_loop())
        assert job.afuture is not None
        return job.afuture

    def submit(self, record: SignedRecord, timeout: float | None = None) -> Result:
        """Queue one record and wait for its answer (raises StorageError on failure)."""
        return self.submit_async(record).result(timeout)

    def submit_many_async(
        self, records: Sequence[SignedRecord], *, verified: bool = False
    ) -> Future[list[Result]]:
        """Queue a bulk import, in order; one result per record (see the module docstring).

        All the records are queued together or not at all (Overloaded); at most
        ``queue_size`` records per call. They are sequenced in order, in one or more
        batches. ``verified``: the caller checked every record's signatures
        (``ledger.core.records.verify_signatures``), so a storage that checks them itself
        (:attr:`verifies_signatures`) may skip them.
        """
        if len(records) > self.queue_size:
            raise Overloaded(
                f"{len(records)} records is more than the queue holds ({self.queue_size})",
                retry_after_s=1,
            )
        future = self._enqueue(records, many=True, verified=verified).future
        assert future is not None
        return future

    def submit_many(
        self, records: Sequence[SignedRecord], timeout: float | None = None
    ) -> list[Result]:
        return self.submit_many_async(records).result(timeout)

    def _enqueue(
        self,
        records: Sequence[SignedRecord],
        *,
        many: bool,
        loop: asyncio.AbstractEventLoop | None = None,
        verified: bool = False,
    ) -> _Job:
        job = _Job(len(records), many, loop)
        if not records:
            job.finish([], None, None)
            return job
        step = self.batch_max_records
        now = time.monotonic()
        with self._cond:
            if self._thread is None or self._stopping:
                raise SequencerStopped("the sequencer is not running")
            if self._queued + len(records) > self.queue_size:
                raise Overloaded(
                    f"the sequencing queue is full ({self._queued} records waiting)",
                    retry_after_s=self._retry_after(),
                )
            idle = not self._parts
            for i in range(0, len(records), step):
                self._parts.append(_Part(job, i, records[i : i + step], now, verified))
            self._queued += len(records)
            # The thread waits for a first record, then for a full batch (or its
            # deadline): waking it for any other record would only make it take the
            # GIL from the event loop to wait again.
            if idle or self._queued >= self.batch_max_records:
                self._cond.notify_all()
        return job

    def _retry_after(self) -> int:
        batches = self._queued / self.batch_max_records + 1
        return max(1, min(60, round(batches * self._batch_seconds + 0.5)))

    # --- the sequencing thread ------------------------------------------------------

    def _take_batch(self) -> list[_Part] | None:
        """Wait for records and return the next batch's parts (None: stop)."""
        with self._cond:
            while not self._parts:
                if self._stopping:
                    return None
                self._cond.wait()
            # A batch waits to fill for batch_max_ms after its first record was queued.
            deadline = self._parts[0].queued_at + self.batch_max_ms / 1000
            while self._queued < self.batch_max_records and not self._stopping:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            parts: list[_Part] = []
            n = 0
            while self._parts and n + len(self._parts[0].records) <= self.batch_max_records:
                part = self._parts.popleft()
                parts.append(part)
                n += len(part.records)
            self._queued -= n
            return parts

    def _run(self) -> None:
        while True:
            parts = self._take_batch()
            if parts is None:
                return
            try:
                self._sequence(parts)
            except BaseException as e:  # pragma: no cover - _sequence handles its errors
                logger.exception("sequencer failure")
                for part in parts:
                    part.job.finish(None, e, None)

    def _sequence(self, parts: list[_Part]) -> None:
        records = [r for part in parts for r in part.records]
        start = time.perf_counter()
        try:
            checker = self._checker
            if checker is not None:
                # Those checked by their submitter need no second check.
                verified = [part.verified for part in parts for _ in part.records]
                results = checker.append_checked(records, verified, max_age_s=self.max_age_s)
            else:
                results = self.storage.append_batch(records, max_age_s=self.max_age_s)
            self._committed(len(records), results)
        except Exception as e:
            _fail(parts, e)
            return
        self._finish(parts, results, time.perf_counter() - start)

    # --- pipelined: a sender and a receiver thread ----------------------------------

    def _run_sender(self) -> None:
        """Send each batch as it forms, up to PIPELINE_DEPTH waiting for answers: the
        child then finds the next batches waiting when it commits one, and sequences
        them together, instead of idling while this process, busy with HTTP, wakes
        this thread, answers and sends again."""
        assert self._pipe is not None
        try:
            while True:
                self._slots.acquire()
                parts = self._take_batch()
                if parts is None:
                    self._slots.release()
                    return
                records = [r for part in parts for r in part.records]
                start = time.perf_counter()
                try:
                    ticket = self._pipe.send(
                        records,
                        [part.verified for part in parts for _ in part.records],
                        max_age_s=self.max_age_s,
                    )
                except Exception as e:
                    self._slots.release()
                    _fail(parts, e)
                    continue
                with self._in_flight_cond:
                    self._in_flight.append((parts, ticket, start))
                    self._in_flight_cond.notify()
        finally:
            with self._in_flight_cond:
                self._in_flight.append(None)  # the receiver stops after what was sent
                self._in_flight_cond.notify()

    def _run_receiver(self) -> None:
        assert self._pipe is not None
        while True:
            with self._in_flight_cond:
                while not self._in_flight:
                    self._in_flight_cond.wait()
                item = self._in_flight.popleft()
            if item is None:
                return
            parts, ticket, start = item
            try:
                results = self._pipe.receive(ticket)
                self._committed(sum(len(p.records) for p in parts), results)
            except Exception as e:
                _fail(parts, e)
                continue
            finally:
                self._slots.release()
            try:
                self._finish(parts, results, time.perf_counter() - start)
            except BaseException as e:  # pragma: no cover - _finish handles its errors
                logger.exception("sequencer failure")
                for part in parts:
                    part.job.finish(None, e, None)

    # --- both --------------------------------------------------------------------------

    def _committed(self, n: int, results: Sequence[Result]) -> None:
        """Check the storage's answer, before anyone is answered."""
        if len(results) != n:  # pragma: no cover - storage contract
            raise StorageError("the storage answered the wrong number of results")

    def _finish(self, parts: list[_Part], results: Sequence[Result], seconds: float) -> None:
        self._batch_seconds = 0.8 * self._batch_seconds + 0.2 * seconds
        pos = 0
        wakes: _Wakes = {}
        for part in parts:
            _deliver(part, results[pos : pos + len(part.records)], wakes)
            pos += len(part.records)
        for loop, items in wakes.items():
            _wake(loop, items)
        if self.on_batch is not None:
            try:
                self.on_batch(_report(results, seconds))
            except Exception:
                logger.exception("on_batch failed")


def _fail(parts: list[_Part], e: Exception) -> None:
    """Answer a batch that could not be sequenced: a bulk import's records one by one
    (other batches of it may have committed), a single submitter with the error."""
    n = sum(len(p.records) for p in parts)
    logger.error("could not sequence a batch of %d records: %s", n, e)
    wakes: _Wakes = {}
    for part in parts:
        if part.job.many:
            unavailable = Rejected("unavailable", f"not sequenced: {e}; submit again (it is safe)")
            _deliver(part, [unavailable] * len(part.records), wakes)
        else:
            part.job.finish(None, e, wakes)
    for loop, items in wakes.items():
        _wake(loop, items)


def _report(results: Sequence[Result], seconds: float) -> BatchReport:
    appended = duplicates = 0
    codes: list[str] = []
    size = 0
    for r in results:
        if isinstance(r, Appended):
            size = max(size, r.published.size)
            if r.existing:
                duplicates += 1
            else:
                appended += 1
        else:
            codes.append(r.code)
    return BatchReport(len(results), appended, duplicates, tuple(codes), size, seconds)


def _deliver(part: _Part, results: Sequence[Result], wakes: _Wakes) -> None:
    job = part.job
    job.results[part.offset : part.offset + len(results)] = results
    job.remaining -= len(results)
    if job.remaining == 0:
        job.finish([r for r in job.results if r is not None], None, wakes)


__all__ = [
    "BatchAppender",
    "BatchReport",
    "CheckingAppender",
    "Overloaded",
    "OverloadedError",
    "PipelinedAppender",
    "PublishingAppender",
    "Result",
    "Sequencer",
    "SequencerStopped",
    "SequencerStoppedError",
]
