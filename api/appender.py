"""Sequencing in a child process: a batch's database work away from the requests' GIL.

A server process answers HTTP on its event loop, and its sequencer
(:class:`api.sequencer.Sequencer`) commits batches on a thread. Both need the GIL,
and the database driver releases it around every statement step (``sqlite3`` for
each row of an ``executemany``, each row fetched; a PostgreSQL round trip). After
each release the sequencer must wait for the event loop to hand the GIL back, up
to ``sys.getswitchinterval()`` (5 ms) each time while the loop is busy: measured
here, a batch of 41 records took 6.3 ms alone and 321 ms beside one busy thread
(19 ms with a 0.1 ms switch interval). Under load the sequencer spends most of its
time waiting for its turn, not working.

:class:`ProcessAppender` is a drop-in ``append_batch`` for the sequencer that runs
the batch in a child process with its own interpreter (and GIL), its own database
connection and its own copy of the log key (loaded from the same settings as the
parent's). The parent sends each batch as it forms (:meth:`ProcessAppender.send`,
up to ``api.sequencer.PIPELINE_DEPTH`` unanswered) and reads the answers in order
(:meth:`ProcessAppender.receive`), blocking in a pipe read with the GIL released;
the child sequences the batches already waiting on its pipe in one transaction
(``_take``: same ``max_age_s``, up to ``MERGE_MAX_RECORDS``), and answers each.

The child receives a batch as the records' canonical bytes, parses them again
(strictly; the parent parsed them and checked their signers, ``ledger.core.records.
check_signers``) and checks their Ed25519 signatures (``verify_signatures``): that
work is off the parent's GIL too, and a record that fails answers ``Rejected``
with the error's code, as the parent's own check would. It appends the valid ones with
:meth:`api.storage.sql.SqlStorage.append_batch` (which gives each new entry's
inclusion proof from the hashes the batch held), publishes the new checkpoint
(``api.checkpoints.CheckpointPublisher``: after the commit, before any submitter
can see it) and answers with the results.
Messages on the pipe (pickled, between this process and its own child only)::

    parent -> child   (list[bytes], list[bool] verified, max_age_s)
                      a batch | None  stop
    child  -> parent  ("ready",) once | ("ok", results) | ("error", class name, message)

Crash safety is the storage's: a batch is one transaction. If the child dies, the
batch in flight fails with :class:`~api.storage.base.StorageUnavailableError`
(whether it committed is unknown to the submitters, and resubmitting is safe:
an identical record answers its existing entry); the next batch starts a new child.
The child ignores SIGINT (a Ctrl-C reaches the whole process group): the parent
stops it once its queue is drained, and it exits by itself when the parent dies
(its pipe closes).
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import logging
import multiprocessing
import signal
import threading
from collections import deque
from collections.abc import Sequence
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from api.checkpoints import CheckpointPublisher
from api.logkey import load_log_key
from api.published import PublishedCheckpoint
from api.settings import Settings
from api.storage.base import (
    Appended,
    OriginMismatchError,
    Rejected,
    StorageError,
    StorageUnavailableError,
)
from api.storage.sql import SqlStorage, rejected
from ledger.core.errors import LedgerError
from ledger.core.records import SignedRecord, parse_record, verify_signatures
from ledger.core.rules import DEFAULT_MAX_AGE_S

logger = logging.getLogger("api.appender")

#: Seconds to wait for a new child to open the database and load the key.
START_TIMEOUT_S = 60.0

_ERRORS: dict[str, type[StorageError]] = {
    "StorageError": StorageError,
    "StorageUnavailableError": StorageUnavailableError,
    "OriginMismatchError": OriginMismatchError,
}


def _append(
    storage: SqlStorage,
    publisher: CheckpointPublisher,
    *,
    texts: list[bytes],
    verified: list[bool],
    max_age_s: int | None,
) -> list[Appended | Rejected]:
    """Check the signatures of a batch's records (but those ``verified`` already),
    append the valid ones in order, then publish the new checkpoint, before anyone
    is answered."""
    results: list[Appended | Rejected | None] = [None] * len(texts)
    valid: list[tuple[int, SignedRecord]] = []
    for i, text in enumerate(texts):
        try:  # a record that fails is refused alone, never its whole batch
            record = parse_record(text)
            if not verified[i]:
                verify_signatures(record)
        except LedgerError as e:
            results[i] = rejected(e)
        else:
            valid.append((i, record))
    if valid:
        outcome = storage.append_batch([record for _, record in valid], max_age_s=max_age_s)
        published = publisher.publish_batch(outcome)
        for (i, _), result in zip(valid, published, strict=True):
            results[i] = result
    return [r for r in results if r is not None]


def _child_main(conn: Connection, settings: Settings) -> None:  # pragma: no cover - child
    """The child: open the storage and the key, then append batches until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        signer = load_log_key(settings).note_signer(settings.origin)
        storage = SqlStorage(
            settings.effective_database_url,
            origin=settings.origin,
            migrate=False,  # the parent migrated before starting us
            busy_timeout_ms=settings.sqlite_busy_timeout_ms,
        )
        publisher = CheckpointPublisher(
            storage, signer, PublishedCheckpoint(settings.published_checkpoint_path)
        )
    except Exception as e:
        conn.send(("error", type(e).__name__, str(e)))
        return
    # As the server does (api.app.freeze_startup_heap): a batch's objects live until
    # it commits, and full collections would walk the start-up heap each time.
    gc.collect()
    gc.freeze()
    conn.send(("ready",))
    try:
        while True:
            try:
                messages = _take(conn)
            except EOFError:  # the parent is gone
                return
            batches = [m for m in messages if m is not None]
            if batches:
                _serve(conn, batches, storage, publisher)
            if len(batches) < len(messages):  # told to stop, after what came before
                return
    finally:
        storage.close()


