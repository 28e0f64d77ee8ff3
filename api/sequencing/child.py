"""Sequencing in a child process: a batch's database work away from the requests' GIL.

A server process answers HTTP on its event loop, and its sequencer
(``api.sequencing.queue.Sequencer``) hands batches to an appender. Both need the
GIL, and the database driver releases it around every statement step (``sqlite3``
for each row of an ``executemany``, each row fetched; a PostgreSQL round trip).
After each release the sequencing thread must wait for the event loop to hand the
GIL back, up to ``sys.getswitchinterval()`` (5 ms) each time while the loop is busy:
measured here, a batch of 41 records took 6.3 ms alone and 321 ms beside one busy
thread (19 ms with a 0.1 ms switch interval). Under load a sequencer in the serving
process spends most of its time waiting for its turn, not working.

:class:`ChildAppender` is the appender (``api.sequencing.batch``) that runs each
batch in a child process with its own interpreter (and GIL), its own database
connection and its own copy of the log key (loaded from the same settings as the
parent's). :meth:`ChildAppender.submit` sends the batch on a pipe and returns a
pending future at once; one reader thread per child reads the answers in order,
blocking in a pipe read with the GIL released, and completes the futures. The child
sequences the batches already waiting on its pipe in one transaction (:func:`_take`:
same ``max_age_s``, up to ``MERGE_MAX_RECORDS``), then answers each.

The child parses each record again (strictly, from its canonical bytes), always
verifies its Ed25519 signatures (the route checked only its signers: that work is
off the parent's GIL too), appends and publishes through
``api.sequencing.batch.append_checked``, and answers with the outcomes. Messages on
the pipe (pickled, between this process and its own child only)::

    parent -> child   (list[bytes], max_age_s) a batch | None  stop
    child  -> parent  ("ready",) once | ("ok", outcomes) | ("error", class name, message)

Crash safety is the storage's and the publisher's: a batch is one transaction,
published after its commit. If the child dies, each batch it had not answered fails
with :class:`~api.storage.base.StorageUnavailableError` (whether it committed is
unknown to the submitters, and resubmitting is safe: an identical record answers its
existing entry); the next batch starts a new child. The child ignores SIGINT (a
Ctrl-C reaches the whole process group): the parent stops it once its queue is
drained, and it exits by itself when the parent dies (its pipe closes).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import multiprocessing
import signal
import threading
from collections import deque
from concurrent.futures import Future
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from api.checkpoints import CheckpointPublisher
from api.logkey import load_log_key
from api.published import PublishedCheckpoint
from api.sequencing.batch import Batch, Outcome, append_checked
from api.settings import Settings
from api.storage.base import (
    OriginMismatchError,
    Rejected,
    StorageError,
    StorageUnavailableError,
    rejected,
)
from api.storage.sql import SqlStorage
from ledger.core.errors import LedgerError
from ledger.core.records import SignedRecord, parse_record

logger = logging.getLogger("api.sequencing.child")

#: Seconds to wait for a new child to open the database and load the key.
START_TIMEOUT_S = 60.0
#: At most this many records of waiting batches are sequenced in one transaction.
MERGE_MAX_RECORDS = 4000

_ERRORS: dict[str, type[StorageError]] = {
    "StorageError": StorageError,
    "StorageUnavailableError": StorageUnavailableError,
    "OriginMismatchError": OriginMismatchError,
}

# --- the child ----------------------------------------------------------------------


def _parsed(text: bytes) -> SignedRecord | Rejected:
    try:
        return parse_record(text)
    except LedgerError as e:
        return rejected(e)


def _child_main(conn: Connection, settings: Settings) -> None:  # pragma: no cover - child
    """The child: open the storage and the key, then sequence batches until told to stop."""
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
        if message is None or message[1] != messages[0][1]:
            break
        total += len(message[0])
    return messages


def _checked(message: Any) -> Any:
    """A batch message or None; anything else breaks the protocol, and the child exits
    (its parent then fails the batches it had sent and starts a new child)."""
    if message is None or (
        isinstance(message, tuple) and len(message) == 2 and isinstance(message[0], list)
    ):
        return message
    raise RuntimeError(f"not a batch message: {type(message).__name__}")


def _serve(
    conn: Connection,
    batches: list[Any],
    storage: SqlStorage,
    publisher: CheckpointPublisher,
) -> None:
    """Sequence ``batches`` (messages of the pipe): those of one max_age_s in one
    transaction, then answer each message in turn with its own outcomes."""
    groups: list[list[Any]] = []
    for b in batches:
        if groups and groups[-1][0][1] == b[1]:
            groups[-1].append(b)
        else:
            groups.append([b])
    for group in groups:
        try:
            items = [_parsed(t) for b in group for t in b[0]]
            outcomes = append_checked(storage, publisher, items, group[0][1])
        except Exception as e:
            for _ in group:
                conn.send(("error", type(e).__name__, str(e)))
            continue
        pos = 0
        for b in group:
            conn.send(("ok", outcomes[pos : pos + len(b[0])]))
            pos += len(b[0])


# --- the parent ---------------------------------------------------------------------


class _Child:
    """One child process, its pipe, and the futures of the batches it was sent, which
    its reader thread alone completes, in order."""

    def __init__(self, settings: Settings) -> None:
        # spawn: a fresh interpreter, safe whatever threads this process runs.
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        process = ctx.Process(
            target=_child_main, args=(child, settings), name="ledger-appender", daemon=True
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
        self.process: BaseProcess = process
        self.conn: Connection = parent
        self.alive = True
        self._waiting: deque[Future[list[Outcome]]] = deque()
        # _send_lock orders the sends (and their futures in _waiting); _lock guards
        # _waiting and alive and is never held while waiting on the pipe: a send
        # blocked on a full pipe must not keep the reader from emptying the other.
        self._send_lock = threading.Lock()
        self._lock = threading.Lock()
        self._reader = threading.Thread(
            target=self._read, name="ledger-appender-answers", daemon=True
        )
        self._reader.start()
        logger.info("sequencing in process %d", process.pid)

    def send(self, message: Any, future: Future[list[Outcome]]) -> None:
        """Send a batch; ``future`` is completed by the reader thread (also when the
        child dies: then with StorageUnavailableError)."""
        with self._send_lock:
            with self._lock:
                if not self.alive:
                    raise StorageUnavailableError("the sequencing process stopped; submit again")
                self._waiting.append(future)
            try:
                self.conn.send(message)
            except (OSError, ValueError):  # the child is gone: the reader sees EOF
                logger.warning("the sequencing process stopped; failing its batches")
                with self._lock:
                    self.alive = False

    def _read(self) -> None:
        while True:
            try:
                answer: Any = self.conn.recv()
            except (EOFError, OSError):
                break
            with self._lock:
                future = self._waiting.popleft() if self._waiting else None
            if future is None:  # pragma: no cover - protocol
                logger.error("the sequencing process answered a batch it was not sent")
                break
            if answer[0] == "ok":
                future.set_result(answer[1])
            else:
                future.set_exception(_error(answer[1], answer[2]))
        self.process.join(5)
        with self._lock:
            self.alive = False
            waiting, self._waiting = list(self._waiting), deque()
        for future in waiting:
            future.set_exception(
                StorageUnavailableError(
                    f"the sequencing process stopped (exit code {self.process.exitcode}) "
                    "during a batch; whether it committed is unknown: submit again (it is safe)"
                )
            )
        self.conn.close()

    def stop(self) -> None:
        """Tell the child to stop after what it was sent, and wait for it."""
        with self._send_lock, contextlib.suppress(OSError, ValueError):
            self.conn.send(None)
        self.process.join(30)
        if self.process.is_alive():
            logger.error("the sequencing process did not stop; killing it")
            self.process.kill()
            self.process.join()
        self._reader.join(30)


class ChildAppender:
    """The appender of ``api.sequencing.batch`` in a child process (module docstring).

    Call :meth:`close` when done; a dead child is replaced at the next batch.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()  # the current child
        self._child: _Child | None = None

    def start(self) -> ChildAppender:
        """Start the child now (else the first batch does), and wait until it is ready."""
        with self._lock:
            self._current()
        return self

    def _current(self) -> _Child:
        child = self._child
        if child is not None and child.alive and child.process.is_alive():
            return child
        self._child = None
        self._child = _Child(self.settings)
        return self._child

    def submit(self, batch: Batch) -> Future[list[Outcome]]:
        future: Future[list[Outcome]] = Future()
        if not batch.records:
            future.set_result([])
            return future
        message = ([r.encode() for r in batch.records], batch.max_age_s)
        try:
            with self._lock:
                self._current().send(message, future)
        except StorageError as e:
            future.set_exception(e)
        return future

    @property
    def process(self) -> BaseProcess | None:
        """The current child process (None before the first batch or after close)."""
        return None if self._child is None else self._child.process

    def close(self) -> None:
        """Stop the child after the batches it was sent."""
        with self._lock:
            child, self._child = self._child, None
        if child is not None:
            child.stop()


def _error(name: str, message: str) -> StorageError:
    cls = _ERRORS.get(name)
    return cls(message) if cls is not None else StorageError(f"{name}: {message}")


__all__ = ["MERGE_MAX_RECORDS", "ChildAppender"]
