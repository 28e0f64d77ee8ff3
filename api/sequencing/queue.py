"""The sequencer: submitted records are queued, then sequenced in batches, in order.

Contract (MUST and MUST NOT as in RFC 2119; the storage's and the publisher's parts
are in ``api.storage.base`` and ``api.checkpoints``):

- The route MUST parse a record strictly and check its log and its signers
  (``ledger.core.records.check_signers``) before submitting it; the appender MUST
  verify its Ed25519 signatures before appending it (``api.sequencing.batch``), and
  answers a bad one ``Rejected`` with the error's code.
- Records are sequenced in the order they were queued; a bulk submission's records
  stay in order, in one or more batches.
- A record is **durable** once its batch's transaction committed; it is
  **answered** only after that commit *and* after a checkpoint whose tree includes
  it was **published** (``api.checkpoints.CheckpointPublisher``); its receipt is
  built against that checkpoint (``api.answers``).
- A submission whose batch failed MUST NOT be answered as appended: a single
  submission's future raises the error (HTTP 503); a bulk import answers each of
  that batch's records ``Rejected("unavailable")``, since other batches of the
  import may have committed. Resubmitting is always safe: an identical record
  answers its existing entry.
- A full queue refuses at once (:class:`OverloadedError`, 503 with Retry-After); a
  stopped sequencer too (:class:`SequencerStoppedError`). :meth:`Sequencer.stop`
  sequences what was queued before it returns.

What a crash leaves: records queued but not yet in a committed batch are lost, and
their submitters were not answered (they retry); a committed batch not yet
published is published by the next batch or by start-up (``api.server.prepare``);
a published batch whose submitters were not answered answers their retries with the
existing entries.

One thread owns the queue: it waits for a first record, then up to
``batch_max_ms`` for ``batch_max_records``, takes the batch and submits it to the
appender (``api.sequencing.batch.Appender``). With the child-process appender the
future is pending, and the thread forms the next batch at once (up to
``PIPELINE_DEPTH`` batches unanswered), so batches grow with the load; the child's
reader thread delivers the answers when the future completes. Answers to one event
loop are set in one wake-up per batch (``call_soon_threadsafe``), rather than one per
record, each of which would make the delivering thread wait for the GIL again while
the loop is busy. Several processes, each with its own Sequencer, may share one
database: the log writer's head lock serialises their batches into one log.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from api.sequencing.batch import Appender, Batch, Outcome
from api.storage.base import Appended, Rejected, StorageError
from ledger.core.records import SignedRecord
from ledger.core.rules import DEFAULT_MAX_AGE_S

logger = logging.getLogger("api.sequencing")

#: Batches submitted to the appender and not answered yet, at most.
PIPELINE_DEPTH = 4


class OverloadedError(Exception):
    """The queue is full: the client should retry after ``retry_after_s`` seconds."""

    def __init__(self, message: str, *, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class SequencerStoppedError(Exception):
    """The sequencer is not running (not started yet, or shutting down)."""


@dataclass(frozen=True)
class BatchReport:
    """What one committed batch did (passed to ``on_batch``, e.g. for metrics)."""

    records: int
    appended: int
    duplicates: int
    rejected: tuple[str, ...]  # the codes of the rejected records
    tree_size: int
    seconds: float


#: Wake-ups owed to event loops after a batch: loop -> [(future, outcomes, error)].
_Wakes = dict[asyncio.AbstractEventLoop, list[tuple["asyncio.Future[list[Outcome]]", Any, Any]]]


class _Job:
    """One submission (one record on a loop, or a bulk import) and its future."""

    __slots__ = ("afuture", "future", "loop", "many", "outcomes", "remaining")

    def __init__(self, n: int, loop: asyncio.AbstractEventLoop | None) -> None:
        self.loop = loop
        self.many = loop is None
        self.afuture: asyncio.Future[list[Outcome]] | None = None
        self.future: Future[list[Outcome]] | None = None
        if loop is None:
            self.future = Future()
        else:
            self.afuture = loop.create_future()
        self.outcomes: list[Outcome | None] = [None] * n
        self.remaining = n

    def finish(
        self, outcomes: list[Outcome] | None, error: BaseException | None, wakes: _Wakes
    ) -> None:
        if self.future is not None:
            if error is not None:
                self.future.set_exception(error)
            else:
                self.future.set_result(outcomes or [])
            return
        assert self.loop is not None and self.afuture is not None
        wakes.setdefault(self.loop, []).append((self.afuture, outcomes, error))


def _settle(items: list[tuple[asyncio.Future[list[Outcome]], Any, Any]]) -> None:
    """On the loop: set each future (unless cancelled, e.g. the client went away)."""
    for fut, outcomes, error in items:
        if fut.done():
            continue
        if error is not None:
            fut.set_exception(error)
        else:
            fut.set_result(outcomes)


def _wake(wakes: _Wakes) -> None:
    for loop, items in wakes.items():
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


class Sequencer:
    """Queues submitted records and sequences them in batches (module docstring).

    ``on_batch`` receives a :class:`BatchReport` per batch (metrics); its errors are
    logged and ignored. Use as a context manager, or call :meth:`start` and
    :meth:`stop`; :meth:`stop` does not close the appender.
    """

    def __init__(
        self,
        appender: Appender,
        *,
        batch_max_records: int = 1000,
        batch_max_ms: int = 5,
        queue_size: int = 10_000,
        max_age_s: int | None = DEFAULT_MAX_AGE_S,
        on_batch: Callable[[BatchReport], None] | None = None,
    ) -> None:
        if batch_max_records < 1 or batch_max_ms < 0 or queue_size < batch_max_records:
            raise ValueError("need batch_max_records >= 1, batch_max_ms >= 0, queue_size >= batch")
        self.appender = appender
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
        self._slots = threading.BoundedSemaphore(PIPELINE_DEPTH)

    # --- life cycle ---------------------------------------------------------------

    def start(self) -> Sequencer:
        with self._cond:
            if self._thread is not None:
                raise RuntimeError("the sequencer is already running")
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="ledger-sequencer", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float | None = 30.0) -> None:
        """Sequence what is queued, wait for its answers, then stop. New submissions
        are refused."""
        with self._cond:
            thread = self._thread
            self._stopping = True
            self._cond.notify_all()
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                logger.error("the sequencer did not finish its queue within %s s", timeout)
        for _ in range(PIPELINE_DEPTH):  # every batch submitted was answered
            if not self._slots.acquire(timeout=timeout):
                logger.error("the sequencer's answers did not all come within %s s", timeout)
                break
        else:
            for _ in range(PIPELINE_DEPTH):
                self._slots.release()
        with self._cond:
            self._thread = None
            left = list(self._parts)
            self._parts.clear()
            self._queued = 0
        wakes: _Wakes = {}
        for part in left:  # only if the thread did not finish in time
            part.job.finish(None, SequencerStoppedError("the service is shutting down"), wakes)
        _wake(wakes)

    def __enter__(self) -> Sequencer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and not self._stopping

    @property
    def queued(self) -> int:
        """Records waiting for a batch."""
        return self._queued

    # --- submitting ---------------------------------------------------------------

    def submit_on_loop(self, record: SignedRecord) -> asyncio.Future[list[Outcome]]:
        """From a coroutine: queue one record; ``(await future)[0]`` is its outcome.

        The future belongs to the running loop and is set there after the batch was
        committed and published. Raises OverloadedError or SequencerStoppedError at
        once; the future raises the error of a batch that failed.
        """
        job = self._enqueue([record], asyncio.get_running_loop())
        assert job.afuture is not None
        return job.afuture

    def submit_many_async(self, records: Sequence[SignedRecord]) -> Future[list[Outcome]]:
        """Queue a bulk import, in order; one outcome per record (module docstring).

        All the records are queued together or not at all (OverloadedError); at most
        ``queue_size`` records per call.
        """
        if len(records) > self.queue_size:
            raise OverloadedError(
                f"{len(records)} records is more than the queue holds ({self.queue_size})",
                retry_after_s=1,
            )
        future = self._enqueue(records, None).future
        assert future is not None
        return future

    def _enqueue(
        self, records: Sequence[SignedRecord], loop: asyncio.AbstractEventLoop | None
    ) -> _Job:
        job = _Job(len(records), loop)
        if not records:
            job.finish([], None, {})
            return job
        step = self.batch_max_records
        now = time.monotonic()
        with self._cond:
            if self._thread is None or self._stopping:
                raise SequencerStoppedError("the sequencer is not running")
            if self._queued + len(records) > self.queue_size:
                raise OverloadedError(
                    f"the sequencing queue is full ({self._queued} records waiting)",
                    retry_after_s=self._retry_after(),
                )
            idle = not self._parts
            for i in range(0, len(records), step):
                self._parts.append(_Part(job, i, records[i : i + step], now))
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
            self._slots.acquire()  # released when the batch is answered
            parts = self._take_batch()
            if parts is None:
                self._slots.release()
                return
            records = [r for part in parts for r in part.records]
            start = time.perf_counter()
            try:
                future = self.appender.submit(Batch(records, self.max_age_s))
            except Exception as e:  # pragma: no cover - appenders complete the future
                future = Future()
                future.set_exception(e)
            future.add_done_callback(functools.partial(self._answered, parts, start))

    def _answered(self, parts: list[_Part], start: float, future: Future[list[Outcome]]) -> None:
        """Deliver a batch's outcomes (in the thread that completed its future)."""
        try:
            error = future.exception()
            if error is None and len(future.result()) != sum(len(p.records) for p in parts):
                error = StorageError("the appender answered the wrong number of outcomes")
            if error is not None:
                _fail(parts, error)
                return
            outcomes = future.result()
            seconds = time.perf_counter() - start
            self._batch_seconds = 0.8 * self._batch_seconds + 0.2 * seconds
            wakes: _Wakes = {}
            pos = 0
            for part in parts:
                _deliver(part, outcomes[pos : pos + len(part.records)], wakes)
                pos += len(part.records)
            _wake(wakes)
            if self.on_batch is not None:
                try:
                    self.on_batch(_report(outcomes, seconds))
                except Exception:
                    logger.exception("on_batch failed")
        except BaseException as e:  # pragma: no cover - a bug: answer rather than hang
            logger.exception("sequencer failure")
            _fail(parts, e)
        finally:
            self._slots.release()