#: At most this many records of waiting batches are sequenced in one transaction.
MERGE_MAX_RECORDS = 4000


def _take(conn: Connection) -> list[Any]:
    """The next message, and those already waiting behind it (same max_age_s, up to
    MERGE_MAX_RECORDS records in all, up to a stop): sequenced in one transaction."""
    messages = [_checked(conn.recv())]
    if messages[0] is None:
        return messages
    total = len(messages[0][0])
    while total < MERGE_MAX_RECORDS and conn.poll(0):
        message = _checked(conn.recv())
        messages.append(message)
        if message is None or message[2] != messages[0][2]:
            break
        total += len(message[0])
    return messages


def _checked(message: Any) -> Any:
    """A batch message or None; anything else breaks the protocol, and the child exits
    (its parent then fails the batches it had sent and starts a new child)."""
    if message is None or (
        isinstance(message, tuple)
        and len(message) == 3
        and isinstance(message[0], list)
        and isinstance(message[1], list)
        and len(message[0]) == len(message[1])
    ):
        return message
    raise RuntimeError(f"not a batch message: {type(message).__name__}")


def _serve(
    conn: Connection,
    batches: list[Any],
    storage: SqlStorage,
    publisher: CheckpointPublisher,
) -> None:  # pragma: no cover - runs in the child
    """Sequence ``batches`` (messages of the pipe): those of one max_age_s in one
    transaction, then answer each message in turn with its own results."""
    groups: list[list[Any]] = []
    for b in batches:
        if groups and groups[-1][0][2] == b[2]:
            groups[-1].append(b)
        else:
            groups.append([b])
    for group in groups:
        try:
            results = _append(
                storage,
                publisher,
                texts=[t for b in group for t in b[0]],
                verified=[v for b in group for v in b[1]],
                max_age_s=group[0][2],
            )
        except Exception as e:
            for _ in group:
                conn.send(("error", type(e).__name__, str(e)))
            continue
        pos = 0
        for b in group:
            conn.send(("ok", results[pos : pos + len(b[0])]))
            pos += len(b[0])