def _fail(parts: list[_Part], e: BaseException) -> None:
    """Answer a batch that could not be sequenced: a bulk import's records one by one
    (other batches of it may have committed), a single submitter with the error."""
    n = sum(len(p.records) for p in parts)
    logger.error("could not sequence a batch of %d records: %s", n, e)
    wakes: _Wakes = {}
    for part in parts:
        if part.job.many:
            # The cause (a driver's message can name hosts and ports) is logged above,
            # never told to the submitter, as for a single submission's 503.
            unavailable = Rejected(
                "unavailable", "not sequenced: the log is unavailable; submit again (it is safe)"
            )
            _deliver(part, [unavailable] * len(part.records), wakes)
        else:
            part.job.finish(None, e, wakes)
    _wake(wakes)


def _report(outcomes: Sequence[Outcome], seconds: float) -> BatchReport:
    appended = duplicates = 0
    codes: list[str] = []
    size = 0
    for r in outcomes:
        if isinstance(r, Appended):
            size = max(size, r.published.size)
            if r.existing:
                duplicates += 1
            else:
                appended += 1
        else:
            codes.append(r.code)
    return BatchReport(len(outcomes), appended, duplicates, tuple(codes), size, seconds)


def _deliver(part: _Part, outcomes: Sequence[Outcome], wakes: _Wakes) -> None:
    job = part.job
    job.outcomes[part.offset : part.offset + len(outcomes)] = outcomes
    job.remaining -= len(outcomes)
    if job.remaining == 0:
        job.finish([r for r in job.outcomes if r is not None], None, wakes)


__all__ = [
    "PIPELINE_DEPTH",
    "BatchReport",
    "OverloadedError",
    "Sequencer",
    "SequencerStoppedError",
]