class ProcessAppender:
    """``append_batch`` in a child process (see the module docstring).

    The child loads its own copy of the log key of ``settings`` and publishes each
    batch's checkpoint itself (``api.checkpoints``). Call :meth:`close` when done; a
    dead child is replaced at the next batch.
    """

    #: The child checks every record's signatures (the route need not).
    verifies_signatures = True
    #: Batches may be sent before the earlier ones are answered (:meth:`send`, then
    #: :meth:`receive`); the child sequences those waiting together.
    pipelined = True

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()  # the child and the pipe's sending side
        self._read_lock = threading.Lock()  # one reader of answers at a time
        self._sent_lock = threading.Lock()  # _sent, never held while waiting
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None
        self._tickets = itertools.count()
        # Batches sent and not answered yet, in order: (ticket, pipe, child).
        self._sent: deque[tuple[int, Connection, BaseProcess]] = deque()
        self._answers: dict[int, Any] = {}  # read for another waiter: ticket -> answer
        self._reading: Connection | None = None  # the pipe receive() is reading

    def start(self) -> ProcessAppender:
        """Start the child now (else the first batch does), and wait until it is ready."""
        with self._lock:
            self._ensure()
        return self

    def _ensure(self) -> tuple[Connection, BaseProcess]:
        if self._conn is not None and self._process is not None and self._process.is_alive():
            return self._conn, self._process
        self._stop_child()
        # spawn: a fresh interpreter, safe whatever threads this process runs.
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        process = ctx.Process(
            target=_child_main, args=(child, self.settings), name="ledger-appender", daemon=True
        )
        process.start()
        child.close()
        try:
            if not parent.poll(START_TIMEOUT_S):
                raise StorageUnavailableError("the sequencing process did not start in time")
            message = parent.recv()
        except (EOFError, OSError, StorageError) as e:
            process.kill()
            process.join()
            parent.close()
            raise StorageUnavailableError(f"the sequencing process did not start: {e}") from e
        if message[0] != "ready":
            process.join(5)
            parent.close()
            raise _error(message[1], f"the sequencing process did not start: {message[2]}")
        self._process, self._conn = process, parent
        logger.info("sequencing in process %d", process.pid)
        return parent, process

    def append_batch(
        self,
        records: Sequence[SignedRecord],
        *,
        max_age_s: int | None = DEFAULT_MAX_AGE_S,
    ) -> list[Appended | Rejected]:
        """Append and publish, every record's signatures checked in the child."""
        return self.append_checked(records, [False] * len(records), max_age_s=max_age_s)

    def append_checked(
        self,
        records: Sequence[SignedRecord],
        verified: Sequence[bool],
        *,
        max_age_s: int | None = DEFAULT_MAX_AGE_S,
    ) -> list[Appended | Rejected]:
        """:meth:`append_batch`, but the records marked ``verified`` (their signatures
        checked by the caller) are not checked again. A bulk import checks its
        records in the serving process, while the child appends the previous batch:
        the two overlap, where checking them all in the child would not."""
        if len(verified) != len(records):
            raise ValueError("one verified flag per record")
        if not records:
            return []
        return self.receive(self.send(records, verified, max_age_s=max_age_s))

    def send(
        self,
        records: Sequence[SignedRecord],
        verified: Sequence[bool],
        *,
        max_age_s: int | None = DEFAULT_MAX_AGE_S,
    ) -> int:
        """Send a batch (as :meth:`append_checked`) to the child; return its ticket, for
        :meth:`receive`. Batches are sequenced in the order they are sent."""
        if len(verified) != len(records):
            raise ValueError("one verified flag per record")
        message = ([r.encode() for r in records], list(verified), max_age_s)
        with self._lock:
            conn, process = self._ensure()
            try:
                conn.send(message)
            except (OSError, ValueError) as e:  # the child is gone
                code = process.exitcode
                self._stop_child()
                raise StorageUnavailableError(
                    f"the sequencing process stopped (exit code {code}); submit again"
                ) from e
            ticket = next(self._tickets)
            with self._sent_lock:
                self._sent.append((ticket, conn, process))
        return ticket

    def receive(self, ticket: int) -> list[Appended | Rejected]:
        """The results of the batch sent as ``ticket``, once the child committed it.

        Answers come in the order the batches were sent; one read for an earlier
        ticket is kept for its own waiter. If the child dies, each batch it had not
        answered fails with StorageUnavailableError (whether it committed is unknown,
        and resubmitting is safe); the next batch sent starts a new child.
        """
        with self._read_lock:
            while ticket not in self._answers:
                with self._sent_lock:
                    if not self._sent:
                        raise ValueError(f"no batch {ticket} is waiting for its answer")
                    t, conn, process = self._sent.popleft()
                    self._reading = conn
                try:
                    answer: Any = conn.recv()
                except (EOFError, OSError):
                    process.join(5)
                    answer = StorageUnavailableError(
                        f"the sequencing process stopped (exit code {process.exitcode}) "
                        "during a batch; whether it committed is unknown: submit again "
                        "(it is safe)"
                    )
                finally:  # whatever the read raised, the pipe is no longer being read
                    with self._sent_lock:
                        self._reading = None
                self._answers[t] = answer
                self._release(conn)
            answer = self._answers.pop(ticket)
        if isinstance(answer, Exception):
            raise answer
        if answer[0] == "ok":
            results: list[Appended | Rejected] = answer[1]
            return results
        raise _error(answer[1], answer[2])

    def _release(self, conn: Connection) -> None:
        """Close the pipe of a replaced child once nothing waits on it any more."""
        with self._sent_lock:
            waiting = conn is self._reading or any(c is conn for _, c, _ in self._sent)
        if not waiting and conn is not self._conn:
            conn.close()

    def _stop_child(self) -> None:
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.send(None)
            with self._sent_lock:
                waiting = conn is self._reading or any(c is conn for _, c, _ in self._sent)
            if not waiting:  # else receive() reads what the child still answers
                conn.close()
        if process is not None:
            process.join(30)
            if process.is_alive():
                logger.error("the sequencing process did not stop; killing it")
                process.kill()
                process.join()

    def close(self) -> None:
        """Stop the child after the batches it was sent."""
        with self._lock:
            self._stop_child()


def _error(name: str, message: str) -> StorageError:
    cls = _ERRORS.get(name)
    return cls(message) if cls is not None else StorageError(f"{name}: {message}")


__all__ = ["ProcessAppender"]
